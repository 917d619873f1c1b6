#!/bin/bash
# The standard capacity report with the HSM on a CPU of its own: what segl issues beside an HSM
# that does not share segl's cores, as with a network HSM.
#
# Usage (from the repository root):
#   bench/support/separate_hsm_report.sh [OUT] [segl-load report options...]
#
# The embedded default's SoftHSM token is exported by `p11-kit server`, pinned to the machine's
# last CPU; segl reaches it through p11-kit's RPC client module with the pipelined signer, one
# executor per remaining CPU. The report (its load generator, the raw C_Sign measurement and
# segl, which it starts as a child) is pinned to the remaining CPUs, so the HSM's CPU does
# nothing but the HSM's work. The issued/raw ratio then says what segl loses on top of its HSM,
# which is the figure a sizing needs; the report on the embedded default (SoftHSM signing on
# segl's own cores) says what one box does alone.
#
# OUT defaults to bench/results/<date>-<cpus>cpu-separate-hsm. Needs 2 CPUs or more, p11-kit
# and its client module (tests/install-host-packages installs them), taskset.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

cpus=$(nproc)
if [ "$cpus" -lt 2 ]; then
    echo "needs 2 CPUs or more: the HSM gets one of its own" >&2
    exit 2
fi
hsm_cpu=$((cpus - 1))
segl_cpus="0-$((cpus - 2))"
out=${1:-bench/results/$(date -u +%F)-${cpus}cpu-separate-hsm}
shift || true

client_module=""
for m in /usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so /usr/lib/aarch64-linux-gnu/pkcs11/p11-kit-client.so \
    /usr/lib64/pkcs11/p11-kit-client.so /usr/lib/pkcs11/p11-kit-client.so; do
    [ -e "$m" ] && client_module=$m && break
done
if [ -z "$client_module" ] || ! command -v p11-kit >/dev/null; then
    echo "p11-kit or its client module is missing: run tests/install-host-packages" >&2
    exit 2
fi
for tool in taskset setsid; do
    command -v "$tool" >/dev/null || { echo "$tool (util-linux) is missing" >&2; exit 2; }
done
# The module the embedded default signs with, which the HSM process loads instead.
hsm_module=$(sed -n 's/^module = "\(.*\)"$/\1/p' config/segl.toml)
[ -e "$hsm_module" ] || { echo "config/segl.toml names no installed module ($hsm_module)" >&2; exit 2; }

cargo build --release -p segl --bin segl -p segl-bench --bin segl-load
# The tokens, the development PKI and the STS key, made directly on SoftHSM.
./target/release/segl dev setup --config config/segl.toml

work=$(mktemp -d)
hsm_pid=""
cleanup() {
    # The server forks one process per connection, all in its process group.
    if [ -n "$hsm_pid" ]; then
        kill -- "-$hsm_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

socket=$work/hsm.sock
# Both tokens over one socket: the STS token segl signs with, and the development PKI's token
# the report signs its request pool with.
# In a session and process group of its own (setsid), which the cleanup kills whole; its pid
# is the one it prints, whether or not setsid had to fork to start it.
SOFTHSM2_CONF=$root/state/softhsm2.conf setsid taskset -c "$hsm_cpu" \
    p11-kit server -f --provider "$hsm_module" -n "$socket" \
    "pkcs11:token=segl-sts" "pkcs11:token=segl-dev-pki" >"$work/p11-kit.log" 2>&1 &
for _ in $(seq 100); do
    hsm_pid=$(sed -n 's/^P11_KIT_SERVER_PID=\([0-9]*\);.*/\1/p' "$work/p11-kit.log")
    [ -S "$socket" ] && [ -n "$hsm_pid" ] && break
    sleep 0.1
done
if [ ! -S "$socket" ] || [ -z "$hsm_pid" ]; then
    echo "p11-kit server did not start:" >&2
    cat "$work/p11-kit.log" >&2
    exit 1
fi

# The embedded default, with the HSM reached over RPC, one executor per CPU left to segl, and
# its relative paths made absolute (the copy lives elsewhere).
sed -e "s#\"\\.\\./state#\"$root/state#g" \
    -e "s#^module = .*#module = \"$client_module\"#" \
    -e "s#^signer = \"inline\"#signer = \"pipelined\"\nenv = { P11_KIT_SERVER_ADDRESS = \"unix:path=$socket\" }#" \
    -e "s|^# cores = 2 .*|cores = $((cpus - 1))|" \
    config/segl.toml >"$work/segl.toml"
grep -q '^cores = ' "$work/segl.toml" && grep -q 'P11_KIT_SERVER_ADDRESS' "$work/segl.toml" &&
    grep -q "^module = \"$client_module\"" "$work/segl.toml" || {
    echo "config/segl.toml no longer has the lines this script edits (module, signer, cores)" >&2
    exit 1
}

echo "HSM: p11-kit server (pid $hsm_pid) on CPU $hsm_cpu; segl and the load generator on CPUs $segl_cpus"
taskset -c "$segl_cpus" ./target/release/segl-load report --config "$work/segl.toml" --out "$out" "$@"
# The report's command names the configuration it ran on, which goes with the work directory.
cp "$work/segl.toml" "$out/config.toml"
cat >"$out/LAYOUT.md" <<EOF
# Layout of this report

Made by \`bench/support/separate_hsm_report.sh\` (the configuration segl ran on is
\`config.toml\` here): the embedded default's SoftHSM token exported by
\`p11-kit server\` pinned to CPU $hsm_cpu (the HSM's own CPU: nothing else was pinned there);
segl (pipelined signer over p11-kit's RPC client module \`$client_module\`, $((cpus - 1))
executor(s)) and the load generator pinned to CPUs $segl_cpus. The raw C_Sign rate was measured
through the same RPC module from the generator's CPUs, on as many sessions as segl signs on,
so the issued/raw ratio compares segl end to end with the same HSM reached the same way.
"segl CPU per request excluding the HSM" subtracts the C_Sign CPU segl's signing threads
counted, which with an RPC module is the client side of each call (marshalling and socket
I/O); the HSM's own work is in its own process and never counted as segl's. The load
generator shares segl's CPU(s), so its own CPU per request (in the tables) is part of what
that CPU did.
EOF
echo "layout written to $out/LAYOUT.md"
