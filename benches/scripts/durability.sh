#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Chat latency under each durability mode, side by side: the same chat load against a fresh
# `rookery` started with --durability memory, log and fsync in turn. With XEP-0198 on (the
# load generator enables it when offered), `sm_ack` is the time until the server acknowledged
# a message, which waits for the recipient shard's log commit: that is where the modes differ.
#
# Usage: benches/scripts/durability.sh [CLIENTS] [RATE_PER_CLIENT] [DURATION]
# Writes results/<stamp>-durability/{memory,log,fsync}/ and prints `rookery-load report`.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=vs-ejabberd-lib.sh
. benches/scripts/vs-ejabberd-lib.sh
clients=${1:-2000}
rate=${2:-5}
duration=${3:-20s}
port=${PORT:-15998}
begin_results durability

for mode in memory log fsync; do
    rm -rf "${data:?}"/*
    start_until_ready "$out/server-$mode.log" "$mode server" \
        "$bin/rookery" --listen 127.0.0.1:"$port" --admin off --domain example.test --auth token \
        --token-secret durability-secret --durability "$mode" --data-dir "$data/$mode"
    "$bin/rookery-load" chat --server 127.0.0.1:"$port" --domain example.test \
        --auth token:durability-secret --clients "$clients" --rate "$rate" --duration "$duration" \
        --output "$out" --slug "$mode" --quiet | tail -n 12 || true
    stop_pid "$server"
    server=""
done
cat > "$out/README.md" <<MD
# Chat latency per durability mode

- commit: $(git rev-parse --short HEAD); machine: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(nproc) cores, Linux $(uname -r)
- command: benches/scripts/durability.sh $clients $rate $duration
- each mode: a fresh server (2 shards, default backend), $clients clients x $rate msg/s for $duration
MD
"$bin/rookery-load" report "$out"/*/ | tee -a "$out/README.md"
