#!/usr/bin/env bash
# One node vs three nodes over NATS, side by side in one run, alternating:
#  - chat with XEP-0198 (--verify): p50/p99 end to end and server CPU per delivered message,
#    on a 1-node cluster (nothing crosses) vs 3 nodes where every message crosses nodes
#    (rookery-load --cluster FILE --cross-node: sender and recipient homes differ);
#  - cross-node messages per second per node (the 3-node run's bridge counters);
#  - login rate: hold on 3 nodes, every client dialling node 1 (see-other-host redirects)
#    vs --cluster FILE (each client dials its home).
# Nodes run with --max-unauth-per-address 100000: every redirected client first holds an
# unauthenticated conn on node 1, and the default per-address cap (all clients come from
# 127.0.0.x) would refuse a burst of them with policy-violation instead of measuring redirects.
# Every node has one shard (same per-process shape on both sides); CPU is utime+stime of
# every node and nats-server from /proc/PID/stat. Both clusters come up with
# `rookery cluster up` and go down with `rookery cluster down` (by their pid files).
#
# Usage: benches/scripts/cluster-vs-single.sh [CLIENTS] [RATE_PER_CLIENT] [DURATION] [ROUNDS]
# Writes results/<stamp>-cluster/ (runs/, README.md with the table). Whole script < 10 min.
set -euo pipefail
cd "$(dirname "$0")/../.."
clients=${1:-300}
rate=${2:-10}
duration=${3:-15s}
rounds=${4:-2}
login_clients=${LOGIN_CLIENTS:-2000}
secret=cluster-bench-secret
bin=target/release
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=results/$stamp-cluster
mkdir -p "$out/runs"
one=$(mktemp -d /tmp/rookery-one.XXXX)
three=$(mktemp -d /tmp/rookery-three.XXXX)
down() {
    "$bin/rookery" cluster down --dir "$one" >/dev/null 2>&1 || true
    "$bin/rookery" cluster down --dir "$three" >/dev/null 2>&1 || true
    rm -rf "$one" "$three"
}
trap down EXIT
up() { # dir nodes base nats
    "$bin/rookery" cluster up --dir "$1" --nodes "$2" --shards 1 --base-port "$3" \
        --nats-port "$4" -- --domain example.test --auth token --token-secret "$secret" \
        --backend poll --target-connections 0 --max-unauth-per-address 100000 \
        >"$out/up-$2.log"
}
up "$one" 1 17222 17299
up "$three" 3 17322 17399
sleep 1
# CPU ticks (utime + stime) of every process a cluster dir started.
ticks() {
    local total=0 f fields
    for f in "$1"/*.pid; do
        read -r -a fields < <(sed 's/^.*) //' "/proc/$(cat "$f")/stat")
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}
# Sum of a counter over the nodes' /metrics (admin port = client port + 1).
metric() { # dir nodes base name
    local total=0 i v
    for ((i = 0; i < $2; i++)); do
        v=$(curl -s "http://127.0.0.1:$(($3 + 10 * i + 1))/metrics" |
            awk -v n="$4" 'index($0, n"{") == 1 || $1 == n {s += $NF} END {print s + 0}')
        total=$((total + ${v%.*}))
    done
    echo "$total"
}
load() { # name dir nodes base args...
    local name=$1 dir=$2 nodes=$3 base=$4
    shift 4
    local t0 m0 t1 m1
    t0=$(ticks "$dir")
    m0=$(metric "$dir" "$nodes" "$base" rookery_cluster_mails_out_total)
    "$bin/rookery-load" "$@" --domain example.test --auth "token:$secret" --quiet \
        --output "$out/runs/$name" --slug "$name" | tail -n 4 || true
    t1=$(ticks "$dir")
    m1=$(metric "$dir" "$nodes" "$base" rookery_cluster_mails_out_total)
    echo "{\"ticks\": $((t1 - t0)), \"mails_out\": $((m1 - m0)), \"nodes\": $nodes}" \
        >"$out/runs/$name/server.json"
}
for ((r = 1; r <= rounds; r++)); do
    load "single-chat-$r" "$one" 1 17222 chat --server 127.0.0.1:17222 --clients "$clients" \
        --rate "$rate" --duration "$duration" --verify --connect-rate 2000
    load "cluster-chat-$r" "$three" 3 17322 chat --cluster "$three/cluster.toml" --cross-node \
        --clients "$clients" --rate "$rate" --duration "$duration" --verify --connect-rate 2000
    load "login-redirect-$r" "$three" 3 17322 hold --server 127.0.0.1:17322 \
        --clients "$login_clients" --connect-rate 100000 --duration 1s --user-prefix "r${r}u"
    load "login-direct-$r" "$three" 3 17322 hold --cluster "$three/cluster.toml" \
        --clients "$login_clients" --connect-rate 100000 --duration 1s --user-prefix "d${r}u"
done
python3 - "$out" "$clients" "$rate" "$duration" "$login_clients" <<'PY' >"$out/README.md"
import glob, json, os, subprocess, sys
out, clients, rate, duration, login_clients = sys.argv[1:]
hz = os.sysconf("SC_CLK_TCK")
def runs(prefix):
    for d in sorted(glob.glob(f"{out}/runs/{prefix}-*")):
        s = json.load(open(glob.glob(f"{d}/*/summary.json")[0]))
        yield os.path.basename(d), s, json.load(open(f"{d}/server.json"))
def lat(s, m, q):
    return s["latency_us"].get(m, {}).get(q, 0) / 1000
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
cpu = open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": ")
print("# 1 node vs 3 nodes over NATS\n")
print(f"- commit {commit}; {cpu}, {os.cpu_count()} cores (load generator, nodes and nats-server share them)")
print(f"- command: benches/scripts/cluster-vs-single.sh {clients} {rate} {duration}; every node 1 shard, poll backend, token auth")
print(f"- chat: {clients} clients x {rate} msg/s, XEP-0198 on, --verify; 3 nodes: --cluster --cross-node (every message crosses nodes)")
print("- nodes run with --max-unauth-per-address 100000 (a redirect burst otherwise meets the per-address cap of unauthenticated conns on node 1: policy-violation)")
print(f"- login: hold of {login_clients} clients at an unbounded connect rate on the 3 nodes, dialling node 1 (redirects) or each home (--cluster)\n")
print("| run | sent | delivered | acked lost | e2e p50 ms | e2e p99 ms | sm_ack p99 ms | server CPU s | CPU us/msg | cross-node msg/s/node | server CPU % of 1 core |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for prefix in ["single-chat", "cluster-chat"]:
    for name, s, srv in runs(prefix):
        m = s["counts"]["messages"]; a = s["counts"]["acks"] or {}
        secs = srv["ticks"] / hz
        dur = s["config"]["duration_ms"] / 1000
        per = secs * 1e6 / max(m["delivered"], 1)
        cross = srv["mails_out"] / dur / srv["nodes"] if srv["nodes"] > 1 else 0
        wall = (s["phases_ms"]["ramp"] + s["phases_ms"]["steady_drain_close"]) / 1000
        print(f"| {name} | {m['sent']} | {m['delivered']} | {a.get('acked_lost', '-')} | {lat(s,'e2e_corrected','p50_us'):.2f} | {lat(s,'e2e_corrected','p99_us'):.2f} | {lat(s,'sm_ack','p99_us'):.2f} | {secs:.2f} | {per:.0f} | {cross:.0f} | {100 * secs / wall:.0f} |")
print("\n| run | logins | errors | redirects | ramp s | logins/s | login p50 ms | login p99 ms |")
print("|---|---|---|---|---|---|---|---|")
for prefix in ["login-redirect", "login-direct"]:
    for name, s, srv in runs(prefix):
        c = s["counts"]; ramp = s["phases_ms"]["ramp"] / 1000
        print(f"| {name} | {c['logins']} | {c['errors_total']} | {c['redirects']} | {ramp:.2f} | {c['logins'] / max(ramp, 1e-9):.0f} | {lat(s,'login','p50_us'):.2f} | {lat(s,'login','p99_us'):.2f} |")
print("\n`cross-node msg/s/node`: rookery_cluster_mails_out_total over the 3 nodes during the run / duration / 3 (mails include the commit acks travelling back). CPU: utime+stime of every node and nats-server over the whole run (ramp, steady, drain, close).")
PY
cat "$out/README.md"
