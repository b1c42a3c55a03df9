#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Drain rate of a ~100 MB offline backlog to one client (issue 10): for each server backend
# (io_uring, poll), each message shape (100,000 x 1 KiB and 1,600 x 64 KiB by default) and
# each recipient mode (XEP-0198 acking every ACK_EVERY stanzas, and no XEP-0198), a fresh
# `rookery` (one shard pinned to core 0, --durability log, a fresh --data-dir, budgets large
# enough for the backlog, --max-stanza-bytes 131072 so a 64 KiB body fits in a stanza) gets
# the backlog from SENDERS clients, then the recipient logs in and reads it: `rookery-load
# drain` (pinned to core 1) measures bind -> last message, msgs/s, MB/s, checks every message
# arrived exactly once and in order, and records the server's RSS (--server-pid).
#
# Each configuration runs REPS times, the repetitions interleaved (every configuration once,
# then again), and the README quotes the median of each (the machine is shared and noisy).
#
# Usage: benches/scripts/drain.sh [--quick]   (--quick: 10x smaller backlogs)
# Env: PORT (default 15950), SENDERS (4), ACK_EVERY (256), BACKENDS ("uring poll"),
#      SHAPES ("100000x1024 1600x65536"), REPS (3), RUN_TIMEOUT_S (900 per run),
#      SERVER_EXTRA (more rookery options, e.g. "--max-output-bytes 8388608"; word-split).
# Writes results/<stamp>-drain/: one rookery-load folder per run, server logs, commands.txt,
# README.md with the table. Every process it starts is stopped by pid; every run is bounded
# by `timeout`.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=vs-ejabberd-lib.sh
. benches/scripts/vs-ejabberd-lib.sh
say() { printf '[drain %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

port=${PORT:-15950}
senders=${SENDERS:-4}
ack_every=${ACK_EVERY:-256}
backends=${BACKENDS:-"uring poll"}
shapes=${SHAPES:-"100000x1024 1600x65536"}
run_timeout=${RUN_TIMEOUT_S:-900}
reps=${REPS:-3}
if [ "${1:-}" = --quick ]; then shapes=${SHAPES:-"10000x1024 160x65536"}; fi
secret=drain-secret
begin_results drain
cmds=$out/commands.txt
: > "$cmds"

start_server() { # $1 = backend, $2 = log
    rm -rf "${data:?}"/*
    local argv=(taskset -c 0 "$bin/rookery" --listen "127.0.0.1:$port" --admin off
        --domain example.test --auth token --token-secret "$secret" --backend "$1"
        --shards 1 --cores 0 --max-stanza-bytes 131072 --durability log --data-dir "$data/store"
        --offline-max 1000000 --offline-max-bytes 1073741824 --store-max-bytes 4294967296)
    # shellcheck disable=SC2206 # word splitting wanted: a list of options
    argv+=(${SERVER_EXTRA:-})
    echo "[server] ${argv[*]//$data/<tmp>}" | sed "s/$secret/<secret>/" >> "$cmds"
    start_until_ready "$2" server "${argv[@]}"
}

for ((rep = 1; rep <= reps; rep++)); do
for backend in $backends; do
    for shape in $shapes; do
        messages=${shape%x*}
        bytes=${shape#*x}
        for sm in on off; do
            slug="$backend-m$messages-b$bytes-sm$sm-$rep"
            start_server "$backend" "$out/server-$slug.log"
            argv=(timeout "$run_timeout" taskset -c 1 "$bin/rookery-load" drain
                --server "127.0.0.1:$port" --server-pid "$server" --senders "$senders"
                --messages "$messages" --body-bytes "$bytes" --stream-management "$sm"
                --ack-every "$ack_every" --output "$out" --slug "$slug" --quiet)
            echo "[load] ${argv[*]} --auth token:<secret>" >> "$cmds"
            say "$slug"
            "${argv[@]}" --auth "token:$secret" | tee "$out/load-$slug.txt" || say "$slug: exit $?"
            stop_pid "$server"
            server=""
        done
    done
done
done

# rate_cells GETTER ARG: the columns both tables share (drain s, msgs/s, body and wire MB/s,
# server and recipient CPU %), each read by `GETTER ARG PATH` (json_get FILE or med CONFIG).
rate_cells() {
    local get=$1 arg=$2
    printf '%s | %s | %s | %s | %s | %s' \
        "$(fmt %.3f "$("$get" "$arg" drain.bind_to_last_s)")" \
        "$(fmt %.0f "$("$get" "$arg" drain.msgs_per_s)")" \
        "$(fmt %.1f "$("$get" "$arg" drain.body_mb_per_s)")" \
        "$(fmt %.1f "$("$get" "$arg" drain.wire_mb_per_s)")" \
        "$(fmt %.0f "$("$get" "$arg" drain.server_cpu_pct)")" \
        "$(fmt %.0f "$("$get" "$arg" drain.recipient_cpu_pct)")"
}

row() { # $1 = run folder
    local s=$1/summary.json
    local rss_stored rss_peak
    rss_stored=$(json_get "$s" server_rss_kib.stored)
    rss_peak=$(json_get "$s" server_rss_kib.drain_peak_kib)
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' \
        "$(basename "$1" | sed 's/^[0-9-]*-drain-//')" \
        "$(fmt %.0f "$(json_get "$s" store.msgs_per_s)")" \
        "$(rate_cells json_get "$s")" \
        "$(fmt %.0f "$(json_get "$s" drain.server_runq_wait_pct)")/$(fmt %.0f "$(json_get "$s" drain.recipient_runq_wait_pct)")" \
        "$(json_get "$s" drain.acks_sent)" \
        "$(json_get "$s" drain.missing)/$(json_get "$s" drain.tally.duplicates)/$(json_get "$s" drain.tally.out_of_order)" \
        "$(fmt %.1f "$(calc "$(json_get "$s" server_rss_kib.start) / 1024")")/$(fmt %.1f "$(calc "$rss_stored / 1024")")/$(fmt %.1f "$(calc "$rss_peak / 1024")")/$(fmt %.1f "$(calc "$(json_get "$s" server_rss_kib.drained) / 1024")")" \
        "$(json_get "$s" passed)"
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# med CONFIG PATH: the median of PATH over CONFIG's repetitions.
med() { for d in "$out"/*-drain-"$1"-[0-9]*/; do json_get "$d/summary.json" "$2"; done | median; }

{
    echo "# Drain rate of an offline backlog to one client"
    echo
    echo "- commit: $(git rev-parse --short HEAD); machine: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(nproc) cores, Linux $(uname -r); the machine is SHARED with other work and noisy (load average $(cut -d' ' -f1-3 /proc/loadavg) at the end): read medians"
    echo "- command: ${SERVER_EXTRA:+SERVER_EXTRA=\"$SERVER_EXTRA\" }${BACKENDS:+BACKENDS=\"$BACKENDS\" }${SHAPES:+SHAPES=\"$SHAPES\" }REPS=$reps benches/scripts/drain.sh $*; exact commands in commands.txt"
    echo "- server: one shard on core 0, --durability log, fresh --data-dir per run; rookery-load drain on core 1 ($senders senders, then one recipient; XEP-0198 acks every $ack_every stanzas when on)"
    echo "- time: from the recipient's bind to the read that completed the backlog; MB = 10^6 bytes; body MB/s counts the bodies, wire MB/s every byte read"
    echo "- CPU: % of one core used during the drain by the server (all threads) and by the recipient's thread; waiting for a CPU: time runnable but not running (another process had the core), from /proc/*/schedstat"
    echo "- RSS (MiB): server at start / backlog stored / peak while draining (100 ms samples) / after the drain"
    echo
    echo "## Medians of $reps repetitions"
    echo
    echo "| backend | backlog | XEP-0198 | drain s | msgs/s | body MB/s | wire MB/s | server CPU % | recipient CPU % | server waiting for a CPU % | store msgs/s |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for backend in $backends; do
        for shape in $shapes; do
            for sm in on off; do
                c="$backend-m${shape%x*}-b${shape#*x}-sm$sm"
                printf '| %s | %s x %s B | %s | %s | %s | %s |\n' "$backend" \
                    "${shape%x*}" "${shape#*x}" "$sm" \
                    "$(rate_cells med "$c")" \
                    "$(fmt %.0f "$(med "$c" drain.server_runq_wait_pct)")" \
                    "$(fmt %.0f "$(med "$c" store.msgs_per_s)")"
            done
        done
    done
    echo
    echo "## Every run"
    echo
    echo "| run | store msgs/s | drain s | msgs/s | body MB/s | wire MB/s | server CPU % | recipient CPU % | waiting for a CPU % (server/recipient) | acks sent | missing/dup/reordered | RSS MiB | passed |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for dir in "$out"/*-drain-*/; do row "${dir%/}"; done
} > "$out/README.md"
cat "$out/README.md"
