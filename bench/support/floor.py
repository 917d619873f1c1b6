#!/usr/bin/env python3
"""The floor under segl's CPU per request on this machine.

What a request costs before any of segl's own request work: the executor, TLS and the kernel
serving a trivial answer, and the audit log's sync, each put in units of one standalone C_Sign,
so that issue 17's ratios can be read against what no change to the request path removes.

Usage (from the repository root; root for perf's system call counts):
    bench/support/floor.py [--secs 6] [--bin target/release] [--config config/segl.toml]

Each server runs on CPU 0 and the client (wrk, one thread) on CPU 1:
- segl with one executor answering GET /sts/metadata/certificates (a JSON of the published
  certificates, kept by the key inventory: no admission, parse, signature or audit) over plain
  HTTP and over TLS 1.3 (a throwaway ECDSA P-256 certificate), with 1 connection (every request
  arrives at a parked core: the park/wake floor) and 16 (requests batched per loop turn);
- the load generator's trivial tokio server (`segl-load serve-dummy`, epoll) answering the same
  number of bytes over plain HTTP: the same wakes without glommio;
- one durable audit record: a 350-byte write and an fdatasync into a preallocated file in the
  audit log's directory, as the writer does in sync durability (CPU per sync; the loop is
  Python, which adds about a microsecond);
- segl's DGWS request in-process (`segl-load in-process`): parse to emit with the signature,
  on one thread, less the C_Sign CPU its signer counted: the request's own work with nothing
  around it;
- one C_Sign standalone (`segl-load hsm`, one session).
CPU per request is the server process's user + system time (/proc/<pid>/stat) over the window
divided by the requests wrk completed in it. Needs wrk, openssl, curl and taskset.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request

CLOCK = os.sysconf("SC_CLK_TCK")
PORTS = {"plain": 18080, "tls": 18443, "admin": 19090, "dummy": 17070}
PATH = "/sts/metadata/certificates"


def cpu_seconds(pid):
    """User and system CPU seconds of a process so far."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK, int(fields[12]) / CLOCK


def wait_ready(url, proc, log):
    for _ in range(150):
        if proc.poll() is not None:
            sys.exit(f"the server exited:\n{open(log).read()}")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"no answer from {url}")


def syscall_counts(pid, secs):
    """Starts counting io_uring_enter and membarrier calls of the process for secs (perf)."""
    if not shutil.which("perf"):
        return None
    events = "syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_membarrier"
    return subprocess.Popen(
        ["perf", "stat", "-x,", "-e", events, "-p", str(pid), "--", "sleep", str(secs)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_counts(perf):
    if perf is None:
        return {}
    _, err = perf.communicate()
    counts = {}
    for line in err.splitlines():
        parts = line.split(",")
        if len(parts) > 2 and parts[0].isdigit():
            counts[parts[2].rsplit("_", 1)[-1]] = int(parts[0])
    return counts


def measure(pid, url, connections, secs, tls_ca=None):
    """Runs wrk for secs against url and returns requests/s and the server's CPU per request."""
    wrk = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", "--latency"]
    # A second of warm-up: connections open, TLS handshakes done, caches warm.
    subprocess.run(wrk + ["-d1s", url], capture_output=True, check=True)
    perf = syscall_counts(pid, secs)
    user0, sys0 = cpu_seconds(pid)
    out = subprocess.run(wrk + [f"-d{secs}s", url], capture_output=True, text=True, check=True).stdout
    user1, sys1 = cpu_seconds(pid)
    counts = read_counts(perf)
    match = re.search(r"(\d+) requests in ([\d.]+)s", out)
    if not match or "Non-2xx" in out:
        sys.exit(f"wrk against {url} did not get answers:\n{out}")
    requests, elapsed = int(match.group(1)), float(match.group(2))
    per = 1e6 / requests
    return {
        "rate": requests / elapsed,
        "cpu": (user1 - user0 + sys1 - sys0) * per,
        "user": (user1 - user0) * per,
        "sys": (sys1 - sys0) * per,
        # perf's window is the wrk run's to within its start-up: per request of the run.
        "io_uring_enter": counts["enter"] / requests if "enter" in counts else None,
        "parks": counts["membarrier"] / requests if "membarrier" in counts else None,
    }


def audit_sync_cpu(directory, records=2000):
    """CPU µs of one 350-byte write + fdatasync into preallocated space, as the audit writer."""
    path = os.path.join(directory, f".floor-sync-{os.getpid()}")
    record = b"x" * 349 + b"\n"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        zeros = b"\0" * (1 << 20)
        for i in range(4):
            os.pwrite(fd, zeros, i << 20)
        os.fsync(fd)
        start, wall = time.thread_time(), time.perf_counter()
        for i in range(records):
            os.pwrite(fd, record, i * len(record))
            os.fdatasync(fd)
        return (time.thread_time() - start) * 1e6 / records, (time.perf_counter() - wall) * 1e6 / records
    finally:
        os.close(fd)
        os.unlink(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secs", type=float, default=6)
    parser.add_argument("--bin", default="target/release")
    parser.add_argument("--config", default="config/segl.toml")
    args = parser.parse_args()
    for tool in ("wrk", "openssl", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing (apt-get install wrk openssl util-linux)")
    if os.cpu_count() < 2:
        sys.exit("needs 2 CPUs: the server on one, the client on the other")
    secs = int(args.secs)
    config_dir = os.path.dirname(os.path.abspath(args.config))
    settings = tomllib.load(open(args.config, "rb"))
    audit_dir = os.path.dirname(os.path.join(config_dir, settings["audit"]["path"]))

    work = tempfile.mkdtemp()
    copy = os.path.join(config_dir, f".floor-{os.getpid()}.toml")
    procs = []
    try:
        # One C_Sign first, with nothing else running.
        hsm = subprocess.run(
            ["taskset", "-c", "0", f"{args.bin}/segl-load", "hsm", "--config", args.config, "--sessions", "1"],
            capture_output=True, text=True, check=True,
        ).stdout
        c_sign = float(re.search(r"([\d.]+) µs CPU per signature", hsm).group(1))
        sync_cpu, sync_wall = audit_sync_cpu(audit_dir)
        # The request's own work with nothing around it, on the same CPU.
        alone = subprocess.run(
            ["taskset", "-c", "0", f"{args.bin}/segl-load", "in-process", "--config", args.config],
            capture_output=True, text=True, check=True,
        ).stdout
        match = re.search(r"(\d+) requests: (\d+) µs per request − (\d+) µs of C_Sign = (\d+) µs", alone)
        if not match:
            sys.exit(f"segl-load in-process said: {alone}")
        in_process = {"requests": int(match.group(1)), "c_sign": float(match.group(3)), "own": float(match.group(4))}

        key, cert, ca_key, ca = (os.path.join(work, n) for n in ("server.key", "server.pem", "ca.key", "ca.pem"))
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "check": True}
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-days", "1", "-subj", "/CN=floor CA", "-keyout", ca_key, "-out", ca], **quiet)
        csr = os.path.join(work, "server.csr")
        subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", csr], **quiet)
        san = os.path.join(work, "san.ext")
        open(san, "w").write("subjectAltName=IP:127.0.0.1\n")
        subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-days", "1",
                        "-extfile", san, "-out", cert], **quiet)

        text = open(args.config).read()
        text = re.sub(r"(?m)^# cores = 2 ", "cores = 1 ", text)
        text = re.sub(r'(?m)^listen = "127.0.0.1:8080"', f'listen = "127.0.0.1:{PORTS["plain"]}"', text)
        text = re.sub(r'(?m)^admin_listen = "[^"]*"', f'admin_listen = "127.0.0.1:{PORTS["admin"]}"', text)
        text += (f'\n[server.tls]\nlisten = "127.0.0.1:{PORTS["tls"]}"\ncertificate = "{cert}"\n'
                 f'key = "{key}"\nclient_auth = "none"\n')
        open(copy, "w").write(text)

        log = os.path.join(work, "segl.log")
        segl = subprocess.Popen([f"{args.bin}/segl", "serve", "--config", copy],
                                stdout=open(log, "w"), stderr=subprocess.STDOUT)
        procs.append(segl)
        wait_ready(f"http://127.0.0.1:{PORTS['admin']}/readyz", segl, log)
        # The executor is pinned to CPU 0 by segl; every other thread goes beside the client.
        for task in os.listdir(f"/proc/{segl.pid}/task"):
            if not open(f"/proc/{segl.pid}/task/{task}/comm").read().startswith("segl-core"):
                subprocess.run(["taskset", "-p", "-c", "1", task], stdout=subprocess.DEVNULL, check=True)
        body = urllib.request.urlopen(f"http://127.0.0.1:{PORTS['plain']}{PATH}").read()

        rows = []
        for transport, scheme, port in (("plain HTTP", "http", PORTS["plain"]), ("TLS 1.3", "https", PORTS["tls"])):
            for connections in (1, 16):
                r = measure(segl.pid, f"{scheme}://127.0.0.1:{port}{PATH}", connections, secs)
                rows.append((f"segl (glommio), {transport}, {connections} connection{'s' * (connections > 1)}", r))
        segl.terminate()
        segl.wait()

        dummy = subprocess.Popen(["taskset", "-c", "0", f"{args.bin}/segl-load", "serve-dummy", "--listen",
                                  f"127.0.0.1:{PORTS['dummy']}", "--body-bytes", str(len(body))],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(dummy)
        wait_ready(f"http://127.0.0.1:{PORTS['dummy']}/", dummy, os.devnull)
        for connections in (1, 16):
            r = measure(dummy.pid, f"http://127.0.0.1:{PORTS['dummy']}/", connections, secs)
            rows.append((f"trivial tokio server, plain HTTP, {connections} connection{'s' * (connections > 1)}", r))

        def fmt(v, f="{:.2f}"):
            return "-" if v is None else f.format(v)

        print(f"C_Sign standalone (one session, CPU 0): {c_sign:.0f} µs CPU per signature")
        print(f"answer: GET {PATH}, {len(body)} bytes of body; {secs} s per row; client wrk on CPU 1\n")
        print("| server, transport, connections | requests/s | CPU µs/request | user | system "
              "| io_uring_enter/request | parks/request | × C_Sign |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name, r in rows:
            print(f"| {name} | {r['rate']:,.0f} | {r['cpu']:.1f} | {r['user']:.1f} | {r['sys']:.1f} "
                  f"| {fmt(r['io_uring_enter'])} | {fmt(r['parks'])} | {r['cpu'] / c_sign:.3f} |")
        print(f"| one audit sync: 350-byte write + fdatasync in {audit_dir} | {1e6 / sync_wall:,.0f} "
              f"| {sync_cpu:.1f} | | | | | {sync_cpu / c_sign:.3f} |")
        print(f"| segl's DGWS request in-process (`segl-load in-process`: parse to emit, no HTTP, TLS, executor or "
              f"sync; {in_process['requests']} requests, less the C_Sign its signer counted) | | {in_process['own']:.0f} "
              f"| | | | | {in_process['own'] / c_sign:.3f} |")
        print(f"\nC_Sign between those requests: {in_process['c_sign']:.0f} µs CPU, "
              f"×{in_process['c_sign'] / c_sign:.2f} the standalone one (the request's work evicts SoftHSM's)")
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait()
        for path in (copy,):
            if os.path.exists(path):
                os.unlink(path)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
