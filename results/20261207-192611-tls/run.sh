#!/usr/bin/env bash
# TLS numbers for rookery-load (issue 14 item 6): logins/s plaintext vs TLS full vs TLS
# resumed (storm), chat p50/p99 plain vs TLS alternating, idle server RSS per session.
# Usage: results/<stamp>-tls/run.sh (from the repo root, release binaries built).
set -euo pipefail
OUT=$(cd "$(dirname "$0")" && pwd)
BIN=$(pwd)/target/release
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
cd "$WORK"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
  -days 3 -subj "/CN=rookery test CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout key.pem -out srv.csr \
  -subj "/CN=example.test" 2>/dev/null
printf "subjectAltName=DNS:example.test\n" > ext.cnf
openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cert.pem -days 3 \
  -extfile ext.cnf 2>/dev/null
SERVER=
start_server() {
  rm -rf data
  ROOKERY_TOKEN_SECRET=s3 "$BIN/rookery" --listen 127.0.0.1:25222 --listen-tls 127.0.0.1:25223 \
    --tls-cert cert.pem --tls-key key.pem --domain example.test --data-dir ./data --auth token \
    --admin off --shards 1 > server.log 2>&1 &
  SERVER=$!
  for _ in $(seq 100); do grep -q "ready: listening" server.log && return; sleep 0.1; done
  echo "server did not start"; cat server.log; exit 1
}
stop_server() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; }
rss_kb() { awk '/^VmRSS/ {print $2}' /proc/"$SERVER"/status; }
load() { # name, args...
  local name=$1; shift
  "$BIN/rookery-load" "$@" --auth token:s3 --threads 1 --quiet --output "$OUT/runs" \
    --slug "$name" > "$OUT/$name.txt" 2>&1 || true
  grep -E "^(security|storm|login|message e2e \(corrected\)|errors|memory)" "$OUT/$name.txt" \
    | sed "s/^/$name: /"
}
PLAIN="--server 127.0.0.1:25222"
STARTTLS="--server 127.0.0.1:25222 --tls starttls --tls-ca ca.pem"
DIRECT="--server 127.0.0.1:25223 --tls direct --tls-ca ca.pem"

echo "== logins/s: storm, 500 clients reconnecting unthrottled for 10 s"
start_server
load storm-plain storm $PLAIN --clients 500 --duration 10s
load storm-direct-full storm $DIRECT --tls-resume off --clients 500 --duration 10s
load storm-direct-resumed storm $DIRECT --tls-resume on --clients 500 --duration 10s
load storm-starttls-full storm $STARTTLS --tls-resume off --clients 500 --duration 10s
load storm-starttls-resumed storm $STARTTLS --tls-resume on --clients 500 --duration 10s
stop_server

echo "== chat, 1000 clients x 1 msg/s x 15 s, plain and STARTTLS alternating"
start_server
for round in 1 2; do
  load chat-plain-$round chat $PLAIN --clients 1000 --rate 1 --duration 15s
  load chat-starttls-$round chat $STARTTLS --clients 1000 --rate 1 --duration 15s
done
stop_server

echo "== idle server RSS per session, 3000 sessions held (fresh server each)"
for mode in plain starttls direct; do
  case $mode in plain) a=$PLAIN;; starttls) a=$STARTTLS;; direct) a=$DIRECT;; esac
  start_server; sleep 1
  before=$(rss_kb)
  "$BIN/rookery-load" hold $a --auth token:s3 --threads 1 --quiet --clients 3000 \
    --connect-rate 1000 --duration 8s --stream-management off --output "$OUT/runs" \
    --slug "hold-$mode" > "$OUT/hold-$mode.txt" 2>&1 &
  LOAD=$!
  sleep 9 # ramp 3 s + settle; the hold lasts 8 s after the ramp
  during=$(rss_kb)
  wait $LOAD || true
  echo "hold-$mode: server RSS ${before} kB idle, ${during} kB with 3000 sessions:" \
    "$(( (during - before) * 1024 / 3000 )) B per session;" \
    "$(grep -E '^(logins|memory)' "$OUT/hold-$mode.txt" | tr '\n' ' ')"
  stop_server
done
