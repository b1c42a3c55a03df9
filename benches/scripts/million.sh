#!/usr/bin/env bash
# One million XMPP sessions on one box: a local cluster of rookery nodes over NATS (each node
# one process under the host's per-process descriptor cap) and rookery-load spread over its
# own worker processes, everything on loopback in a network namespace of its own.
#
# Phases, all in ONE rookery-load chat run (the same sessions throughout):
#   ramp   CLIENTS authenticated sessions (SASL PLAIN, token accounts, XEP-0198 on) at
#          LOGIN_RATE logins/s, every client dialling its home node (--cluster);
#   hold   HOLD of idle sessions (--hold-first);
#   chat   CHAT of messages at CHAT_RATE per client (0.01 x 1M = 10,000 msg/s), every
#          message to a peer homed on another node (--cross-node), counted with --verify
#          (an acknowledged message that never arrives is a loss);
#   storm  STORM_AT into the chat, STORM_FRACTION of the clients drop their conns at once
#          and log in again at RECONNECT_RATE while the others keep chatting.
# Beside it a sampler records every 5 s: sessions (sum of the nodes' rookery_sessions),
# kernel slab and TCP memory, RSS of the nodes, nats-server and rookery-load, their CPU, and
# the cross-node mails. million-report.py turns that into the results' README.md, tables
# and plots.
#
# The host: the kernel profile PROFILE is applied to the namespace (per-netns knobs) and,
# with ALLOW_HOST=1 (default), its host-wide knobs too (tcp_mem, file-max, ...), and
# reverted when the script ends, however it ends. `rookery-tune check --role both` records
# what the host can hold before the run. NETNS=none runs in the root namespace.
#
# Usage: benches/scripts/million.sh [CLIENTS] [NODES]
#   CLIENTS default 1000000; NODES default CLIENTS / 19,200 rounded up (a node holds its
#   sessions plus its listeners, log and bus conns under the 20,000-descriptor cap here).
# Env: LOGIN_RATE (3500), HOLD (5m), CHAT (2m), CHAT_RATE (0.01), STORM_FRACTION (0.1),
#   (0: no storm), STORM_AT (60s), RECONNECT_RATE (4000), KEEPALIVE (240s: every client's whitespace ping, as
#   real clients send, under the nodes' 300 s --idle-timeout), PROFILE (c1m-loopback), NETNS (rookery-million),
#   ALLOW_HOST (1), BACKEND (auto), OUT (results), BIN (target/release: the binaries),
#   NODE_ARGS (more flags for every node, e.g. "--archive-days 0"), LOAD_ARGS (more flags for
#   rookery-load), BATCH_WAIT_US (0: every shard, bridge and load worker wakes per event; e.g.
#   2000 gathers work into one wake-up per 2 ms window under load, see --batch-wait-us).
#   PROFILE=none applies no profile (the host's knobs as they are; no root needed with
#   NETNS=none).
# Bounded: rookery-load runs under a timeout of ramp + hold + chat + 10 min; every process
# the script started is stopped by pid on exit.
# Needs: root (namespace, sysctls), nats-server, curl, python3, a release build.
set -euo pipefail
cd "$(dirname "$0")/../.."

clients=${1:-1000000}
nodes=${2:-$(((clients + 19199) / 19200))}
login_rate=${LOGIN_RATE:-3500}
hold=${HOLD:-5m}
chat=${CHAT:-2m}
chat_rate=${CHAT_RATE:-0.01}
storm_fraction=${STORM_FRACTION:-0.1}
node_args=${NODE_ARGS:-} # more flags for every node, e.g. "--archive-days 0"
load_args=${LOAD_ARGS:-}
batch_wait_us=${BATCH_WAIT_US:-0}
storm_at=${STORM_AT:-60s}
reconnect_rate=${RECONNECT_RATE:-4000}
keepalive=${KEEPALIVE:-240s}
profile=${PROFILE:-c1m-loopback}
netns=${NETNS:-rookery-million}
allow_host=${ALLOW_HOST:-1}
backend=${BACKEND:-auto}
bin=${BIN:-target/release}
secret=million-bench-secret
# The ports c1m-loopback reserves (kept out of the ephemeral range): nats and node i's
# client port 5222 + 10 (i - 1), its metrics port + 1.
base_port=${BASE_PORT:-5222}
nats_port=${NATS_PORT:-4222}
# Source addresses: 127.0.0.1..N, one per 50,000 clients (the profile leaves about 64,000
# ephemeral ports per address; rookery-load keeps some of them in reserve).
sources=$(((clients + 49999) / 50000))

for b in rookery rookery-load rookery-tune; do
    [[ -x $bin/$b ]] || { echo "missing $bin/$b: cargo build --release first" >&2; exit 1; }
done
command -v nats-server >/dev/null || { echo "nats-server not found (apt install nats-server)" >&2; exit 1; }
if [[ $(id -u) != 0 && ($netns != none || $profile != none) ]]; then
    echo "run as root (network namespace, sysctls), or with NETNS=none PROFILE=none" >&2
    exit 1
fi

stamp=$(date -u +%Y%m%d-%H%M%S)
out=${OUT:-results}/$stamp-million-c$clients
mkdir -p "$out"
work=$(mktemp -d /tmp/rookery-million.XXXX)
cluster=$work/cluster
sampler=""
loadgen=""

ns() {
    if [[ $netns == none ]]; then "$@"; else ip netns exec "$netns" "$@"; fi
}

cleanup() {
    set +e
    if [[ -n $loadgen ]]; then
        # timeout and rookery-load below the background job: INT first (rookery-load closes
        # its streams and writes what it has), then KILL whatever is left after 30 s.
        local pids
        pids=$(descendants "$loadgen")
        kill -INT $pids "$loadgen" 2>/dev/null
        for _ in $(seq 30); do
            kill -0 $pids 2>/dev/null || break
            sleep 1
        done
        kill -KILL $pids 2>/dev/null
    fi
    [[ -n $sampler ]] && kill "$sampler" 2>/dev/null
    wait 2>/dev/null
    [[ -d $cluster ]] && "$bin/rookery" cluster down --dir "$cluster" >"$out/cluster-down.log" 2>&1
    if [[ -d $work/tune ]]; then
        if [[ $netns == none ]]; then
            "$bin/rookery-tune" revert --state-dir "$work/tune" >"$out/tune-revert.txt" 2>&1
        else
            "$bin/rookery-tune" revert --netns "$netns" --state-dir "$work/tune" \
                >"$out/tune-revert.txt" 2>&1
        fi
    fi
    [[ $netns != none ]] && ip netns del "$netns" 2>/dev/null
    rm -rf "$work"
    echo "results: $out"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Durations in seconds, for the timeout and the report.
secs() { # 5m, 30s, 2m, 500ms -> whole seconds
    case $1 in
        *ms) echo $((${1%ms} / 1000)) ;;
        *m) echo $((${1%m} * 60)) ;;
        *s) echo "${1%s}" ;;
        *) echo "$1" ;;
    esac
}
ramp_s=$(python3 -c "print(int($clients / $login_rate) + 1)")
budget_s=$((ramp_s + $(secs "$hold") + $(secs "$chat") + 600))

# 1. The namespace and the kernel profile.
if [[ $netns != none ]]; then
    ip netns add "$netns"
    ip -n "$netns" link set lo up
fi
if [[ $profile != none ]]; then
    mkdir -p "$work/tune"
    tune_args=(apply "$profile" --state-dir "$work/tune")
    [[ $netns != none ]] && tune_args+=(--netns "$netns")
    [[ $allow_host == 1 ]] && tune_args+=(--allow-host)
    "$bin/rookery-tune" "${tune_args[@]}" >"$out/tune-apply.txt" 2>&1 || {
        cat "$out/tune-apply.txt" >&2
        exit 1
    }
fi
ns "$bin/rookery-tune" check --connections "$clients" --role both --server-processes "$nodes" \
    --source-addresses "$sources" --connect-rate "$login_rate" >"$out/check.txt" 2>&1 || true
head -n 1 "$out/check.txt"

# 2. The cluster.
ns "$bin/rookery" cluster up --dir "$cluster" --nodes "$nodes" --shards 1 \
    --base-port "$base_port" --nats-port "$nats_port" -- --domain example.test \
    --auth token --token-secret "$secret" --backend "$backend" --target-connections 0 \
    --max-unauth-per-address 10000000 --batch-wait-us "$batch_wait_us" $node_args >"$out/cluster-up.log" 2>&1 || {
    tail -n 20 "$out/cluster-up.log" >&2
    exit 1
}
cp "$cluster/cluster.toml" "$out/"
echo "cluster: $nodes nodes + nats-server up ($cluster)"

# 3. The sampler: one CSV row every 5 s.
node_pids() { # the pid files end without a newline
    local f
    for f in "$cluster"/node-*.pid; do echo "$(<"$f")"; done
}
# The descendants of pid $1 (named $2, or any name): rookery-load's processes are those of
# the pid the script started (timeout, then rookery-load and its worker processes), not any
# other rookery-load on the host.
descendants() {
    ps -e -o pid=,ppid=,comm= | awk -v root="$1" -v want="${2:-}" '
        { parent[$1] = $2; name[$1] = $3 }
        END {
            for (p in parent) {
                q = p
                while (q in parent && q != root && q > 1) q = parent[q]
                if (q == root && p != root && (want == "" || name[p] == want)) print p
            }
        }'
}
loadgen_pids() {
    [[ -f $work/loadgen.pid ]] || return 0
    descendants "$(<"$work/loadgen.pid")" rookery-load
}
# "RSS_KIB,CPU_TICKS" summed over the given pids (utime + stime; gone ones count 0).
cpu_rss() {
    local rss=0 cpu=0 p f
    for p in "$@"; do
        read -r -a f < <(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null || echo)
        [[ ${#f[@]} -gt 20 ]] || continue
        cpu=$((cpu + f[11] + f[12]))
        rss=$((rss + f[21] * 4))
    done
    echo "$rss,$cpu"
}
sample() { # /proc first (the instant the row is stamped with), then the nodes' metrics
    local t=$(($(date +%s) - t0))
    local slab sunreclaim avail tcp_inuse tcp_mem
    slab=$(awk '/^Slab:/ {print $2}' /proc/meminfo)
    sunreclaim=$(awk '/^SUnreclaim:/ {print $2}' /proc/meminfo)
    avail=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
    read -r tcp_inuse tcp_mem < <(ns awk '/^TCP:/ {print $3, $NF}' /proc/net/sockstat)
    local nodes_use nats_use load_use
    read -r nodes_use < <(cpu_rss $(node_pids))
    read -r nats_use < <(cpu_rss "$(<"$cluster/nats.pid")")
    read -r load_use < <(cpu_rss $(loadgen_pids))
    local sessions=0 mails=0 i v
    for ((i = 0; i < nodes; i++)); do
        v=$(ns curl -s --max-time 2 "http://127.0.0.1:$((base_port + 10 * i + 1))/metrics" |
            awk '$1 ~ /^rookery_sessions[{ ]/ || $1 == "rookery_sessions" {s += $NF}
                 $1 ~ /^rookery_cluster_mails_out_total/ {m += $NF}
                 END {printf "%d %d", s, m}')
        sessions=$((sessions + ${v% *}))
        mails=$((mails + ${v#* }))
    done
    echo "$t,$sessions,$mails,$slab,$sunreclaim,$avail,$tcp_inuse,$tcp_mem,$nodes_use,$nats_use,$load_use"
}
echo "t_s,sessions,cluster_mails_out,slab_kib,sunreclaim_kib,mem_available_kib,tcp_inuse,tcp_mem_pages,nodes_rss_kib,nodes_cpu_ticks,nats_rss_kib,nats_cpu_ticks,loadgen_rss_kib,loadgen_cpu_ticks" \
    >"$out/samples.csv"
t0=$(date +%s)
sample >>"$out/samples.csv"
(
    while sleep 5; do
        sample >>"$out/samples.csv"
    done
) &
sampler=$!

# 4. The run.
echo "rookery-load: $clients clients at $login_rate logins/s, hold $hold, chat $chat at $chat_rate msg/s each, storm of $storm_fraction at $storm_at (timeout ${budget_s}s)"
loadgen_start_s=$(($(date +%s) - t0))
storm_args=(--storm-fraction "$storm_fraction" --storm-at "$storm_at")
[[ $storm_fraction == 0 ]] && storm_args=() # STORM_FRACTION=0: no storm
set +e
ns timeout --signal=INT --kill-after=60 "$budget_s" "$bin/rookery-load" chat \
    --cluster "$cluster/cluster.toml" --cross-node --domain example.test \
    --auth "token:$secret" --clients "$clients" --login-rate "$login_rate" \
    --source-ips "127.0.0.1-127.0.0.$sources" \
    --hold-first "$hold" --duration "$chat" --rate "$chat_rate" \
    "${storm_args[@]}" \
    --reconnect-rate "$reconnect_rate" --keepalive "$keepalive" --verify --drain-ms 10000 \
    --login-timeout-ms 60000 --connect-timeout-ms 30000 \
    --batch-wait-us "$batch_wait_us" $load_args \
    --output "$out" --slug run >"$out/report.txt" 2>"$out/progress.log" &
loadgen=$!
echo "$loadgen" >"$work/loadgen.pid"
wait "$loadgen"
status=$?
loadgen=""
set -e
sample >>"$out/samples.csv"
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
sampler=""
cat "$out/report.txt"

# 5. The nodes' own view, then the report.
for ((i = 0; i < nodes; i++)); do
    ns curl -s --max-time 2 "http://127.0.0.1:$((base_port + 10 * i + 1))/metrics" \
        >"$out/node-$((i + 1)).metrics" || true
done
{
    echo "commit $(git rev-parse --short HEAD); $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo); kernel $(uname -r)"
    echo "command: benches/scripts/million.sh $clients $nodes"
    echo "env: LOGIN_RATE=$login_rate HOLD=$hold CHAT=$chat CHAT_RATE=$chat_rate STORM_FRACTION=$storm_fraction STORM_AT=$storm_at RECONNECT_RATE=$reconnect_rate KEEPALIVE=$keepalive PROFILE=$profile NETNS=$netns ALLOW_HOST=$allow_host BACKEND=$backend NODE_ARGS=$node_args LOAD_ARGS=$load_args BATCH_WAIT_US=$batch_wait_us"
    echo "rookery-load exit status: $status; loadgen_start_s $loadgen_start_s"
} >"$out/run.txt"
python3 benches/scripts/million-report.py "$out" "$clients" "$nodes" || true
exit "$status"
