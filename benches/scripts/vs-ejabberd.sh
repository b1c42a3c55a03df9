#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
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
#     with `--only presence,group` (or groups-vs-ejabberd.sh), the presence and group chat
#     scenarios instead (see vs-ejabberd-groups.sh: contact ring and rosters, XEP-0045 rooms);
#  6. writes results/<stamp>-vs-ejabberd/README.md (results/<stamp>-groups-vs-ejabberd/ when
#     only presence and group run: machine, commit, commands, tables, ratios, caveats) next to
#     every run's rookery-load folder (with the server's flame.svg over each steady window when
#     perf and inferno, `cargo install inferno`, are installed), and prints it.
#
# What it does not do: tune the kernel, touch /etc/ejabberd, or leave anything running: the
# servers, the load generator and the temp dir are stopped/removed by pid/path on exit.
# Bounded: every load run has a duration and a hard timeout; the sweep stops at the time
# budget (~15 min full, ~4 min --quick).
#
# Usage: benches/scripts/vs-ejabberd.sh [--quick] [--only hold,chat,storm,ceiling,presence,group]
#        benches/scripts/vs-ejabberd.sh --report results/<stamp>-vs-ejabberd  (rewrite its README)
# Environment: ROOKERY_PORT (5321), ROOKERY_ADMIN (9321), EJABBERD_PORT (5322),
# EJABBERD_DIST_PORT (5324), EXTAUTH_POOL (2), ROOKERY_BIN_DIR (target/release; built when
# the binaries are missing), SM (off: clients do not enable XEP-0198; on: they do, on both
# servers), ROOKERY_DURABILITY (the engine's default when unset), SERVERS ("rookery ejabberd";
# one of them alone skips the other, e.g. for the full group size), and the presence and group
# sizes (see vs-ejabberd-groups.sh), and TLS (off, or starttls: both servers get the same
# P-256 certificate from a CA made here, clients run STARTTLS with full handshakes only,
# --tls-resume off; ejabberd through its fast_tls/OpenSSL, rookery through rustls).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
# shellcheck source=vs-ejabberd-lib.sh
. benches/scripts/vs-ejabberd-lib.sh
# shellcheck source=vs-ejabberd-report.sh
. benches/scripts/vs-ejabberd-report.sh
# shellcheck source=vs-ejabberd-groups.sh
. benches/scripts/vs-ejabberd-groups.sh

QUICK=0
ONLY=hold,chat,storm,ceiling
REPORT_ONLY=
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --report) [ $# -ge 2 ] || die "--report needs a results folder"; REPORT_ONLY=$2; shift ;;
        --only) [ $# -ge 2 ] || die "--only needs a list, e.g. --only storm"; ONLY=$2; shift ;;
        -h | --help) sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (usage: $0 [--quick] [--only hold,chat,storm,ceiling,presence,group] | --report DIR)" ;;
    esac
    shift
done
# want SCENARIO: true when SCENARIO is in --only.
want() { case ",$ONLY," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
for s in ${ONLY//,/ }; do
    case "$s" in hold | chat | storm | ceiling | presence | group) ;; *) die "--only: unknown scenario '$s'" ;; esac
done
# Only presence and group: a folder (and README) of their own.
GROUPS_ONLY=1
for s in ${ONLY//,/ }; do case "$s" in presence | group) ;; *) GROUPS_ONLY=0 ;; esac; done

# --report DIR: rewrite DIR/README.md from the files a run left there (settings.env, runs.tsv,
# commands.txt, the summaries), e.g. after this script's report changed. Runs nothing.
if [ -n "$REPORT_ONLY" ]; then
    [ -f "$REPORT_ONLY/settings.env" ] || die "$REPORT_ONLY/settings.env not found (not a vs-ejabberd results folder?)"
    # shellcheck source=/dev/null
    . "$REPORT_ONLY/settings.env"
    OUT=$REPORT_ONLY RUNS=$REPORT_ONLY/runs.tsv CMDS=$REPORT_ONLY/commands.txt WORK_TMP='<tmp>'
    case "${DURABILITY:--}" in -) ;; *) ROOKERY_DURABILITY=${DURABILITY%% *} ;; esac
    write_readme > "$OUT/README.md"
    cat "$OUT/README.md"
    exit 0
fi

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
SERVERS=${SERVERS:-"rookery ejabberd"}
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
preflight "taskset, /proc"
BIN=${ROOKERY_BIN_DIR:-$REPO/target/release}
if [ ! -x "$BIN/rookery" ] || [ ! -x "$BIN/rookery-load" ]; then
    say "building release binaries (cargo build --release -p rookery -p rookery-load)"
    cargo build --release -p rookery -p rookery-load
fi
# Both servers must get the same stanzas. ejabberd offers XEP-0198 (mod_stream_mgmt, as asked),
# and rookery too in newer versions; a rookery-load that would enable it where offered (acks on
# every message, resumable sessions held after a drop) is told not to, unless SM=on.
LOAD_EXTRA=()
SM=${SM:-off}
case "$SM" in on | off) ;; *) die "SM must be on or off" ;; esac
if "$BIN/rookery-load" chat --help 2>/dev/null | grep -q -- '--stream-management'; then
    LOAD_EXTRA=(--stream-management "$SM")
elif [ "$SM" = on ]; then
    die "SM=on: this rookery-load has no --stream-management"
fi
TLS=${TLS:-off}
case "$TLS" in off | starttls) ;; *) die "TLS must be off or starttls" ;; esac
DURABILITY=$(rookery_durability)
bin_line() { # $1 = binary: "name version, built <mtime>"
    echo "$(basename "$1") $("$1" --version 2>/dev/null | cut -d' ' -f2), built $(date -u -r "$(readlink -f "$1")" +%Y-%m-%dT%H:%MZ)"
}
BIN_INFO="$BIN ($(bin_line "$BIN/rookery"); $(bin_line "$BIN/rookery-load"))"
LOAD_AVG=$(cut -d' ' -f1-3 /proc/loadavg)
awk -v l="${LOAD_AVG%% *}" 'BEGIN { exit !(l >= 1) }' &&
    say "warning: load average $LOAD_AVG (>= 1): other work shares the machine; numbers will be noisy"

groups_sizes
STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT=results/$STAMP-vs-ejabberd
[ "$GROUPS_ONLY" = 1 ] && OUT=results/$STAMP-groups-vs-ejabberd
# stop_servers: what the exit trap (open_run, vs-ejabberd-lib.sh) stops besides the load.
stop_servers() {
    server_stop
    if [ -n "${SYSTEM_EPMD_STARTED:-}" ]; then stop_pid "$SYSTEM_EPMD_STARTED"; fi
}
open_run vs-ejabberd server label scenario rc summary cpu_s wall_s rss_before_kib rss_held_kib \
    sessions_seen steady_cpu_pct load1 gen_cpu_pct others_cpu_pct

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
if [ "$TLS" = starttls ]; then
    tls_prepare
    LOAD_EXTRA+=(--tls starttls --tls-ca "$WORK_TMP/tls/ca.pem" --tls-resume off)
fi
ejabberd_prepare
mkdir -p "$OUT/ejabberd/config" "$OUT/ejabberd/setup-check"
cp "$WORK_TMP/etc/ejabberd.yml" "$WORK_TMP/etc/ejabberdctl.cfg" "$WORK_TMP/extauth.pl" "$OUT/ejabberd/config/"
# One throwaway start proves the config before any load runs (and warms the page cache).
server_start ejabberd "$OUT/ejabberd/setup-check"
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
        --output "$dir" --slug "$server" --quiet "${LOAD_EXTRA[@]}" "$@")
    echo "[$server $label] ${cmd[*]}" >> "$CMDS"
    # EXTRA_LIMIT_S: phases beyond the ramp and the duration (presence setup, group joins).
    local limit=$((clients / CONNECT_RATE + dur + 60 + ${EXTRA_LIMIT_S:-0}))
    local t0 c0 rss0 load1 rc=0
    HELD_RSS=- HELD_SEEN=- STEADY_PCT=- GEN_PCT=- OTHERS_PCT=-
    load1=$(cut -d' ' -f1 /proc/loadavg)
    rss0=$(rss_kib "$SERVER_PID")
    c0=$(cpu_ticks "$SERVER_PID")
    t0=$(date +%s%N)
    timeout --kill-after=5 "$limit" "${cmd[@]}" > "$dir/loadgen.txt" 2>&1 &
    LOAD_PID=$!
    case "${SAMPLE:-none}" in
        held) sample_held "$server" "$clients" ;;
        steady) wait_connected "$server" "$clients" && FLAME_DIR=$dir sample_steady "$dur" ;;
        # The storm keeps conns dropping, so the count may never sit at N: the ramp's length.
        storm) sleep $((clients / CONNECT_RATE + 1)) && FLAME_DIR=$dir sample_steady "$dur" ;;
    esac
    wait "$LOAD_PID" || rc=$?
    LOAD_PID=
    local wall_s cpu_s summary
    wall_s=$(since_s "$t0")
    cpu_s=$(cpu_s_since "$c0" "$SERVER_PID")
    summary=$(find_summary "$dir" "$server $label" "$rc")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$label" "$scenario" \
        "$rc" "$summary" "$cpu_s" "$wall_s" "$rss0" "$HELD_RSS" "$HELD_SEEN" "$STEADY_PCT" "$load1" \
        "$GEN_PCT" "$OTHERS_PCT" >> "$RUNS"
    say "$server $label: $(verdict "$summary"), exit $rc, server CPU ${cpu_s}s over ${wall_s}s;" \
        "steady: server $STEADY_PCT%, rookery-load $GEN_PCT%, other processes $OTHERS_PCT%"
}

# wait_connected SERVER N: until the server holds N established conns (or the load ended or
# the ramp plus 30 s passed: sampled all the same).
wait_connected() { wait_established "$(server_port "$1")" "$2" 0.2 || true; }

# Hold: every conn up, 2 s more for logins to finish and the heap to settle, then the
# server's own session count and its RSS.
sample_held() {
    wait_connected "$1" "$2"
    sleep 2
    kill -0 "$LOAD_PID" 2>/dev/null || return 0
    HELD_SEEN=$(server_sessions)
    HELD_RSS=$(rss_kib "$SERVER_PID")
}

# Chat and storm: CPU over [start + 1 s, start + duration - 1 s] of the steady phase, in % of
# one core: the server, the load generator (near 100%: the run measures the generator, not
# the server), and every other process (interference from the rest of the machine).
sample_steady() { # $1 = duration of the steady phase, s; called when it has just begun
    local dur=$1
    [ "$dur" -ge 4 ] || return 0
    # SAMPLE_DELAY_S: how long after the conns are up the sending starts (presence, group).
    sleep $((1 + ${SAMPLE_DELAY_S:-0}))
    # No window (the load generator ended): the "-" the caller set stay.
    steady_window $((dur - 2)) || return 0
    STEADY_PCT=$(awk -v t="$SERVER_TICKS" -v hz="$HZ" -v w="$WINDOW_S" 'BEGIN { printf "%.0f", 100 * t / hz / w }')
    GEN_PCT=$(awk -v t="$GEN_TICKS" -v hz="$HZ" -v w="$WINDOW_S" 'BEGIN { printf "%.0f", 100 * t / hz / w }')
}

# wait_quiet: before a retry, up to 30 s for the rest of the machine to use under 10% of a
# core (measured over 2 s windows, this script's own servers excluded).
wait_quiet() {
    local i pct snap=$WORK_TMP/procs.quiet
    for ((i = 0; i < 15; i++)); do
        others_snapshot "$snap"
        sleep 2
        pct=$(others_pct "$snap" 2 "${SERVER_PID:-$$}")
        [ "$pct" -lt 10 ] && return 0
        [ "$i" = 0 ] && say "other processes use $pct% of a core: waiting up to 30 s for quiet"
    done
    say "still busy ($pct% of a core): retrying anyway (the step will be marked if disturbed)"
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

COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain 2>/dev/null | head -n 1)" ] || COMMIT="$COMMIT (working tree has uncommitted changes)"
say "results: $OUT ($MODE, scenarios: $ONLY)"
for s in $SERVERS; do
    want hold || break
    fresh "$s" hold
    SAMPLE=held run_load "$s" hold hold "$HOLD_S" "$HOLD_N"
done
for s in $SERVERS; do
    want chat || break
    fresh "$s" chat
    SAMPLE=steady run_load "$s" chat chat "$CHAT_S" "$CHAT_N" --rate 1
done

STORM=available
if ! want storm; then
    STORM="not run (--only $ONLY)"
elif ! "$BIN/rookery-load" storm --help > /dev/null 2>&1; then
    STORM="skipped: this rookery-load has no storm subcommand (\`rookery-load storm --help\` failed)"
    say "storm $STORM"
else
    for s in $SERVERS; do
        fresh "$s" storm
        SAMPLE=storm run_load "$s" storm storm "$STORM_S" "$STORM_N"
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

want presence && presence_runs
want group && group_runs

want ceiling || SWEEP_ALIVE=([rookery]=0 [ejabberd]=0)
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
        if budget_allows "$((step_s + 30))"; then
            say "$s failed $total msgs/s: running that step once more on a fresh server"
            wait_quiet
            sweep_step "$s" "$total" "$label-retry" && continue
        fi
        SWEEP_ALIVE[$s]=0
    done
done
server_stop

# What the README needs, so `--report` can rewrite it later without rerunning.
for v in MODE ONLY STAMP COMMIT LOAD_AVG BIN BIN_INFO EJB_VERSION EJB_USER SETUP_S SERVER_CORE LOAD_CORE DOMAIN \
    USER_PREFIX PASS_PREFIX SECRET ROOKERY_PORT ROOKERY_ADMIN EJABBERD_PORT CONNECT_RATE SERVERS SM DURABILITY \
    HOLD_N HOLD_S CHAT_N CHAT_S SWEEP_N SWEEP_S SWEEP_RATES STORM_N STORM_S STORM GROUPS_ONLY $GROUPS_VARS; do
    printf '%s=%q\n' "$v" "${!v}"
done > "$OUT/settings.env"
write_readme > "$OUT/README.md"
cat "$OUT/README.md"
say "done in $(($(date +%s) - START_S))s: $OUT/README.md"
