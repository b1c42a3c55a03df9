#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# rookery vs its runtime peers (relay-tokio, relay-monoio, relay-glommio), side by side.
#
# What it does, in order:
#  1. builds the release binaries when missing (cargo build --release -p rookery -p rookery-load
#     -p rookery-relays);
#  2. runs the same rookery-load chat sweep against each server, one server at a time, fresh
#     for every step: the servers pinned to core 0 (rookery `--shards 1 --cores 0 --durability
#     log`; the relays `--core 0`, all under `taskset -c 0`), rookery-load on core 1 with
#     `--threads 1`; same clients, rates, duration and flags for every server (XEP-0198 off);
#     the rates are interleaved (every server at rate R before any at the next rate);
#  3. per step records, from rookery-load's summary.json and /proc: msgs/s offered and
#     delivered, e2e p50/p99/p99.9 (corrected), the server's CPU over the steady phase
#     (utime + stime deltas of its pid) and CPU microseconds per delivered message, the
#     generator's CPU and every other process's (so the report says which side saturated);
#     and, when perf (linux-perf) and inferno (`cargo install inferno`) are installed, a flame
#     graph of the server over the steady window (<server>/rate-<N>/flame.svg);
#  4. with HOLD=N, first has each server hold N idle sessions (rookery-load hold) and reads its
#     RSS once they are all up (not in the default run: ~N/2000 + 12 s per server);
#  5. writes results/<stamp>-relays-vs-rookery/README.md (machine, commit, commands, the
#     table) next to runs.tsv, commands.txt, settings.env and every step's rookery-load folder
#     and server log (the relays' log ends with their stats line: relayed and dropped).
#
# What it does not do: tune the kernel, or leave anything running: the server and the load
# generator are stopped by pid (SIGTERM, SIGKILL after 20 s) on every exit path, and the temp
# dir is removed. Bounded: every load run has a hard timeout (ramp + duration + 60 s), a
# server leaves the sweep after falling behind the offered rate in two steps in a row (latency
# alone does not end it), and no step starts past the time budget. Run time: about 14 s per
# step; the default sweep (4 servers x 7 rates, 10 s each) took 393-410 s here (budget 570 s);
# --quick (4 x 3 rates, 5 s) about 2 minutes.
#
# Usage: benches/scripts/relays-vs-rookery.sh [--quick]
#        benches/scripts/relays-vs-rookery.sh --report results/<stamp>-relays-vs-rookery
# Environment: ROOKERY_ARGS (more flags for every rookery), PORT (5331), ADMIN_PORT (9331, rookery's metrics), SERVERS ("rookery
# relay-tokio relay-monoio relay-glommio"; a variant rookery@flag=value,flag=value runs
# rookery with those flags, e.g. "rookery rookery@file-writes=inline"), RATES (total msgs/s, space separated; empty: no
# sweep), CLIENTS (2000), STEP_S (seconds per step), BUDGET_S, HOLD (0: no hold phase), HOLD_S
# (8), ROOKERY_BIN_DIR (target/release), RT_PRIO (empty: normal scheduling; N: the servers and
# rookery-load run under `chrt -f N`, this shell at N+1, and the folder is named ...-rt: on a
# shared machine other work then cannot delay their wake-ups or take their cores; SCHED_FIFO
# still leaves 5% of each core to others, RT throttling).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
# shellcheck source=vs-ejabberd-lib.sh
. benches/scripts/vs-ejabberd-lib.sh
# shellcheck source=relays-vs-rookery-report.sh
. benches/scripts/relays-vs-rookery-report.sh
say() { printf '[relays-vs-rookery %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

QUICK=0
REPORT_ONLY=
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --report) [ $# -ge 2 ] || die "--report needs a results folder"; REPORT_ONLY=$2; shift ;;
        -h | --help) sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (usage: $0 [--quick] | --report DIR)" ;;
    esac
    shift
done
if [ -n "$REPORT_ONLY" ]; then
    [ -f "$REPORT_ONLY/settings.env" ] || die "$REPORT_ONLY/settings.env not found (not a relays-vs-rookery folder?)"
    # shellcheck source=/dev/null
    . "$REPORT_ONLY/settings.env"
    OUT=$REPORT_ONLY RUNS=$REPORT_ONLY/runs.tsv CMDS=$REPORT_ONLY/commands.txt
    write_readme > "$OUT/README.md"
    cat "$OUT/README.md"
    exit 0
fi

DOMAIN=example.test
USER_PREFIX=user
SECRET=relays-vs-rookery-secret
PORT=${PORT:-5331}
ADMIN_PORT=${ADMIN_PORT:-9331}
SERVER_CORE=0
LOAD_CORE=1
CONNECT_RATE=2000
SERVERS=${SERVERS:-"rookery relay-tokio relay-monoio relay-glommio"}
CLIENTS=${CLIENTS:-2000}
HOLD=${HOLD:-0}
HOLD_S=${HOLD_S:-8}
if [ "$QUICK" = 1 ]; then
    MODE=quick RATES=${RATES-"8000 32000 64000"} STEP_S=${STEP_S:-5} BUDGET_S=${BUDGET_S:-240}
else
    MODE=full RATES=${RATES-"8000 16000 32000 48000 64000 80000 96000"} STEP_S=${STEP_S:-10}
    BUDGET_S=${BUDGET_S:-570}
fi
DURABILITY=log
ROOKERY_ARGS=${ROOKERY_ARGS:-}
START_S=$(date +%s)
RT_PRIO=${RT_PRIO:-}
PREFIX=()
if [ -n "$RT_PRIO" ]; then
    case "$RT_PRIO" in *[!0-9]* | '') die "RT_PRIO must be a number (1-98)" ;; esac
    if [ "$RT_PRIO" -lt 1 ] || [ "$RT_PRIO" -gt 98 ]; then die "RT_PRIO must be between 1 and 98"; fi
    command -v chrt > /dev/null || die "RT_PRIO needs chrt (util-linux)"
    PREFIX=(chrt -f "$RT_PRIO")
    # This shell samples on a schedule: one step above the servers, so it wakes on time (it
    # sleeps almost all the while).
    chrt -f -p $((RT_PRIO + 1)) $$ > /dev/null || die "RT_PRIO: chrt refused (needs root or CAP_SYS_NICE)"
fi

# ---- preflight -------------------------------------------------------------------------

preflight "taskset, /proc, io_uring"
for s in $SERVERS; do
    case "$s" in rookery | rookery@* | relay-tokio | relay-monoio | relay-glommio) ;; *) die "SERVERS: unknown server '$s'" ;; esac
done
BIN=${ROOKERY_BIN_DIR:-$REPO/target/release}
missing=0
for b in rookery rookery-load relay-tokio relay-monoio relay-glommio; do [ -x "$BIN/$b" ] || missing=1; done
if [ "$missing" = 1 ]; then
    say "building release binaries (cargo build --release -p rookery -p rookery-load -p rookery-relays)"
    cargo build --release -p rookery -p rookery-load -p rookery-relays
fi
"$BIN/rookery" --help | grep -q -- '--durability' || die "this rookery has no --durability (needs the log engine)"
bin_line() { echo "$(basename "$1") built $(date -u -r "$(readlink -f "$1")" +%Y-%m-%dT%H:%MZ)"; }
BIN_INFO="$BIN ($(for b in rookery rookery-load relay-tokio; do printf '%s; ' "$(bin_line "$BIN/$b")"; done | sed 's/; $//'))"
LOAD_AVG=$(cut -d' ' -f1-3 /proc/loadavg)
awk -v l="${LOAD_AVG%% *}" 'BEGIN { exit !(l >= 1) }' &&
    say "warning: load average $LOAD_AVG (>= 1): other work shares the machine; numbers will be noisy"

STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT=results/$STAMP-relays-vs-rookery
[ -n "$RT_PRIO" ] && OUT=$OUT-rt
# stop_servers: what the exit trap (open_run, vs-ejabberd-lib.sh) stops besides the load.
stop_servers() { peer_stop; }
open_run relays-vs-rookery server rate label rc summary cpu_s wall_s window_s server_steady_s \
    gen_steady_s others_pct load1 relay_stats

# ---- servers ---------------------------------------------------------------------------

# peer_argv SERVER: the server's command line, in ARGV.
peer_argv() {
    case "$1" in
        rookery | rookery@*)
            # rookery@flag=value,flag2=value2: a variant with those flags, e.g.
            # rookery@file-writes=inline,batch-wait-us=200 (side by side with plain rookery).
            local variant=() pair
            if [[ $1 == rookery@* ]]; then
                IFS=',' read -ra pairs <<< "${1#rookery@}"
                for pair in "${pairs[@]}"; do variant+=("--${pair%%=*}" "${pair#*=}"); done
            fi
            # shellcheck disable=SC2206 # ROOKERY_ARGS is a flag list, split on purpose
            ARGV=("${PREFIX[@]}" taskset -c "$SERVER_CORE" "$BIN/rookery" --listen "127.0.0.1:$PORT"
                --admin "127.0.0.1:$ADMIN_PORT" --domain "$DOMAIN" --auth token --token-secret "$SECRET"
                --shards 1 --cores "$SERVER_CORE" --durability "$DURABILITY" --data-dir "$WORK_TMP/rookery-data"
                $ROOKERY_ARGS "${variant[@]}") ;;
        *)
            ARGV=("${PREFIX[@]}" taskset -c "$SERVER_CORE" "$BIN/$1" --listen "127.0.0.1:$PORT" --domain "$DOMAIN"
                --core "$SERVER_CORE") ;;
    esac
}

# peer_start SERVER LOG: starts it fresh (empty data dir) and waits for its ready line.
peer_start() {
    port_open "$PORT" && die "127.0.0.1:$PORT is already in use (set PORT)"
    peer_argv "$1"
    grep -q "^\[$1 server\]" "$CMDS" || echo "[$1 server] ${ARGV[*]//$WORK_TMP/<tmp>}" >> "$CMDS"
    rm -rf "$WORK_TMP/rookery-data"
    "${ARGV[@]}" 2> "$2" &
    SERVER_PID=$!
    CURRENT_SERVER=$1
    local i
    for ((i = 0; i < 100; i++)); do
        grep -qs "ready:" "$2" && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    die "$1 did not become ready in 10 s; see $2"
}

# peer_stop: SIGTERM by pid (SIGKILL after 20 s), so the relays print their stats line.
peer_stop() {
    [ -n "${SERVER_PID:-}" ] || return 0
    stop_pid "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    rm -rf "$WORK_TMP/rookery-data"
    SERVER_PID='' CURRENT_SERVER=''
}

# ---- one step --------------------------------------------------------------------------

# run_step SERVER TOTAL_RATE: a fresh server, one chat run at TOTAL_RATE msgs/s over all
# clients; appends a row to runs.tsv.
run_step() {
    local server=$1 total=$2 label dir per_client
    label=rate-$(printf '%06d' "$total")
    dir=$OUT/$server/$label
    mkdir -p "$dir"
    peer_start "$server" "$dir/server.log"
    per_client=$(awk -v t="$total" -v n="$CLIENTS" 'BEGIN { printf "%g", t / n }')
    local cmd=("${PREFIX[@]}" taskset -c "$LOAD_CORE" "$BIN/rookery-load" chat --server "127.0.0.1:$PORT"
        --domain "$DOMAIN" --auth "token:$SECRET" --user-prefix "$USER_PREFIX" --clients "$CLIENTS"
        --connect-rate "$CONNECT_RATE" --duration "${STEP_S}s" --threads 1 --rate "$per_client"
        --stream-management off --max-p99 10 --output "$dir" --slug "$server" --quiet)
    echo "[$server $label] ${cmd[*]}" >> "$CMDS"
    local limit=$((CLIENTS / CONNECT_RATE + STEP_S + 60)) t0 c0 load1 rc=0
    load1=$(cut -d' ' -f1 /proc/loadavg)
    c0=$(cpu_ticks "$SERVER_PID")
    t0=$(date +%s%N)
    timeout --kill-after=5 "$limit" "${cmd[@]}" > "$dir/loadgen.txt" 2>&1 &
    LOAD_PID=$!
    WINDOW_S=- SERVER_STEADY_S=- GEN_STEADY_S=- OTHERS_PCT=-
    FLAME_DIR=$dir sample_steady "$t0"
    wait "$LOAD_PID" || rc=$?
    LOAD_PID=
    local cpu_s wall_s summary relay_stats
    cpu_s=$(cpu_s_since "$c0" "$SERVER_PID")
    wall_s=$(since_s "$t0")
    peer_stop
    relay_stats=$(grep -o 'stats: .*' "$dir/server.log" | sed 's/^stats: //; s/ /;/g' || true)
    summary=$(find_summary "$dir" "$server $label" "$rc")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$total" "$label" "$rc" \
        "$summary" "$cpu_s" "$wall_s" "$WINDOW_S" "$SERVER_STEADY_S" "$GEN_STEADY_S" "$OTHERS_PCT" \
        "$load1" "${relay_stats:--}" >> "$RUNS"
    say "$server $total msgs/s: $(verdict "$summary")$(kept_up "$summary" "$total" || echo ", fell behind") (exit $rc); steady: server $(pct "$SERVER_STEADY_S" "$WINDOW_S")," \
        "rookery-load $(pct "$GEN_STEADY_S" "$WINDOW_S"), others ${OTHERS_PCT}%"
}

# wait_connected N: until the server holds N established conns on $PORT; false when the load
# ended or the ramp plus 30 s passed first. Polls once a second: reading /proc/net/tcp with
# tens of thousands of entries costs tens of milliseconds of kernel time.
wait_connected() { wait_established "$PORT" "$1" 1; }

# sample_steady T0_NS: CPU seconds of the server, the load generator and every other process
# over [ramp + 1.5 s, ramp + STEP_S - 0.5 s] after the load started at T0_NS (ramp = clients /
# connect rate): inside the steady sending phase, logins and the drain left out. A fixed
# schedule, not a poll of the conn count: reading /proc/net/tcp with tens of thousands of
# TIME_WAIT entries is slow, and under RT_PRIO a polling shell is starved by the very processes
# it waits for.
sample_steady() {
    local start_ns
    [ "$STEP_S" -ge 4 ] || return 0
    start_ns=$(($1 + (CLIENTS * 1000 / CONNECT_RATE + 1500) * 1000000))
    sleep "$(awk -v a="$start_ns" -v b="$(date +%s%N)" 'BEGIN { d = (a - b) / 1e9; print (d > 0 ? d : 0) }')"
    # No window (the load generator ended): the "-" the caller set stay.
    steady_window $((STEP_S - 2)) || return 0
    SERVER_STEADY_S=$(awk -v t="$SERVER_TICKS" -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }')
    GEN_STEADY_S=$(awk -v t="$GEN_TICKS" -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }')
}

# run_hold SERVER: a fresh server holds $HOLD sessions (rookery-load hold); its RSS is read
# once every conn is up plus 2 s. Appends a row to hold.tsv.
run_hold() {
    local server=$1 dir=$OUT/$1/hold rc=0 rss0 rss1=- seen=-
    mkdir -p "$dir"
    peer_start "$server" "$dir/server.log"
    local cmd=("${PREFIX[@]}" taskset -c "$LOAD_CORE" "$BIN/rookery-load" hold --server "127.0.0.1:$PORT"
        --domain "$DOMAIN" --auth "token:$SECRET" --user-prefix "$USER_PREFIX" --clients "$HOLD"
        --connect-rate "$CONNECT_RATE" --duration "${HOLD_S}s" --threads 1 --stream-management off
        --output "$dir" --slug "$server" --quiet)
    echo "[$server hold] ${cmd[*]}" >> "$CMDS"
    rss0=$(rss_kib "$SERVER_PID")
    timeout --kill-after=5 $((HOLD / CONNECT_RATE + HOLD_S + 60)) "${cmd[@]}" > "$dir/loadgen.txt" 2>&1 &
    LOAD_PID=$!
    if wait_connected "$HOLD"; then
        sleep 2
        seen=$(established "$PORT")
        rss1=$(rss_kib "$SERVER_PID")
    fi
    wait "$LOAD_PID" || rc=$?
    LOAD_PID=
    peer_stop
    local summary
    summary=$(find "$dir" -mindepth 2 -maxdepth 2 -name summary.json | head -n 1)
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$rc" "${summary:--}" "$rss0" "$rss1" "$seen" >> "$OUT/hold.tsv"
    say "$server hold $HOLD: exit $rc, RSS ${rss0} -> ${rss1} KiB with $seen conns established"
}

# budget_allows SECONDS: true while this much more work fits the time budget.
budget_allows() { [ $(($(date +%s) - START_S + $1)) -le "$BUDGET_S" ]; }

# ---- the sweep -------------------------------------------------------------------------

COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain 2>/dev/null | head -n 1)" ] || COMMIT="$COMMIT (working tree has uncommitted changes)"
say "results: $OUT ($MODE: $CLIENTS clients, ${STEP_S}s per step, rates $RATES; servers $SERVERS)"
if [ "$HOLD" -gt 0 ]; then
    printf 'server\trc\tsummary\trss_before_kib\trss_held_kib\testablished\n' > "$OUT/hold.tsv"
    for s in $SERVERS; do run_hold "$s"; done
fi
declare -A FAILS=()
step_s=$((CLIENTS / CONNECT_RATE + STEP_S + 6))
for total in $RATES; do
    for s in $SERVERS; do
        if [ "${FAILS[$s]:-0}" -ge 2 ]; then
            echo "$s $total left-the-sweep" >> "$OUT/sweep-stops.txt"
            continue
        fi
        if ! budget_allows "$step_s"; then
            say "time budget (${BUDGET_S}s) reached: no $total msgs/s step for $s"
            echo "$s $total budget" >> "$OUT/sweep-stops.txt"
            continue
        fi
        run_step "$s" "$total"
        # Latency alone does not end a server's sweep (other work on a shared machine spoils
        # it first); falling behind the offered rate does.
        if kept_up "$(run_col "$s" "$total" summary)" "$total"; then FAILS[$s]=0; else FAILS[$s]=$((${FAILS[$s]:-0} + 1)); fi
    done
done

for v in MODE STAMP COMMIT LOAD_AVG BIN BIN_INFO SERVER_CORE LOAD_CORE DOMAIN USER_PREFIX PORT CONNECT_RATE \
    SERVERS CLIENTS RATES STEP_S BUDGET_S DURABILITY ROOKERY_ARGS RT_PRIO HOLD HOLD_S; do
    printf '%s=%q\n' "$v" "${!v}"
done > "$OUT/settings.env"
write_readme > "$OUT/README.md"
cat "$OUT/README.md"
say "done in $(($(date +%s) - START_S))s: $OUT/README.md"
