#!/usr/bin/env bash
# rookery vs ejabberd, side by side, on one machine, same CPU allotment.
#
# What it does, in order:
#  1. installs ejabberd from Debian when missing (apt-get update + install, as root) and stops
#     the system service if the package started one;
#  2. writes its own ejabberd config (benches/ejabberd/*.in) into a temp dir: loopback only,
#     no TLS, PLAIN over TCP, shapers and queue limits off, mod_ping/disco/roster/stream_mgmt;
#  3. accounts: an extauth script accepting password == PREFIX + n for user<n> (no storage,
#     like rookery's token backend), so no registration step;
#  4. pins each server to core 0 (rookery also with --shards 1 --cores 0) and the load
#     generator to core 1 (`taskset -c 1 rookery-load ... --threads 1`);
#  5. runs, each against rookery then ejabberd with the same load flags (only --server and
#     --auth differ), restarting the server fresh before every run: hold (server RSS per
#     session), chat (p50/p99/p999), a rate sweep for the ceiling (highest total msgs/s with
#     p99 <= 10 ms and zero loss), and storm (logins/s) when `rookery-load storm` exists;
#  6. writes results/<stamp>-vs-ejabberd/README.md (machine, commit, commands, tables, ratios,
#     caveats) next to every run's rookery-load folder, and prints it.
#
# What it does not do: tune the kernel, touch /etc/ejabberd, or leave anything running: the
# servers, the load generator and the temp dir are stopped/removed by pid/path on exit.
# Bounded: every load run has a duration and a hard timeout; the sweep stops at the time
# budget (~15 min full, ~4 min --quick).
#
# Usage: benches/scripts/vs-ejabberd.sh [--quick]
# Environment: ROOKERY_PORT (5321), ROOKERY_ADMIN (9321), EJABBERD_PORT (5322),
# EJABBERD_DIST_PORT (5324), EXTAUTH_POOL (2), ROOKERY_BIN_DIR (target/release; built when
# the binaries are missing).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
# shellcheck source=vs-ejabberd-lib.sh
. benches/scripts/vs-ejabberd-lib.sh
# shellcheck source=vs-ejabberd-report.sh
. benches/scripts/vs-ejabberd-report.sh

QUICK=0
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$arg' (usage: $0 [--quick])" ;;
    esac
done

DOMAIN=example.test
USER_PREFIX=user
PASS_PREFIX=vsbench-
SECRET=vs-ejabberd-secret
ROOKERY_PORT=${ROOKERY_PORT:-5321}
ROOKERY_ADMIN=${ROOKERY_ADMIN:-9321}
EJABBERD_PORT=${EJABBERD_PORT:-5322}
EJABBERD_DIST_PORT=${EJABBERD_DIST_PORT:-5324}
EXTAUTH_POOL=${EXTAUTH_POOL:-2}
SERVER_CORE=0
LOAD_CORE=1
CONNECT_RATE=2000
SERVERS="rookery ejabberd"
if [ "$QUICK" = 1 ]; then
    MODE=quick HOLD_N=2000 HOLD_S=8 CHAT_N=1000 CHAT_S=10 SWEEP_N=1000 SWEEP_S=5
    SWEEP_RATES="1000 4000 16000 32000" STORM_N=1000 STORM_S=5 BUDGET_S=225
else
    MODE=full HOLD_N=10000 HOLD_S=15 CHAT_N=5000 CHAT_S=30 SWEEP_N=2000 SWEEP_S=15
    SWEEP_RATES="1000 2000 4000 8000 12000 16000 24000 32000 48000 64000" STORM_N=5000 STORM_S=20
    BUDGET_S=870
fi
START_S=$(date +%s)

# ---- preflight -------------------------------------------------------------------------

[ "$(id -u)" = 0 ] || die "run as root: it installs ejabberd and starts it as the ejabberd user"
[ "$(uname -s)" = Linux ] || die "Linux only (taskset, /proc)"
[ "$(nproc --all)" -ge 2 ] || die "needs 2 cores: the servers get core 0, the load generator core 1"
for tool in taskset timeout awk sed; do command -v "$tool" > /dev/null || die "missing tool: $tool"; done
BIN=${ROOKERY_BIN_DIR:-$REPO/target/release}
if [ ! -x "$BIN/rookery" ] || [ ! -x "$BIN/rookery-load" ]; then
    say "building release binaries (cargo build --release -p rookery -p rookery-load)"
    cargo build --release -p rookery -p rookery-load
fi
LOAD_AVG=$(cut -d' ' -f1-3 /proc/loadavg)
awk -v l="${LOAD_AVG%% *}" 'BEGIN { exit !(l >= 1) }' &&
    say "warning: load average $LOAD_AVG (>= 1): other work shares the machine; numbers will be noisy"

STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT=results/$STAMP-vs-ejabberd
mkdir -p "$OUT"
RUNS=$OUT/runs.tsv
CMDS=$OUT/commands.txt
printf 'server\tlabel\tscenario\trc\tsummary\tcpu_s\twall_s\trss_before_kib\trss_held_kib\tsessions_seen\tsteady_cpu_pct\tload1\n' \
    > "$RUNS"
HZ=$(getconf CLK_TCK)
: > "$CMDS"
EJB_TMP=$(mktemp -d /tmp/vs-ejabberd.XXXXXX)
LOAD_PID=
CURRENT_SERVER=

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "${LOAD_PID:-}" ]; then stop_pid "$LOAD_PID"; wait "$LOAD_PID" 2>/dev/null || true; fi
    server_stop
    [ -n "${SYSTEM_EPMD_STARTED:-}" ] && stop_pid "$SYSTEM_EPMD_STARTED"
    rm -rf "$EJB_TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- ejabberd install --------------------------------------------------------------------

# A running system ejabberd (started before this script) would share core 0; refuse rather
# than stop someone's service. One the package start just now is stopped (see below).
system_ejabberd_pid() {
    local p
    p=$(cat /run/ejabberd/ejabberd.pid 2>/dev/null) || return 1
    [ -n "$p" ] && grep -q beam "/proc/$p/comm" 2>/dev/null && echo "$p"
}

stop_system_ejabberd() {
    if command -v systemctl > /dev/null && systemctl is-active --quiet ejabberd 2>/dev/null; then
        say "stopping the ejabberd service the package started (systemctl stop ejabberd)"
        systemctl stop ejabberd || true
    fi
    local p
    if p=$(system_ejabberd_pid); then
        say "stopping the ejabberd node the package started (pid $p)"
        stop_pid "$p"
    fi
    # epmd that this node started (it was not running before the install): stopped by pid.
    local e
    for e in $(epmd_pids); do
        case " $EPMD_BEFORE " in *" $e "*) ;; *) SYSTEM_EPMD_STARTED=$e; stop_pid "$e" ;; esac
    done
}

epmd_pids() { grep -lx epmd /proc/[0-9]*/comm 2>/dev/null | cut -d/ -f3 | tr '\n' ' ' || true; }

setup_t0=$(date +%s)
EPMD_BEFORE=$(epmd_pids)
if [ ! -x /usr/sbin/ejabberdctl ]; then
    say "ejabberd missing: apt-get update && apt-get install -y ejabberd"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y ejabberd
    stop_system_ejabberd
elif p=$(system_ejabberd_pid); then
    die "a system ejabberd is running (pid $p) and would share core 0: stop it (systemctl stop ejabberd) and rerun"
fi
EJB_VERSION=$(dpkg-query -W -f '${Version}' ejabberd 2>/dev/null || echo unknown)
ejabberd_prepare
# One throwaway start proves the config before any load runs (and warms the page cache).
mkdir -p "$OUT/ejabberd"
server_start ejabberd "$OUT/ejabberd"
server_stop
SETUP_S=$(($(date +%s) - setup_t0))
say "ejabberd $EJB_VERSION ready to run in ${SETUP_S}s (install + config + a test start)"
say "accounts: extauth script, password == '$PASS_PREFIX' + n for $USER_PREFIX<n>, no storage (like rookery's token backend)"
say "CPU allotment: server on core $SERVER_CORE (rookery --shards 1 --cores $SERVER_CORE), rookery-load on core $LOAD_CORE with --threads 1"

# ---- one load run ------------------------------------------------------------------------

# run_load SERVER SCENARIO LABEL DURATION_S CLIENTS [extra rookery-load flags]: one load
# against the running server; appends a row to runs.tsv. SAMPLE=held reads the server's RSS
# and session count once every client is up (hold); SAMPLE=steady reads the server's CPU
# over the steady phase only (chat: after the ramp, before the drain).
run_load() {
    local server=$1 scenario=$2 label=$3 dur=$4 clients=$5
    shift 5
    local dir=$OUT/$server/$label
    mkdir -p "$dir"
    local cmd=(taskset -c "$LOAD_CORE" "$BIN/rookery-load" "$scenario" --server "127.0.0.1:$(server_port "$server")"
        --domain "$DOMAIN" --auth "$(server_auth "$server")" --user-prefix "$USER_PREFIX"
        --clients "$clients" --connect-rate "$CONNECT_RATE" --duration "${dur}s" --threads 1
        --output "$dir" --slug "$server" --quiet "$@")
    echo "[$server $label] ${cmd[*]}" >> "$CMDS"
    local limit=$((clients / CONNECT_RATE + dur + 60))
    local t0 c0 rss0 load1 rc=0
    HELD_RSS=- HELD_SEEN=- STEADY_PCT=-
    load1=$(cut -d' ' -f1 /proc/loadavg)
    rss0=$(rss_kib "$SERVER_PID")
    c0=$(cpu_ticks "$SERVER_PID")
    t0=$(date +%s%N)
    timeout --kill-after=5 "$limit" "${cmd[@]}" > "$dir/loadgen.txt" 2>&1 &
    LOAD_PID=$!
    case "${SAMPLE:-none}" in
        held) sample_held "$server" "$clients" ;;
        steady) sample_steady "$server" "$clients" "$dur" ;;
    esac
    wait "$LOAD_PID" || rc=$?
    LOAD_PID=
    local wall_s cpu_s summary
    wall_s=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
    cpu_s=$(awk -v a="$c0" -v b="$(cpu_ticks "$SERVER_PID")" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')
    summary=$(find "$dir" -mindepth 2 -maxdepth 2 -name summary.json | head -n 1)
    [ -n "$summary" ] || { say "$server $label: no summary.json (exit $rc); see $dir/loadgen.txt"; summary=-; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$label" "$scenario" "$rc" "$summary" \
        "$cpu_s" "$wall_s" "$rss0" "$HELD_RSS" "$HELD_SEEN" "$STEADY_PCT" "$load1" >> "$RUNS"
    say "$server $label: $(verdict "$summary"), exit $rc, server CPU ${cpu_s}s over ${wall_s}s (steady: $STEADY_PCT%)"
}

# wait_connected SERVER N: until the server holds N established conns (or the load ended or
# the ramp plus 30 s passed).
wait_connected() {
    local port deadline=$(($(date +%s) + $2 / CONNECT_RATE + 30))
    port=$(server_port "$1")
    while [ "$(date +%s)" -lt "$deadline" ] && kill -0 "$LOAD_PID" 2>/dev/null; do
        [ "$(established "$port")" -ge "$2" ] && return 0
        sleep 0.2
    done
}

# Hold: every conn up, 2 s more for logins to finish and the heap to settle, then the
# server's own session count and its RSS.
sample_held() {
    wait_connected "$1" "$2"
    sleep 2
    kill -0 "$LOAD_PID" 2>/dev/null || return 0
    HELD_SEEN=$(server_sessions)
    HELD_RSS=$(rss_kib "$SERVER_PID")
}

# Chat: CPU over [connected + 1 s, connected + duration - 1 s], inside the steady phase.
sample_steady() {
    local dur=$3 a b ta tb
    [ "$dur" -ge 4 ] || return 0
    wait_connected "$1" "$2"
    sleep 1
    kill -0 "$LOAD_PID" 2>/dev/null || return 0
    a=$(cpu_ticks "$SERVER_PID")
    ta=$(date +%s%N)
    sleep $((dur - 2))
    b=$(cpu_ticks "$SERVER_PID")
    tb=$(date +%s%N)
    STEADY_PCT=$(awk -v a="$a" -v b="$b" -v ta="$ta" -v tb="$tb" -v hz="$HZ" \
        'BEGIN { printf "%.0f", 100 * (b - a) / hz / ((tb - ta) / 1e9) }')
}

# budget_allows SECONDS: true while this much more work fits the time budget.
budget_allows() { [ $(($(date +%s) - START_S + $1)) -le "$BUDGET_S" ]; }

# fresh SERVER LABEL: (re)starts SERVER for the run LABEL.
fresh() {
    server_stop
    mkdir -p "$OUT/$1/$2"
    server_start "$1" "$OUT/$1/$2"
}

# ---- scenarios ---------------------------------------------------------------------------

say "results: $OUT ($MODE)"
for s in $SERVERS; do
    fresh "$s" hold
    SAMPLE=held run_load "$s" hold hold "$HOLD_S" "$HOLD_N"
done
for s in $SERVERS; do
    fresh "$s" chat
    SAMPLE=steady run_load "$s" chat chat "$CHAT_S" "$CHAT_N" --rate 1
done

STORM=available
if ! "$BIN/rookery-load" storm --help > /dev/null 2>&1; then
    STORM="skipped: this rookery-load has no storm subcommand (\`rookery-load storm --help\` failed)"
    say "storm $STORM"
else
    for s in $SERVERS; do
        fresh "$s" storm
        run_load "$s" storm storm "$STORM_S" "$STORM_N"
    done
fi

# Ceiling: the same client count at increasing per-client rates, both servers step by step
# (so a short time budget trims both alike). A failing step is run once more on a fresh
# server (a compile job elsewhere on the box can spoil one short step); a server leaves the
# sweep when the retry fails too.
declare -A SWEEP_ALIVE=([rookery]=1 [ejabberd]=1)
step_s=$((SWEEP_N / CONNECT_RATE + SWEEP_S + 12))

# sweep_step SERVER TOTAL LABEL: one step on a fresh server; true when it passed. Not for
# $(...): the server it starts must stay known to this shell (it is stopped by pid later).
sweep_step() {
    local per_client summary
    fresh "$1" "$3"
    per_client=$(awk -v t="$2" -v n="$SWEEP_N" 'BEGIN { printf "%g", t / n }')
    SAMPLE=steady run_load "$1" chat "$3" "$SWEEP_S" "$SWEEP_N" --rate "$per_client" --max-p99 10
    summary=$(awk -F'\t' -v s="$1" -v l="$3" '$1 == s && $2 == l { print $5 }' "$RUNS" | tail -n 1)
    [ "$(verdict "$summary")" = ok ]
}

for total in $SWEEP_RATES; do
    for s in $SERVERS; do
        [ "${SWEEP_ALIVE[$s]}" = 1 ] || continue
        if ! budget_allows "$step_s"; then
            say "time budget (${BUDGET_S}s) reached: sweep stops before $total msgs/s on $s"
            echo "$s $total" >> "$OUT/sweep-budget-stops.txt"
            SWEEP_ALIVE[$s]=0
            continue
        fi
        label=sweep-$(printf '%05d' "$total")
        sweep_step "$s" "$total" "$label" && continue
        if budget_allows "$step_s"; then
            say "$s failed $total msgs/s: running that step once more on a fresh server"
            sweep_step "$s" "$total" "$label-retry" && continue
        fi
        SWEEP_ALIVE[$s]=0
    done
done
server_stop

write_readme > "$OUT/README.md"
cat "$OUT/README.md"
say "done in $(($(date +%s) - START_S))s: $OUT/README.md"
