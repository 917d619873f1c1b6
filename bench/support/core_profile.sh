#!/bin/bash
# Where one executor core's CPU goes per request, with the HSM's work kept off that core.
#
# Usage (from the repository root, as root for perf):
#   bench/support/core_profile.sh RATE [SECONDS] [SIGNER] [TRANSPORT]
#
# segl runs with one executor core pinned to CPU 0. With SIGNER=pipelined (the default) its
# signing threads, and every other segl thread, are moved to CPU 1 beside the load generator, as
# with a network HSM: CPU 0 then does only segl's own work. With SIGNER=inline the core signs
# too (the embedded default). The generator (`segl-load soak`, plain HTTP, one endpoint) offers
# RATE requests/s; after a warm-up, per-thread CPU per issued card is read from /proc over
# SECONDS (default 8), and `perf record --call-graph fp` samples the executor thread into
# target/core-profile.perf.data when perf is installed, and `core_budget.py` turns the samples
# into the per-stage CPU budget (a markdown table); `perf stat` counts each thread's system calls
# over the same window, printed per card. Build with frame pointers for whole call
# stacks:
#   RUSTFLAGS="-C force-frame-pointers=yes" cargo build --release --bin segl --bin segl-load
# TRANSPORT is `plain` (default) or `tls`: TLS 1.3 on 127.0.0.1:8443 with a throwaway ECDSA P-256
# certificate made with openssl, so that the budget has its TLS stage.
# COMMIT_DELAY_MS sets the audit log's commit delay (default 2, as config/segl.toml).
# Needs 2 CPUs. Ports 8080, 8443 and 9090 (config/segl.toml) must be free.
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${1:?usage: core_profile.sh RATE [SECONDS] [SIGNER]}
SECS=${2:-8}
SIGNER=${3:-pipelined}
TRANSPORT=${4:-plain}
BIN=${BIN:-target/release}
WORK=$(mktemp -d)
CONFIG=config/.core-profile.toml
SEGL= LOAD=
trap 'kill $SEGL $LOAD 2>/dev/null || true; wait $SEGL 2>/dev/null || true; rm -rf "$WORK" "$CONFIG"' EXIT

if curl -sf -o /dev/null 127.0.0.1:9090/readyz; then
    echo "something already serves on 127.0.0.1:9090 (a segl left running?)" >&2
    exit 1
fi
sed -e 's/^# cores = 2 /cores = 1 /' \
    -e "s/^signer = \"inline\"/signer = \"$SIGNER\"/" \
    -e 's/^sessions_per_core = 4/sessions_per_core = 1/' \
    -e "s/^commit_delay_ms = .*/commit_delay_ms = ${COMMIT_DELAY_MS:-2}/" config/segl.toml > "$CONFIG"
TARGET=(--target 127.0.0.1:8080)
if [[ $TRANSPORT == tls ]]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=profile CA" \
        -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2> /dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
        -keyout "$WORK/server.key" -out "$WORK/server.csr" 2> /dev/null
    openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -days 1 \
        -extfile <(echo "subjectAltName=IP:127.0.0.1") -out "$WORK/server.pem" 2> /dev/null
    printf '\n[server.tls]\nlisten = "127.0.0.1:8443"\ncertificate = "%s"\nkey = "%s"\nclient_auth = "none"\n' \
        "$WORK/server.pem" "$WORK/server.key" >> "$CONFIG"
    TARGET=(--target 127.0.0.1:8443 --tls --ca-file "$WORK/ca.pem" --server-name 127.0.0.1)
fi
"$BIN/segl" serve --config "$CONFIG" > "$WORK/segl.log" 2>&1 &
SEGL=$!
until curl -sf 127.0.0.1:9090/readyz > /dev/null; do
    kill -0 $SEGL 2>/dev/null || { cat "$WORK/segl.log"; exit 1; }
    sleep 0.2
done
# Everything but the executor (segl-core-*) goes to CPU 1.
for task in /proc/$SEGL/task/*; do
    case "$(cat "$task/comm")" in segl-core*) ;; *) taskset -p -c 1 "$(basename "$task")" > /dev/null ;; esac
done

taskset -c 1 "$BIN/segl-load" soak "${TARGET[@]}" --rate "$RATE" --secs $((SECS + 8)) \
    --server-pid "$SEGL" --admin-addr 127.0.0.1:9090 \
    --pool 6000 --connections 256 --timeout-ms 2000 --mix NewSecurityTokenService=1 --no-progress \
    > "$WORK/load.log" 2>&1 &
LOAD=$!
# The pool is built before the timed run starts.
until grep -q "pool built" "$WORK/load.log" 2> /dev/null; do
    kill -0 $LOAD 2>/dev/null || { cat "$WORK/load.log"; exit 1; }
    sleep 0.5
done
sleep 4

# Per thread name: on-CPU ticks, user, system (stat(5) fields 14 and 15, USER_HZ 100).
snapshot() {
    date +%s.%N > "$WORK/time.$1"
    curl -s 127.0.0.1:9090/metrics > "$WORK/metrics.$1"
    for task in /proc/$SEGL/task/*; do
        echo "$(tr ' ' _ < "$task/comm") $(awk '{print $14 + $15, $14, $15}' "$task/stat")"
    done | awk '{a[$1] += $2; u[$1] += $3; s[$1] += $4} END {for (k in a) print k, a[k], u[k], s[k]}' \
        | sort > "$WORK/threads.$1"
}
snapshot a
CORE_TID=$(for task in /proc/$SEGL/task/*; do
    [[ "$(cat "$task/comm")" == segl-core-0* ]] && basename "$task" && break
done)
rm -f target/core-profile.perf.data
SYSCALLS=
if command -v perf > /dev/null; then
    # The system calls each thread makes over the same window: the executor's loop turns and
    # parks (io_uring_enter, membarrier), the wake-ups between threads (futex, eventfd writes),
    # the audit log's syncs. Counts per card, unlike times, hardly move with the machine's speed.
    perf stat --per-thread -x, -o "$WORK/syscalls.csv" -p "$SEGL" \
        -e "$(printf 'syscalls:sys_enter_%s,' io_uring_enter membarrier futex read write recvfrom sendto \
            pwrite64 fdatasync clock_gettime)context-switches" -- sleep "$SECS" 2> /dev/null &
    SYSCALLS=$!
    perf record -q -F 4000 --call-graph fp -t "$CORE_TID" -o target/core-profile.perf.data -- sleep "$SECS" 2> /dev/null
else
    sleep "$SECS"
fi
[[ -n $SYSCALLS ]] && wait $SYSCALLS
snapshot b

python3 - "$WORK" "$SECS" "$RATE" "$SIGNER" << 'PY'
import sys
work, rate, signer = sys.argv[1], sys.argv[3], sys.argv[4]
# The window as it was, not as asked: perf starts and stops around it.
secs = float(open(f"{work}/time.b").read()) - float(open(f"{work}/time.a").read())

def metrics(name):
    values = {}
    for line in open(f"{work}/metrics.{name}"):
        if not line.startswith("#") and " " in line:
            key, value = line.rsplit(" ", 1)
            values[key] = float(value)
    return values

def delta(prefix, *labels):
    a, b = metrics("a"), metrics("b")
    return sum(v - a.get(k, 0.0) for k, v in b.items() if k.startswith(prefix) and all(l in k for l in labels))

def threads(name):
    return {l.split()[0]: [int(x) for x in l.split()[1:]] for l in open(f"{work}/threads.{name}")}

issued = delta("segl_requests_total", 'outcome="issued"')
shed = delta("segl_requests_total", 'outcome="shed"')
cards = max(issued, 1.0)
print(f"offered {rate}/s, signer {signer}, {secs:.1f} s: issued {issued / secs:.0f}/s, shed {shed / secs:.0f}/s; "
      f"C_Sign CPU {1e6 * delta('segl_hsm_sign_cpu_seconds_total') / cards:.0f} µs per card")
a, b = threads("a"), threads("b")
for name, (ticks, user, system) in sorted(b.items()):
    d = [(x - y) * 1e4 for x, y in zip((ticks, user, system), a.get(name, [0, 0, 0]))]
    if d[0] > 0:
        print(f"  {name}: {d[0] / 1e6 / secs * 100:.1f} % of a CPU, {d[0] / cards:.0f} µs per card "
              f"(user {d[1] / cards:.0f}, system {d[2] / cards:.0f})")
    if name.startswith("segl-core-0"):
        open(f"{work}/core_us", "w").write(f"{d[0] / cards:.1f}")
# System calls per card by thread (perf stat --per-thread: "name-tid,count,unit,event,...").
import collections, os, re
calls = collections.defaultdict(dict)
if os.path.exists(f"{work}/syscalls.csv"):
    for line in open(f"{work}/syscalls.csv"):
        f = line.strip().split(",")
        if len(f) > 3 and f[1].isdigit():
            calls[re.sub(r"-\d+$", "", f[0])][f[3].replace("syscalls:sys_enter_", "")] = int(f[1])
events = ["io_uring_enter", "membarrier", "futex", "read", "write", "recvfrom", "sendto", "pwrite64",
          "fdatasync", "clock_gettime", "context-switches"]
rows = [(t, c) for t, c in sorted(calls.items()) if sum(c.values()) / cards >= 0.05]
if rows:
    print(f"\nsystem calls per card ({secs:.1f} s, perf stat --per-thread)\n")
    print("| thread | " + " | ".join(events) + " |")
    print("|---|" + "---:|" * len(events))
    for thread, c in rows:
        print(f"| {thread} | " + " | ".join(f"{c.get(e, 0) / cards:.2f}" for e in events) + " |")
    print()
PY
# The budget: the executor's samples attributed to the stages of the request path.
if [[ -s target/core-profile.perf.data && -s "$WORK/core_us" ]]; then
    perf script -i target/core-profile.perf.data 2> /dev/null > "$WORK/perf.txt"
    python3 bench/support/core_budget.py "$WORK/perf.txt" "$(cat "$WORK/core_us")"
fi
wait $LOAD || true
# The generator's own view of the whole run: offered, answered, latency percentiles.
grep -B1 -E "^soak" "$WORK/load.log" || cat "$WORK/load.log"
