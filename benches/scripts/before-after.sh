#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Before/after (issue 10): the hold and chat runs of the engine and loadgen issues, against
# a baseline server built from REV (default 35553f7, wave 1's end) and the current tree's,
# alternating old/new, with the SAME load generator (the current tree's rookery-load) for
# both; the table quotes medians and new/old ratios.
#
# Each run gets a fresh server (one shard pinned to core 0, its default durability, a fresh
# --data-dir); rookery-load runs pinned to core 1 with --threads 1, as vs-ejabberd.sh does.
# hold: HOLD_N idle sessions for HOLD_S; the server's RSS is read before the load and every
# 0.5 s during it: (highest - before) / HOLD_N = RSS per session.
# chat: CHAT_N users x CHAT_RATE msg/s for CHAT_S: end-to-end latency (corrected for
# coordinated omission) p50/p99/p99.9 and lost messages, from rookery-load's summary.json.
# Order per repetition: old, new; then new, old; ... (REPS repetitions of each scenario).
#
# Usage: benches/scripts/before-after.sh [--quick] [REV]
# Env: BASE_DIR (an existing checkout of REV: no worktree is added), BASE_TARGET (cargo target
#      dir for the baseline build; default <checkout>/target), REPS (3), HOLD_N (19000),
#      HOLD_S (20), CHAT_N (10000), CHAT_RATE (1), CHAT_S (60), CONNECT_RATE (2000),
#      PORT (15960), ONLY ("hold chat": the scenarios to run).
# Writes results/<stamp>-before-after/: the rookery-load folders (runs/), server logs,
# commands.txt, runs.tsv, README.md. Every process it starts is stopped by pid (servers) or
# bounded by `timeout` (each load run); a worktree it added is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=vs-ejabberd-lib.sh
. benches/scripts/vs-ejabberd-lib.sh
say() { printf '[before-after %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

quick=0
if [ "${1:-}" = --quick ]; then quick=1; shift; fi
rev=${1:-35553f7}
reps=${REPS:-3}
if [ "$quick" = 1 ]; then
    hold_n=${HOLD_N:-2000} hold_s=${HOLD_S:-5} chat_n=${CHAT_N:-1000} chat_s=${CHAT_S:-10}
else
    hold_n=${HOLD_N:-19000} hold_s=${HOLD_S:-20} chat_n=${CHAT_N:-10000} chat_s=${CHAT_S:-60}
fi
chat_rate=${CHAT_RATE:-1}
only=${ONLY:-"hold chat"}
want() { case " $only " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
connect_rate=${CONNECT_RATE:-2000}
port=${PORT:-15960}
secret="before-after-secret"
[ "$(uname -s)" = Linux ] || { say "Linux only (taskset, /proc)"; exit 1; }
[ "$(nproc --all)" -ge 2 ] || { say "needs 2 cores: server on core 0, load on core 1"; exit 1; }
port_open "$port" && { say "127.0.0.1:$port is in use (set PORT)"; exit 1; }

work=$(mktemp -d)
server=""
added_worktree=""
cleanup() {
    stop_pid "$server"
    [ -n "$added_worktree" ] && git worktree remove --force "$added_worktree" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# ---- binaries ------------------------------------------------------------------------------

say "building the current tree (rookery, rookery-load)"
cargo build --release --quiet -p rookery -p rookery-load
mkdir -p "$work/new" "$work/old"
cp target/release/rookery target/release/rookery-load "$work/new/"
new_commit=$(git rev-parse --short HEAD)
[ -z "$(git status --porcelain | head -n 1)" ] || new_commit="$new_commit (uncommitted changes)"

base=${BASE_DIR:-}
if [ -n "$base" ]; then
    have=$(git -C "$base" rev-parse HEAD)
    want=$(git rev-parse "$rev^{commit}")
    [ "$have" = "$want" ] || { say "BASE_DIR $base is at $have, not $rev ($want)"; exit 1; }
else
    base=$work/base-src
    git worktree add --detach "$base" "$rev" > /dev/null
    added_worktree=$base
fi
old_commit=$(git -C "$base" rev-parse --short HEAD)
say "building the baseline $old_commit in $base"
(cd "$base" && CARGO_TARGET_DIR=${BASE_TARGET:-$base/target} cargo build --release --quiet -p rookery)
cp "${BASE_TARGET:-$base/target}/release/rookery" "$work/old/"
load=$work/new/rookery-load

out=results/$(date -u +%Y%m%d-%H%M%S)-before-after
mkdir -p "$out/runs"
cmds=$out/commands.txt runs=$out/runs.tsv
echo "# binaries: old = rookery at $old_commit, new = rookery and rookery-load at $new_commit" > "$cmds"
printf 'server\trep\tscenario\texit\tsummary\trss_before_kib\trss_held_kib\tloadavg\n' > "$runs"

# ---- one run ---------------------------------------------------------------------------------

start_server() { # $1 = old|new, $2 = log
    rm -rf "$work/data"
    local argv=(taskset -c 0 "$work/$1/rookery" --listen "127.0.0.1:$port" --admin off
        --domain example.test --auth token --token-secret "$secret" --shards 1 --cores 0
        --data-dir "$work/data")
    # Newer servers cap unauthenticated conns per source address (1024 by default); a ramp
    # of this size on a busy machine keeps more than that logging in at once from each of
    # the load generator's two loopback addresses, so the cap is lifted for both runs alike.
    if "$work/$1/rookery" --help | grep -q -- '--max-unauth-per-address '; then
        argv+=(--max-unauth-per-address 1000000)
    fi
    echo "[$1 server] ${argv[*]//$work/<tmp>}" | sed "s/$secret/<secret>/" >> "$cmds"
    start_until_ready "$2" "$1 server" "${argv[@]}"
}

# run WHICH REP SCENARIO CLIENTS DURATION_S [flags]: a fresh server, one bounded load run,
# a row in runs.tsv.
run() {
    local which=$1 rep=$2 scenario=$3 clients=$4 dur=$5
    shift 5
    local slug=$which-$scenario-$rep
    start_server "$which" "$out/server-$slug.log"
    local cmd=(taskset -c 1 "$load" "$scenario" --server "127.0.0.1:$port" --clients "$clients"
        --connect-rate "$connect_rate" --duration "${dur}s" --threads 1 --output "$out/runs"
        --slug "$slug" --quiet "$@")
    echo "[$slug] ${cmd[*]//$work/<tmp>} --auth token:<secret>" >> "$cmds"
    local rss0 rss_held=- rc=0 loadavg
    loadavg=$(cut -d' ' -f1 /proc/loadavg)
    rss0=$(rss_kib "$server")
    timeout --kill-after=5 $((clients / connect_rate + dur + 90)) "${cmd[@]}" \
        --auth "token:$secret" > "$out/runs/$slug.txt" 2>&1 &
    local load_pid=$!
    if [ "$scenario" = hold ]; then
        # The highest RSS while the load runs: every session is held for the whole duration
        # once the ramp ended (logins finish seconds after their conns on a busy machine, so
        # one sample when the conns are up would miss some).
        local rss
        rss_held=0
        while kill -0 "$load_pid" 2>/dev/null; do
            rss=$(rss_kib "$server")
            [ "${rss:-0}" -gt "$rss_held" ] && rss_held=$rss
            sleep 0.5
        done
    fi
    wait "$load_pid" || rc=$?
    stop_pid "$server"
    server=""
    local summary
    summary=$(find "$out/runs" -maxdepth 2 -path "*-$slug/summary.json" | head -n 1)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$which" "$rep" "$scenario" "$rc" "${summary:--}" \
        "$rss0" "$rss_held" "$loadavg" >> "$runs"
    say "$slug: exit $rc"
}

for ((r = 1; r <= reps; r++)); do
    want hold || break
    if ((r % 2)); then order="old new"; else order="new old"; fi
    for which in $order; do run "$which" "$r" hold "$hold_n" "$hold_s"; done
done
for ((r = 1; r <= reps; r++)); do
    want chat || break
    if ((r % 2)); then order="old new"; else order="new old"; fi
    for which in $order; do run "$which" "$r" chat "$chat_n" "$chat_s" --rate "$chat_rate"; done
done

# ---- table ---------------------------------------------------------------------------------

# values WHICH SCENARIO FIELD: one value per run, from runs.tsv (rss_per_session) or the
# run's summary.json (a dotted path).
values() {
    tail -n +2 "$runs" | while IFS=$'\t' read -r w _ s _ summary rss0 held _; do
        if [ "$w" != "$1" ] || [ "$s" != "$2" ]; then continue; fi
        case "$3" in
            rss_per_session) [ "$held" = - ] || calc "($held - $rss0) * 1024 / $hold_n" ;;
            *) [ "$summary" = - ] || json_get "$summary" "$3" ;;
        esac
    done
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
all() { values "$@" | tr '\n' ' '; }
line() { # $1 = label, $2 = scenario, $3 = field, $4 = format
    local o n
    o=$(values old "$2" "$3" | median) n=$(values new "$2" "$3" | median)
    printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$(fmt "$4" "$o")" "$(fmt "$4" "$n")" \
        "$(fmt %.2f "$(calc "$n / $o")")" "$(all old "$2" "$3")" "$(all new "$2" "$3")"
}
{
    echo "# Before/after: hold and chat, baseline $old_commit vs $new_commit"
    echo
    echo "- machine: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(nproc) cores, Linux $(uname -r); SHARED with other work and noisy: read medians and ratios, not single runs (load average at each run's start in runs.tsv)"
    echo "- command: ONLY=\"$only\" HOLD_N=$hold_n HOLD_S=$hold_s CHAT_N=$chat_n CHAT_RATE=$chat_rate CHAT_S=$chat_s REPS=$reps benches/scripts/before-after.sh $([ "$quick" = 1 ] && echo "--quick ")$rev; exact commands in commands.txt"
    echo "- servers: one shard on core 0, default durability, fresh data dir each run (the new one with --max-unauth-per-address 1000000: its per-address cap of unauthenticated conns, 1024 by default, refuses part of a 2,000/s ramp on a busy machine; the old one has no such cap); load: the new rookery-load on core 1, --threads 1, for both servers"
    echo "- hold: $hold_n idle sessions for ${hold_s}s (RSS per session = (highest server RSS during the run, sampled every 0.5 s - RSS before) / $hold_n)"
    echo "- chat: $chat_n users x $chat_rate msg/s x ${chat_s}s, latency end to end corrected for coordinated omission (us)"
    echo "- $reps repetitions each, alternating (old, new), (new, old), ...; medians; ratio = new / old"
    echo
    echo "| metric | old (median) | new (median) | new/old | old runs | new runs |"
    echo "| --- | --- | --- | --- | --- | --- |"
    want hold && line "hold: logins" hold counts.logins %.0f
    want hold && line "hold: server RSS per session, B" hold rss_per_session %.0f
    want hold && line "hold: login p99, us" hold latency_us.login.p99_us %.0f
    want chat && line "chat: logins" chat counts.logins %.0f
    want chat && line "chat: messages sent" chat counts.messages.sent %.0f
    want chat && line "chat: lost" chat counts.messages.lost %.0f
    want chat && line "chat: duplicated" chat counts.messages.duplicated %.0f
    want chat && line "chat: p50, us" chat latency_us.e2e_corrected.p50_us %.0f
    want chat && line "chat: p99, us" chat latency_us.e2e_corrected.p99_us %.0f
    want chat && line "chat: p99.9, us" chat latency_us.e2e_corrected.p999_us %.0f
    want chat && line "chat: max, us" chat latency_us.e2e_corrected.max_us %.0f
} > "$out/README.md"
cat "$out/README.md"
