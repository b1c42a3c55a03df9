#!/usr/bin/env bash
# User space per simulated client of rookery-load (the `memory:` line of its report: marginal
# RSS between half and all clients online + the slab slot + the steady phase's growth; see
# loadgen/src/memory.rs), for hold and chat, io_uring and poll, XEP-0198 on and off, against
# one rookery on loopback (token auth, memory durability, one shard).
#
# Each combination is one rookery-load run of CLIENTS (default 19,000: one process' fd
# ceiling here) at 5,000 connects/s for 8 s (chat: 0.05 msg/s per client); its results
# folder and report land under results/<date>-loadgen-memory[-LABEL]/, with a table of the
# numbers (table.txt). The server is restarted for every run and stopped by pid.
#
# Usage: [BIN=target/release] [LABEL=main] [REPEAT=1] [SCENARIOS="hold chat"]
#        [BACKENDS="uring poll"] [SMS="on off"] benches/scripts/loadgen-memory.sh [CLIENTS]
# BIN: where rookery and rookery-load are (built here when it is target/release).
# Loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
clients=${1:-19000}
bin=${BIN:-target/release}
label=${LABEL:+-$LABEL}
repeat=${REPEAT:-1}
port=${PORT:-16411}
admin=${ADMIN_PORT:-16412}
[ "$bin" = target/release ] && cargo build --release --quiet -p rookery -p rookery-load
out=results/$(date -u +%Y%m%d-%H%M%S)-loadgen-memory$label
mkdir -p "$out"
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null || true' EXIT

printf '%-5s %-6s %-3s %3s %10s %10s %10s %10s\n' scenario backend sm run per_client \
    marginal steady gross > "$out/table.txt"
for run in $(seq "$repeat"); do
  for scenario in ${SCENARIOS:-hold chat}; do
    for backend in ${BACKENDS:-uring poll}; do
      for sm in ${SMS:-on off}; do
        slug=c$clients-$backend-sm$sm-$run
        "$bin/rookery" --listen 127.0.0.1:$port --admin 127.0.0.1:$admin \
            --domain example.test --auth token --token-secret lgmem-secret \
            --max-unauth-per-address 100000 --target-connections 0 --shards 1 \
            --durability memory 2> "$out/server-$slug.log" &
        server=$!
        for _ in $(seq 100); do grep -q "ready:" "$out/server-$slug.log" && break; sleep 0.1; done
        rate=()
        [ "$scenario" = chat ] && rate=(--rate 0.05)
        "$bin/rookery-load" "$scenario" --server 127.0.0.1:$port --domain example.test \
            --auth token:lgmem-secret --source-ips 127.0.0.2-127.0.0.17 \
            --clients "$clients" --connect-rate 5000 --duration 8s "${rate[@]}" \
            --backend "$backend" --stream-management "$sm" --output "$out" --slug "$slug" \
            --quiet > "$out/report-$slug.txt" 2>&1 || true
        kill "$server"; wait "$server" 2>/dev/null || true
        server=
        summary=$(ls -d "$out"/*-"$scenario-$slug"/summary.json 2>/dev/null | head -1)
        if [ -z "$summary" ]; then
            echo "no summary for $scenario $slug (see $out/report-$slug.txt)" >&2
            continue
        fi
        python3 - "$summary" "$scenario" "$backend" "$sm" "$run" >> "$out/table.txt" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["memory"]
g = lambda k: m.get(k) if m.get(k) is not None else "-"
print("%-5s %-6s %-3s %3s %10s %10s %10s %10s" % (sys.argv[2], sys.argv[3], sys.argv[4],
      sys.argv[5], g("per_client_bytes"), g("rss_marginal_per_client_bytes"),
      g("rss_steady_growth_per_client_bytes"), g("rss_growth_per_online_client_bytes")))
PY
      done
    done
  done
done
echo "tree $(git rev-parse --short HEAD 2>/dev/null || echo unknown); binaries $bin" \
    "(rookery-load built $(date -u -r "$bin/rookery-load" +%FT%TZ))" >> "$out/table.txt"
cat "$out/table.txt"
