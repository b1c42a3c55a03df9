#!/usr/bin/env bash
# Idle server memory per session, plaintext vs STARTTLS vs direct TLS (issue 14: an idle TLS
# session may cost at most 2 KiB of user space more than a plaintext one) vs WebSocket
# (issue 16), both backends. MODES="plain starttls direct websocket" (default: all four),
# BACKENDS="uring poll".
#
# What it does: makes a P-256 test CA and certificate with openssl; for each backend and each
# mode starts a fresh `rookery --shards 1` (token auth, TLS cert, direct-TLS listener), holds
# N sessions with rookery-load (XEP-0198 off, so nothing but the session is kept), and reads
# the server's VmRSS before and while they are held, and its rookery_tls_heap_bytes gauge.
# Writes results/<stamp>-tls-idle/README.md (table + command) and prints it.
#
# Bounded: each hold lasts --duration after its ramp; every process started is stopped by pid.
# Usage: benches/scripts/tls-idle.sh [SESSIONS (default 19000)]
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
N=${1:-19000}
BIN=$REPO/target/release
STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT=$REPO/results/$STAMP-tls-idle
mkdir -p "$OUT"
WORK=$(mktemp -d)
SERVER=
LOAD=
cleanup() {
    [ -n "$LOAD" ] && kill "$LOAD" 2>/dev/null || true
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
    -days 3 -subj "/CN=rookery test CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem -out srv.csr \
    -subj "/CN=example.test" 2>/dev/null
printf "subjectAltName=DNS:example.test\n" > ext.cnf
openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cert.pem -days 3 \
    -extfile ext.cnf 2>/dev/null

start_server() { # backend mode
    rm -rf data
    # With a certificate the HTTP port speaks HTTPS, and rookery-load has no wss: the
    # WebSocket rows run without one.
    local tls=(--listen-tls 127.0.0.1:25223 --tls-cert cert.pem --tls-key key.pem)
    [ "$2" = websocket ] && tls=()
    ROOKERY_TOKEN_SECRET=s3 "$BIN/rookery" --backend "$1" --listen 127.0.0.1:25222 "${tls[@]}" \
        --domain example.test --data-dir ./data --auth token --admin 127.0.0.1:25290 \
        --shards 1 --durability memory --max-unauth-per-address 1000000 \
        --http-listen 127.0.0.1:25280 > server.log 2>&1 &
    SERVER=$!
    for _ in $(seq 100); do grep -q "ready: listening" server.log && return; sleep 0.1; done
    echo "server did not start"; cat server.log; exit 1
}
rss_kb() { awk '/^VmRSS/ {print $2}' /proc/"$SERVER"/status; }
metric() { curl -s 127.0.0.1:25290/metrics | awk -v m="$1" '$1 ~ "^"m {s+=$2} END {print s+0}'; }

ROWS=""
for backend in ${BACKENDS:-uring poll}; do
    for mode in ${MODES:-plain starttls direct websocket}; do
        case $mode in
            plain) args="--server 127.0.0.1:25222" ;;
            starttls) args="--server 127.0.0.1:25222 --tls starttls --tls-ca ca.pem" ;;
            direct) args="--server 127.0.0.1:25223 --tls direct --tls-ca ca.pem" ;;
            websocket) args="--server 127.0.0.1:25280 --transport websocket" ;;
        esac
        start_server "$backend" "$mode"
        sleep 1
        before=$(rss_kb)
        # shellcheck disable=SC2086
        "$BIN/rookery-load" hold $args --auth token:s3 --threads 1 --quiet --clients "$N" \
            --connect-rate 1500 --duration 20s --stream-management off --output "$OUT/runs" \
            --slug "hold-$backend-$mode" > "$OUT/hold-$backend-$mode.txt" 2>&1 &
        LOAD=$!
        # Wait until every session is up (bounded), then let it settle.
        for _ in $(seq 120); do
            [ "$(metric rookery_sessions)" -ge "$N" ] && break
            sleep 0.5
        done
        sleep 3
        sessions=$(metric rookery_sessions)
        during=$(rss_kb)
        tls_heap=$(metric rookery_tls_heap_bytes)
        wait "$LOAD" || true
        LOAD=
        kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
        SERVER=
        per=$(( (during - before) * 1024 / (sessions > 0 ? sessions : 1) ))
        tls_per=$(( tls_heap / (sessions > 0 ? sessions : 1) ))
        row="| $backend | $mode | $sessions | $before -> $during kB | $per | $tls_per |"
        echo "$row"
        ROWS="$ROWS$row"$'\n'
    done
done

cat > "$OUT/README.md" <<MD
# Idle server memory per session: plaintext vs TLS vs WebSocket ($N sessions, $(date -u +%F))

Command: \`MODES="${MODES:-plain starttls direct websocket}" benches/scripts/tls-idle.sh $N\` (commit $(git -C "$REPO" rev-parse --short HEAD)).
One shard, token auth, XEP-0198 off, a fresh server per row; rookery-load holds the sessions
(TLS 1.3, X25519, TLS_AES_256_GCM_SHA384 from rustls). Server RSS read from /proc while held;
"TLS heap" is the server's own estimate (rookery_tls_heap_bytes / sessions). Machine: 2 vCPU,
24 GiB, Linux $(uname -r), shared with other builds (RSS is not CPU-sensitive).

| backend | mode | sessions | server RSS idle -> held | B per session | layer heap B per session (rookery_tls_heap_bytes) |
|---|---|---|---|---|---|
$ROWS
MD
cat "$OUT/README.md"
