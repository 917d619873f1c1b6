#!/bin/bash
# What the cluster's replay store costs: segl's CPU per request and p99 with the message ids in
# the node's memory (`[replay] store = "local"`) and in Redis (`store = "redis"`), the two
# alternating in one run at the same offered rate.
#
# Usage (from the repository root, after `cargo build --release --bin segl --bin segl-load`):
#   bench/support/replay_cost.sh [RATE] [SECONDS] [ROUNDS]      (defaults 400 10 3)
#
# segl runs on the embedded default (inline SoftHSM, both cores) over plain HTTP; Redis 7 on
# loopback with its AOF synced every second (appendfsync everysec, the usual production
# setting). The generator is `segl-load soak` with the server's pid, so each line has segl's
# CPU per request (whole, and less the C_Sign CPU segl counts) and the latency percentiles.
# Ports 8080 and 9090 (config/segl.toml) must be free.
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${1:-400}
SECS=${2:-10}
ROUNDS=${3:-3}
BIN=${BIN:-target/release}
WORK=$(mktemp -d)
SEGL= REDIS=
trap 'kill $SEGL $REDIS 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

command -v redis-server > /dev/null || { echo "redis-server is not installed (tests/install-host-packages)" >&2; exit 1; }
REDIS_PORT=6391
redis-server --port $REDIS_PORT --bind 127.0.0.1 --save "" --appendonly yes --appendfsync everysec \
    --dir "$WORK" > "$WORK/redis.log" 2>&1 &
REDIS=$!
until redis-cli -p $REDIS_PORT ping > /dev/null 2>&1; do sleep 0.1; done

sed -e 's/^deadline_ms = 200 /deadline_ms = 2000 /' config/segl.toml > "$WORK/local.toml"
sed -e 's/^deadline_ms = 200 /deadline_ms = 2000 /' \
    -e "s/^store = \"local\"/store = \"redis\"\n[replay.redis]\naddresses = [\"127.0.0.1:$REDIS_PORT\"]/" \
    config/segl.toml > "$WORK/redis.toml"
# The configurations sit beside config/segl.toml's relative paths (../state).
cp "$WORK/local.toml" config/.replay-local.toml
cp "$WORK/redis.toml" config/.replay-redis.toml
trap 'kill $SEGL $REDIS 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK" config/.replay-local.toml config/.replay-redis.toml' EXIT

echo "| round | store | offered/s | issued/s | p50 ms | p99 ms | segl µs/request | excl. C_Sign µs/request |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for round in $(seq 1 "$ROUNDS"); do
    for store in local redis; do
        "$BIN/segl" serve --config "config/.replay-$store.toml" > "$WORK/segl.log" 2>&1 &
        SEGL=$!
        until curl -sf 127.0.0.1:9090/readyz > /dev/null; do
            kill -0 $SEGL 2> /dev/null || { cat "$WORK/segl.log"; exit 1; }
            sleep 0.2
        done
        "$BIN/segl-load" soak --target 127.0.0.1:8080 --rate "$RATE" --secs "$SECS" --server-pid $SEGL \
            --admin-addr 127.0.0.1:9090 --pool 4000 --connections 64 --timeout-ms 2000 \
            --mix NewSecurityTokenService=1 --no-progress > "$WORK/load.log" 2>&1 || true
        kill $SEGL; wait $SEGL 2> /dev/null || true
        SEGL=
        # "soak R/s  offered issued shed failed p50 p99 p99.9 max segl gen" and
        # "soak R/s: segl N µs/request; C_Sign N µs in the server; excl. HSM N µs ..."
        row=$(grep -E "^soak [0-9]+/s +[0-9]" "$WORK/load.log" | tail -1)
        excl=$(grep -oE "excl. HSM [0-9]+" "$WORK/load.log" | tail -1 | grep -oE "[0-9]+$")
        set -- $row
        echo "| $round | $store | $3 | $4 | $7 | $8 | ${11} | ${excl:-–} |"
    done
done
if [[ $(redis-cli -p $REDIS_PORT dbsize) -eq 0 ]]; then
    echo "Redis holds no message ids: the redis runs did not use it" >&2
    exit 1
fi
