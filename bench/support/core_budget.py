#!/usr/bin/env python3
"""segl's per-request CPU budget on the serving core, stage by stage.

Reads `perf script` output of samples taken on one executor thread (bench/support/core_profile.sh
records them, frame-pointer build) and attributes each sample to one stage of the request path:
the innermost frame of its call chain that names a stage decides, so the allocator, memcpy or
the kernel's TCP code count for the stage that called them. Prints a markdown table with each
stage's share of the thread's samples and, given the thread's CPU per issued card (measured from
/proc by core_profile.sh), its microseconds per card.

Usage: perf script -i target/core-profile.perf.data > perf.txt
       core_budget.py perf.txt [CORE_US_PER_CARD]
"""
import re
import sys

# (stage, frame pattern), innermost match wins; within one frame the first stage listed wins.
# Kernel frames come first in the chain, so kernel work done on behalf of a stage (a send,
# a receive, an accept) is named by the kernel function when it says which, else by the
# user-space caller.
STAGES = [
    ("executor idle/wake", r"membarrier|io_cqring_wait|schedule_hrtimeout|Parker::park|"
                           r"link_rings_and_sleep|SleepNotifier|prepare_to_sleep|finish_task_switch|"
                           r"__schedule\b|\bschedule\b|do_idle|smp_call_function"),
    ("write (kernel send)", r"tcp_sendmsg|tcp_write_xmit|__tcp_push_pending|tcp_transmit_skb|"
                            r"ip_finish_output|__dev_queue_xmit|loopback_xmit"),
    ("accept/read (kernel)", r"tcp_recvmsg|tcp_v4_rcv|inet_accept|inet_csk_accept|"
                             r"do_accept|__sys_accept|sock_recvmsg|net_rx_action|__netif_receive_skb"),
    ("audit", r"segl::audit"),
    ("metrics", r"\bmetrics::|metrics_exporter_prometheus|metrics_util|telemetry"),
    ("admission", r"segl::server::admission"),
    ("sign hand-off", r"segl_pkcs11::batch|segl::signing::|futures_channel::oneshot|"
                      r"futures_channel::mpsc"),
    ("hash", r"sha1|sha2|Sha1|Sha256|aws_lc_rs::digest|\bdigest::|ring::digest|sha1_block|"
             r"sha256_block"),
    ("certificate cache", r"segl::trust::cache|segl::trust::|x509_parser|der_parser|asn1_rs|"
                          r"SignerCache|ParsedKeys|x509_cert"),
    ("verify", r"segl::xml::dsig|aws_lc_rs::rsa|aws_lc_rs::signature|RSA_verify|rsa_verify|"
               r"bn_mod_exp|BN_mod_exp|bn_mul_mont"),
    ("canonicalize", r"segl::xml::c14n|canonical"),
    ("parse", r"segl::xml::parse|segl::xml::document|quick_xml|Document::parse"),
    ("rules", r"segl::exchange::dgws::rules|segl::exchange::dgws::card|segl::roles|"
              r"segl::registers|segl::exchange::replay|replay"),
    ("build and emit", r"segl::token::|segl::exchange::dgws::response|segl::exchange::fault|"
                       r"segl::xml::write|segl::exchange::outcome|IdCard|issue_response"),
    ("exchange (other)", r"segl::exchange::"),
    ("TLS", r"rustls|futures_rustls|aes_gcm|aes_hw|gcm_|chacha|ecp_nistz|ec_GFp"),
    ("HTTP", r"segl::server::http|httparse"),
    ("server (other)", r"segl::server::"),
    ("executor loop, I/O reaping, timers",
     r"glommio::|io_uring|__io_|io_submit_sqes|io_issue_sqe|io_cq|hrtimer|timerfd"),
]
COMPILED = [(name, re.compile(pattern)) for name, pattern in STAGES]


def samples(lines):
    """Yields each sample's frames, innermost first."""
    frames = []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if frames:
                yield frames
            frames = []
        elif line.startswith((" ", "\t")):
            frames.append(line.strip())
        # A header line (comm, tid, time, event) starts the next sample.
    if frames:
        yield frames


HAND_OFF = re.compile(r"crossbeam_channel|futures_channel")
AUDIT = re.compile(r"segl::audit")


def stage_of(frames):
    for i, frame in enumerate(frames):
        # A channel send to another thread (and the futex wake under it) is the sign hand-off
        # (the signer driver's poll is inlined into glommio's task runner) unless the audit
        # log is sending.
        if HAND_OFF.search(frame):
            return "audit" if any(AUDIT.search(f) for f in frames[i:]) else "sign hand-off"
        for name, pattern in COMPILED:
            if pattern.search(frame):
                return name
    return "other (kernel entry, libc)"


def main():
    path = sys.argv[1]
    per_card = float(sys.argv[2]) if len(sys.argv) > 2 else None
    counts = {}
    total = 0
    with open(path, errors="replace") as f:
        for frames in samples(f):
            stage = stage_of(frames)
            counts[stage] = counts.get(stage, 0) + 1
            total += 1
    if total == 0:
        sys.exit("no samples")
    print(f"{total} samples of the executor thread")
    print()
    header = "| stage | share |" + (" µs per card |" if per_card else "")
    print(header)
    print("|---|---|" + ("---|" if per_card else ""))
    for name in [s for s, _ in STAGES] + ["other (kernel entry, libc)"]:
        n = counts.get(name, 0)
        if n == 0:
            continue
        row = f"| {name} | {100 * n / total:.1f} % |"
        if per_card:
            row += f" {per_card * n / total:.0f} |"
        print(row)
    if per_card:
        print(f"| **all (the executor thread)** | 100 % | **{per_card:.0f}** |")


if __name__ == "__main__":
    main()
