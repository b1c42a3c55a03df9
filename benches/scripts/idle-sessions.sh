#!/usr/bin/env bash
# Memory per idle authenticated session: start `rookery` on one backend, let `rookery-load hold`
# open and log in N sessions (default 19,000: the fd ceiling of one process on this machine),
# read the server's RSS (/proc/PID/status VmRSS) before and while they are held, and record
# the per-session delta under results/<date>-idle-sessions-<backend>/.
#
# Reported: gross (RSS delta / sessions) and slope (RSS growth per session between
# N/2 and N sessions, which excludes fixed costs).
#
# Usage: [SM=on] [TRANSPORT=websocket] benches/scripts/idle-sessions.sh [uring|poll] [SESSIONS]
# SM=on: the clients enable XEP-0198 (resumable sessions cost more: see the summary's sm field);
# the default, off, measures a plain session, as the budget of 1 KiB per idle session means.
# TRANSPORT=websocket: the sessions come over RFC 7395 through --http-listen (the shards hold a
# WebSocket layer per conn); the default is tcp.
# Loopback only; the server and load generator are stopped by pid when done.
set -euo pipefail
cd "$(dirname "$0")/../.."
backend=${1:-uring}
sessions=${2:-19000}
port=${PORT:-15999}
admin=${ADMIN_PORT:-19999}
http=${HTTP_PORT:-15998}
transport=${TRANSPORT:-tcp}
cargo build --release --quiet -p rookery -p rookery-load
bin=target/release
stamp=$(date -u +%Y%m%d-%H%M%S)
out=results/$stamp-idle-sessions-$backend$([ "$transport" = tcp ] || echo "-$transport")
mkdir -p "$out"

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
metric() { curl -s "127.0.0.1:$admin/metrics" | awk -v m="$1" 'index($0, m"{")==1 {s+=$2} END {print s+0}'; }

"$bin/rookery" --listen 127.0.0.1:$port --admin 127.0.0.1:$admin --domain example.test \
    --auth token --token-secret idle-secret --backend "$backend" --http-listen 127.0.0.1:$http \
    2> "$out/server.log" &
server=$!
trap 'kill $server 2>/dev/null || true; [ -n "${load:-}" ] && kill $load 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q "ready:" "$out/server.log" && break; sleep 0.1; done
sleep 0.5
rss_before=$(rss_kib $server)

# Two load processes of N/2 sessions each: RSS is read after each half. The gross delta
# includes fixed costs that grow on first use (io_uring: every provided receive buffer is
# touched once traffic flows, 1024 x 4 KiB per shard); the slope between the halves does not.
half=$(( sessions / 2 ))
# The clients come from 16 loopback addresses: from one, a ramp of 5,000 conns/s outruns the
# server's --max-unauth-per-address (1,024 per shard) once half the sessions are held, and
# the refused conns (rookery_unauth_refusals_total) leave the second half short.
source_ips=${SOURCE_IPS:-127.0.0.2-127.0.0.17}
hold() { # $1 = user prefix; runs in the background, pid in $load_pids
    target=127.0.0.1:$port
    [ "$transport" = websocket ] && target=127.0.0.1:$http
    "$bin/rookery-load" hold --server "$target" --transport "$transport" --domain example.test \
        --auth token:idle-secret --source-ips "$source_ips" \
        --clients "$half" --user-prefix "$1" --connect-rate 5000 --duration 40s --output "$out" \
        --slug "loadgen-$1" --stream-management "${SM:-off}" --quiet > "$out/loadgen-$1.txt" 2>&1 &
    load_pids="${load_pids:-} $!"
}
wait_sessions() {
    for _ in $(seq 300); do
        [ "$(metric rookery_sessions)" -ge "$1" ] && break
        sleep 0.1
    done
    sleep 3
}
hold a
load=$load_pids
wait_sessions "$half"
held_half=$(metric rookery_sessions)
rss_half=$(rss_kib $server)
hold b
load=$load_pids
wait_sessions $(( 2 * half ))
held=$(metric rookery_sessions)
rss_held=$(rss_kib $server)
router_heap=$(metric rookery_router_heap_bytes)
kill $load_pids 2>/dev/null || true
wait $load_pids 2>/dev/null || true
kill $server; wait $server || true

slope=$(( (rss_held - rss_half) * 1024 / (held - held_half) ))
per_session=$(( (rss_held - rss_before) * 1024 / held ))
cat > "$out/summary.json" <<JSON
{
  "scenario": "idle-sessions",
  "commit": "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)",
  "backend": "$backend",
  "kernel": "$(uname -r)",
  "cpu": "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)",
  "cores": $(nproc),
  "command": "SM=${SM:-off} TRANSPORT=$transport benches/scripts/idle-sessions.sh $backend $sessions",
  "stream_management": "${SM:-off}",
  "transport": "$transport",
  "sessions_held": $held,
  "server_rss_kib_before": $rss_before,
  "server_rss_kib_half": $rss_half,
  "sessions_held_half": $held_half,
  "server_rss_kib_held": $rss_held,
  "server_rss_bytes_per_session_gross": $per_session,
  "server_rss_bytes_per_session_slope": $slope,
  "router_heap_bytes_total": $router_heap,
  "router_heap_bytes_per_session": $(( router_heap / held ))
}
JSON
cat "$out/summary.json"
