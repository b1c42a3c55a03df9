# shellcheck shell=bash
# Helpers for vs-ejabberd.sh and relays-vs-rookery.sh (sourced, not run): JSON reading, /proc
# sampling, runs.tsv reading, and (vs-ejabberd) starting and stopping each server by pid.
#
# What it does not do: decide scenarios or write the README (vs-ejabberd.sh and
# vs-ejabberd-report.sh do). Invariants: every process started here is recorded by pid
# (SERVER_PID, SERVER_LAUNCHER) and stopped by pid in server_stop; nothing is killed by name;
# both servers listen on 127.0.0.1 only and run pinned to core $SERVER_CORE.

say() { printf '[vs-ejabberd %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# json_get FILE DOTTED.PATH: the scalar at that path in a pretty-printed JSON file (one key
# per line, as serde_json's pretty printer writes summary.json), quotes stripped; empty
# when absent. awk only: a fresh Debian has neither jq nor python for sure.
json_get() { json_walk "$1" get "$2"; }

# json_keys FILE REGEX: "path value" for every scalar whose dotted path matches REGEX.
json_keys() { json_walk "$1" keys "$2"; }

# json_walk FILE get|keys ARG: the walk behind json_get (ARG a dotted path: its value, the
# first only) and json_keys (ARG a regex: "path value" for each match).
json_walk() {
    [ -f "$1" ] || return 0
    awk -v mode="$2" -v want="$3" '
        function path(   i, p) {
            p = ""
            for (i = 1; i <= depth; i++) if (stack[i] != "") p = (p == "" ? stack[i] : p "." stack[i])
            return p
        }
        /^[ \t]*"[^"]*":/ {
            key = $0; sub(/^[ \t]*"/, "", key); sub(/".*/, "", key)
            val = $0; sub(/^[ \t]*"[^"]*":[ \t]*/, "", val); sub(/,[ \t]*$/, "", val)
            if (val == "{" || val == "[") { stack[++depth] = key; next }
            p = path(); full = (p == "" ? key : p "." key)
            if (mode == "get" && full == want) { gsub(/^"|"$/, "", val); print val; exit }
            if (mode == "keys" && full ~ want) { gsub(/^"|"$/, "", val); print full, val }
            next
        }
        /^[ \t]*[\[{][ \t]*$/ { stack[++depth] = ""; next }
        /^[ \t]*[\]}],?[ \t]*$/ { if (depth > 0) depth--; next }
    ' "$1"
}

# calc EXPR: floating-point arithmetic through awk ("-" when any operand is empty or "-").
calc() { awk "BEGIN { r = ($1); print r }" 2>/dev/null || echo "-"; }
# fmt FORMAT VALUE: printf a number, "-" for an empty or non-numeric value.
fmt() {
    case "$2" in '' | - | *[!0-9.e+-]*) echo "-" ;; *) awk -v v="$2" "BEGIN { printf \"$1\", v }" ;; esac
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# proc_table: "pid ppid ticks" for every process (ticks = user + system clock ticks), read
# from /proc in one pass (no ps needed). The command name may hold spaces and parentheses;
# the fields after the last ") " are fixed, so they are counted from there. A process that
# exits between the glob and the read makes cat fail: ignored (under pipefail it would fail the
# caller, and `set -e` would end the script).
proc_table() {
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } |
        awk '{ s = $0; sub(/^.*\) /, "", s); split(s, f, " "); print $1, f[2], f[12] + f[13] }'
}

# descendants PID: PID and every live process below it.
descendants() {
    proc_table | awk -v root="$1" '
        { kids[$2] = kids[$2] " " $1 }
        END {
            n = 1; q[1] = root
            for (i = 1; i <= n; i++) { print q[i]; m = split(kids[q[i]], k, " "); for (j = 1; j <= m; j++) q[++n] = k[j] }
        }'
}

# cpu_ticks PID: user + system clock ticks of PID and its live descendants (for ejabberd:
# the BEAM plus its extauth and helper ports).
cpu_ticks() {
    proc_table | awk -v root="$1" '
        { kids[$2] = kids[$2] " " $1; ticks[$1] = $3 }
        END {
            n = 1; q[1] = root; t = 0
            for (i = 1; i <= n; i++) { t += ticks[q[i]]; m = split(kids[q[i]], k, " "); for (j = 1; j <= m; j++) q[++n] = k[j] }
            print t + 0
        }'
}

# others_snapshot FILE: every process's CPU ticks now (see others_pct).
others_snapshot() { proc_table > "$1"; }

# others_pct FILE SECONDS ROOT...: CPU used since the snapshot in FILE by every process outside
# the trees of the ROOT pids, in % of one core (either core): interference from the rest of
# the machine, kernel threads included. Per-process times are used, not /proc/stat's per-core
# counters: those are sampled at the tick (HZ) and miss timer-aligned work such as a paced
# load generator. Processes that started and ended between the two reads are missed.
others_pct() {
    local before=$1 secs=$2
    shift 2
    proc_table | awk -v roots="$*" -v hz="$HZ" -v secs="$secs" '
        NR == FNR { was[$1] = $3; next }
        { kids[$2] = kids[$2] " " $1; now[$1] = $3 }
        END {
            n = split(roots, q, " ")
            for (i = 1; i <= n; i++) { mine[q[i]] = 1; m = split(kids[q[i]], k, " "); for (j = 1; j <= m; j++) q[++n] = k[j] }
            for (p in now) if (!(p in mine)) t += now[p] - ((p in was) ? was[p] : 0)
            printf "%.0f", 100 * t / hz / secs
        }' "$before" -
}

# established PORT: server-side ESTABLISHED TCP sockets on 127.0.0.1:PORT, from /proc/net/tcp
# (cheap, and the same for both servers; no process is started on the load generator's core).
established() {
    awk -v port="$(printf '%04X' "$1")" '
        $4 == "01" { split($2, a, ":"); if (a[2] == port) n++ }
        END { print n + 0 }' /proc/net/tcp
}

# port_open PORT: true when something accepts on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_gone PID SECONDS: polls until PID has exited; false on timeout.
wait_gone() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    return 1
}

# stop_pid PID: SIGTERM, then SIGKILL after 20 s.
stop_pid() {
    [ -n "${1:-}" ] || return 0
    kill -0 "$1" 2>/dev/null || return 0
    kill -TERM "$1" 2>/dev/null || true
    wait_gone "$1" 20 || { say "pid $1 ignored SIGTERM for 20 s: SIGKILL"; kill -KILL "$1" 2>/dev/null || true; }
}

# ---- load runs and runs.tsv (both harnesses) ----------------------------------------------

# preflight WHY: dies unless this is Linux (for WHY) with 2 cores (the servers get core 0, the
# load generator core 1) and the tools the harnesses use.
preflight() {
    [ "$(uname -s)" = Linux ] || die "Linux only ($1)"
    [ "$(nproc --all)" -ge 2 ] || die "needs 2 cores: the servers get core 0, the load generator core 1"
    local tool
    for tool in taskset timeout awk sed; do command -v "$tool" > /dev/null || die "missing tool: $tool"; done
}

# open_run NAME COLUMN...: the run's files in $OUT: runs.tsv ($RUNS, its first row the COLUMN
# names, tab-separated) and an empty commands.txt ($CMDS); HZ; a fresh WORK_TMP
# (/tmp/NAME.XXXXXX); no server or load generator yet; and the exit trap (close_run).
open_run() {
    local name=$1
    shift
    mkdir -p "$OUT"
    RUNS=$OUT/runs.tsv
    CMDS=$OUT/commands.txt
    (IFS=$'\t' && printf '%s\n' "$*") > "$RUNS"
    : > "$CMDS"
    HZ=$(getconf CLK_TCK)
    WORK_TMP=$(mktemp -d "/tmp/$name.XXXXXX")
    SERVER_PID='' LOAD_PID='' CURRENT_SERVER=''
    trap close_run EXIT
    trap 'exit 130' INT TERM
}

# close_run: the exit trap: stops the load generator by pid, then the servers (stop_servers,
# each script's own), removes WORK_TMP and exits with the script's status.
close_run() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "${LOAD_PID:-}" ]; then stop_pid "$LOAD_PID"; wait "$LOAD_PID" 2>/dev/null || true; fi
    stop_servers
    rm -rf "$WORK_TMP"
    exit "$rc"
}

# run_col SERVER STEP COLUMN: one field of the last $RUNS (runs.tsv) row whose first two
# columns are SERVER and STEP (a run label, or a rate); "-" when absent.
run_col() {
    awk -F'\t' -v s="$1" -v l="$2" -v c="$3" '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        $1 == s && $2 == l && (c in col) { v = $(col[c]) }
        END { print (v == "" ? "-" : v) }' "$RUNS"
}

# sj SERVER STEP PATH: a value from that run's summary.json.
sj() {
    local f
    f=$(run_col "$1" "$2" summary)
    if [ -f "$f" ]; then json_get "$f" "$3"; fi
}

# since_s T0_NS: seconds since T0_NS (date +%s%N), 2 decimals.
since_s() { awk -v a="$1" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'; }

# cpu_s_since TICKS PID: CPU seconds used by PID's tree since cpu_ticks read TICKS.
cpu_s_since() { awk -v a="$1" -v b="$(cpu_ticks "$2")" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }'; }

# find_summary DIR WHAT RC: the summary.json rookery-load wrote below DIR; "-" when there is
# none (said, naming the run WHAT and the load generator's exit status RC).
find_summary() {
    local summary
    summary=$(find "$1" -mindepth 2 -maxdepth 2 -name summary.json | head -n 1)
    [ -n "$summary" ] || { say "$2: no summary.json (exit $3); see $1/loadgen.txt"; summary=-; }
    echo "$summary"
}

# wait_established PORT N POLL_S: polls every POLL_S until N conns to PORT are established;
# false when the load generator (LOAD_PID) ended or the ramp (N / CONNECT_RATE) plus 30 s
# passed first.
wait_established() {
    local deadline=$(($(date +%s) + $2 / CONNECT_RATE + 30))
    while [ "$(date +%s)" -lt "$deadline" ] && kill -0 "$LOAD_PID" 2>/dev/null; do
        [ "$(established "$1")" -ge "$2" ] && return 0
        sleep "$3"
    done
    return 1
}

# steady_window SECONDS: CPU of the server (SERVER_PID), the load generator (LOAD_PID) and every
# other process over the next SECONDS. Sets WINDOW_S (as measured, 3 decimals), SERVER_TICKS,
# GEN_TICKS and OTHERS_PCT (% of one core); false, setting nothing, when the load generator is
# gone at either end (one that ended inside the window would read as negative CPU).
# shellcheck disable=SC2034 # the globals it sets are the caller's to read
# flame_tools: true when perf (Debian's linux-perf) and inferno (`cargo install inferno`) are
# installed, for a flame graph of the server per step (FLAME_DIR set by the caller).
flame_tools() {
    command -v perf > /dev/null && command -v inferno-collapse-perf > /dev/null &&
        command -v inferno-flamegraph > /dev/null
}

# flame_render DIR: DIR/perf.data -> DIR/flame.svg (and the folded stacks, which diff well);
# perf.data itself is removed (tens of MB per step).
flame_render() {
    local dir=$1
    [ -s "$dir/perf.data" ] || return 0
    if perf script -i "$dir/perf.data" 2>/dev/null | inferno-collapse-perf > "$dir/stacks.folded" 2>/dev/null &&
        inferno-flamegraph --title "$(basename "$(dirname "$dir")") $(basename "$dir")" \
            < "$dir/stacks.folded" > "$dir/flame.svg" 2>/dev/null; then
        gzip -f "$dir/stacks.folded"
    fi
    rm -f "$dir/perf.data" "$dir/perf.data.old"
}

steady_window() {
    local s0 g0 ta snap=$WORK_TMP/procs.before perf_pid=
    kill -0 "$LOAD_PID" 2>/dev/null || return 1
    s0=$(cpu_ticks "$SERVER_PID") g0=$(cpu_ticks "$LOAD_PID") ta=$(date +%s%N)
    others_snapshot "$snap"
    if [ -n "${FLAME_DIR:-}" ] && flame_tools; then
        perf record -F 499 -g -p "$SERVER_PID" -o "$FLAME_DIR/perf.data" -- sleep "$1" \
            > "$FLAME_DIR/perf.log" 2>&1 &
        perf_pid=$!
    fi
    sleep "$1"
    if [ -n "$perf_pid" ]; then
        wait "$perf_pid" || true
        flame_render "$FLAME_DIR"
    fi
    kill -0 "$LOAD_PID" 2>/dev/null || return 1
    SERVER_TICKS=$(($(cpu_ticks "$SERVER_PID") - s0)) GEN_TICKS=$(($(cpu_ticks "$LOAD_PID") - g0))
    WINDOW_S=$(awk -v a="$ta" -v b="$(date +%s%N)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
    OTHERS_PCT=$(others_pct "$snap" "$WINDOW_S" "$SERVER_PID" "$LOAD_PID")
}

# ---- rookery ---------------------------------------------------------------------------

# rookery_argv: the server's command line, in ROOKERY_ARGV; rookery_cmd prints it. Engines
# with a durable log get a data dir in the temp dir (emptied before every start, so no state
# carries over) and ROOKERY_DURABILITY when set (else the engine's default).
rookery_argv() {
    ROOKERY_ARGV=(taskset -c "$SERVER_CORE" "$BIN/rookery" --listen "127.0.0.1:$ROOKERY_PORT"
        --admin "127.0.0.1:$ROOKERY_ADMIN" --domain "$DOMAIN" --auth token --token-secret "$SECRET"
        --shards 1 --cores "$SERVER_CORE")
    if rookery_has_flag --data-dir; then ROOKERY_ARGV+=(--data-dir "$WORK_TMP/rookery-data"); fi
    if [ -n "${ROOKERY_DURABILITY:-}" ]; then ROOKERY_ARGV+=(--durability "$ROOKERY_DURABILITY"); fi
    if [ "${TLS:-off}" = starttls ]; then
        ROOKERY_ARGV+=(--tls-cert "$WORK_TMP/tls/cert.pem" --tls-key "$WORK_TMP/tls/key.pem")
    fi
}

# tls_prepare: a test CA and a P-256 certificate for $DOMAIN in $WORK_TMP/tls (TLS=starttls);
# both servers use the same files.
tls_prepare() {
    local d=$WORK_TMP/tls
    mkdir -p "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/ca.key" \
        -out "$d/ca.pem" -days 3 -subj "/CN=vs-ejabberd test CA" 2> /dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/key.pem" \
        -out "$d/srv.csr" -subj "/CN=$DOMAIN" 2> /dev/null
    printf "subjectAltName=DNS:%s\n" "$DOMAIN" > "$d/ext.cnf"
    openssl x509 -req -in "$d/srv.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
        -out "$d/cert.pem" -days 3 -extfile "$d/ext.cnf" 2> /dev/null
    chmod 644 "$d"/*.pem
}
# begin_results NAME: builds rookery and rookery-load (release), then sets `bin`, `out` (a new
# results/<stamp>-NAME folder), `data` (a temp dir) and `server` (empty), and an EXIT trap that
# stops `server` by pid and removes `data`.
begin_results() {
    cargo build --release --quiet -p rookery -p rookery-load
    # shellcheck disable=SC2034 # bin, out and data are the caller's
    bin=target/release
    out=results/$(date -u +%Y%m%d-%H%M%S)-$1
    mkdir -p "$out"
    data=$(mktemp -d)
    server=""
    trap 'stop_pid "$server"; rm -rf "$data"' EXIT
}

# start_until_ready LOG LABEL ARGV...: starts ARGV in the background with its stderr in LOG,
# records its pid in `server` (the caller stops it by pid) and waits up to 10 s for rookery's
# "ready:" line; exits with LOG named when it does not come.
start_until_ready() {
    local log=$1 label=$2
    shift 2
    "$@" 2> "$log" &
    # shellcheck disable=SC2034 # the caller reads and stops it
    server=$!
    for _ in $(seq 100); do grep -qs "ready:" "$log" && return 0; sleep 0.1; done
    say "the $label did not become ready; see $log"
    exit 1
}

rookery_has_flag() { "$BIN/rookery" --help 2>/dev/null | grep -q -- "$1 "; }
# rookery_durability: the durability the runs used ("-" for an engine without a log).
rookery_durability() {
    if [ -n "${ROOKERY_DURABILITY:-}" ]; then echo "$ROOKERY_DURABILITY"; return 0; fi
    "$BIN/rookery" --help 2>/dev/null | awk '/--durability/ { f = 1 }
        f && /default: / { match($0, /default: [a-z]+/); print substr($0, RSTART + 9, RLENGTH - 9) " (default)"; exit }
        END { if (!f) print "-" }'
}
rookery_cmd() { rookery_argv; echo "${ROOKERY_ARGV[*]//$WORK_TMP/<tmp>}"; }

rookery_start() { # $1 = run dir (logs)
    port_open "$ROOKERY_PORT" && die "127.0.0.1:$ROOKERY_PORT is already in use (set ROOKERY_PORT)"
    rookery_argv
    grep -q '^\[rookery server\]' "$CMDS" || echo "[rookery server] $(rookery_cmd)" >> "$CMDS"
    rm -rf "$WORK_TMP/rookery-data"
    "${ROOKERY_ARGV[@]}" 2> "$1/server.log" &
    SERVER_PID=$!
    SERVER_LAUNCHER=$SERVER_PID
    local i
    for ((i = 0; i < 100; i++)); do grep -qs "ready:" "$1/server.log" && return 0; sleep 0.1; done
    die "rookery did not become ready in 10 s; see $1/server.log"
}

# rookery_sessions: the engine's own gauge from /metrics, with curl when present, else over
# bash's /dev/tcp. The admin endpoint answers after one read(), and closing with request
# bytes still unread resets the conn (losing the reply) when the request arrived in two
# segments; hence a few tries.
rookery_sessions() {
    local out
    for _ in 1 2 3 4 5; do
        if command -v curl > /dev/null; then
            out=$(curl -s --max-time 5 "http://127.0.0.1:$ROOKERY_ADMIN/metrics") || true
        else
            out=$( (exec 3<>"/dev/tcp/127.0.0.1/$ROOKERY_ADMIN" &&
                printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && timeout 5 cat <&3) 2>/dev/null) || true
        fi
        case "$out" in *rookery_sessions*) break ;; esac
        sleep 0.2
    done
    awk 'index($0, "rookery_sessions{") == 1 || index($0, "rookery_sessions ") == 1 { s += $2 } END { print s + 0 }' <<< "$out"
}

# ---- ejabberd --------------------------------------------------------------------------

# Runs ejabberdctl with this run's config, as the ejabberd user through setpriv (su would
# reset RLIMIT_NOFILE to 1024 through PAM and cap ejabberd at ~1,000 sessions), or as root
# when setpriv or the user is missing. $1 = core to pin to; rest = ejabberdctl arguments.
ejabberdctl_run() {
    local core=$1
    shift
    local ctl=(/usr/sbin/ejabberdctl --config-dir "$WORK_TMP/etc" --config "$WORK_TMP/etc/ejabberd.yml"
        --ctl-config "$WORK_TMP/etc/ejabberdctl.cfg" --logs "$EJB_RUN/logs" --spool "$EJB_RUN/spool")
    if [ "$EJB_USER" = root ]; then
        HOME=$WORK_TMP taskset -c "$core" "${ctl[@]}" "$@"
    else
        HOME=$WORK_TMP taskset -c "$core" setpriv --reuid="$EJB_USER" --regid="$EJB_USER" --init-groups \
            "${ctl[@]}" "$@"
    fi
}

# Writes the config templates into $WORK_TMP (once per script run).
ejabberd_prepare() {
    local tpl=$REPO/benches/ejabberd
    mkdir -p "$WORK_TMP/etc"
    local starttls=false certfiles="certfiles: []"
    if [ "${TLS:-off}" = starttls ]; then
        starttls=true
        certfiles="certfiles: [\"$WORK_TMP/tls/cert.pem\", \"$WORK_TMP/tls/key.pem\"]"
    fi
    sed -e "s|@DOMAIN@|$DOMAIN|g; s|@PORT@|$EJABBERD_PORT|g; s|@EXTAUTH@|$WORK_TMP/extauth.pl|g" \
        -e "s|@EXTAUTH_POOL@|$EXTAUTH_POOL|g; s|@STARTTLS@|$starttls|g; s|@CERTFILES@|$certfiles|g" \
        "$tpl/ejabberd.yml.in" > "$WORK_TMP/etc/ejabberd.yml"
    sed -e "s|@TMP@|$WORK_TMP|g; s|@DIST_PORT@|$EJABBERD_DIST_PORT|g; s|@NODE@|vsejabberd@localhost|g" \
        "$tpl/ejabberdctl.cfg.in" > "$WORK_TMP/etc/ejabberdctl.cfg"
    sed -e "s|@USER_PREFIX@|$USER_PREFIX|g; s|@PASS_PREFIX@|$PASS_PREFIX|g; s|@DOMAIN@|$DOMAIN|g" \
        "$tpl/extauth.pl.in" > "$WORK_TMP/extauth.pl"
    chmod 755 "$WORK_TMP/extauth.pl"
    echo '%% empty: the system resolver settings are fine on loopback' > "$WORK_TMP/etc/inetrc"
    EJB_USER=root
    if id ejabberd > /dev/null 2>&1 && command -v setpriv > /dev/null; then
        EJB_USER=ejabberd
    else
        # ejabberdctl would re-exec through su as the package user; run it as root instead.
        echo 'EXEC_CMD=as_current_user' >> "$WORK_TMP/etc/ejabberdctl.cfg"
    fi
    chmod 755 "$WORK_TMP"
    [ "$EJB_USER" = root ] || chown -R "$EJB_USER:" "$WORK_TMP"
    say "ejabberd runs as user '$EJB_USER' with config $WORK_TMP/etc/ejabberd.yml"
}

ejabberd_start() { # $1 = run dir (logs are copied there when it stops)
    port_open "$EJABBERD_PORT" && die "127.0.0.1:$EJABBERD_PORT is already in use (set EJABBERD_PORT)"
    port_open "$EJABBERD_DIST_PORT" && die "127.0.0.1:$EJABBERD_DIST_PORT is in use (set EJABBERD_DIST_PORT)"
    EJB_RUN=$WORK_TMP/run-$RANDOM$RANDOM
    RUN_LOG_DIR=$1
    mkdir -p "$EJB_RUN/spool" "$EJB_RUN/logs"
    rm -f "$WORK_TMP/ejabberd.pid"
    [ "$EJB_USER" = root ] || chown -R "$EJB_USER:" "$EJB_RUN"
    grep -q '^\[ejabberd server\]' "$CMDS" || echo "[ejabberd server] HOME=<tmp> taskset -c $SERVER_CORE" \
        "$( [ "$EJB_USER" = root ] || echo "setpriv --reuid=$EJB_USER --regid=$EJB_USER --init-groups ")/usr/sbin/ejabberdctl" \
        "--config-dir <tmp>/etc --config <tmp>/etc/ejabberd.yml --ctl-config <tmp>/etc/ejabberdctl.cfg" \
        "--logs <run>/logs --spool <run>/spool foreground (config files: ejabberd/config/)" >> "$CMDS"
    (cd "$EJB_RUN" && ejabberdctl_run "$SERVER_CORE" foreground > "$EJB_RUN/logs/console.log" 2>&1) &
    SERVER_LAUNCHER=$!
    SERVER_PID=
    local i
    for ((i = 0; i < 600; i++)); do
        if [ -z "$SERVER_PID" ] && [ -s "$WORK_TMP/ejabberd.pid" ]; then SERVER_PID=$(cat "$WORK_TMP/ejabberd.pid"); fi
        if [ -n "$SERVER_PID" ] && port_open "$EJABBERD_PORT"; then sleep 1; return 0; fi
        kill -0 "$SERVER_LAUNCHER" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 30 "$EJB_RUN/logs/console.log" "$EJB_RUN/logs/error.log" >&2 2>/dev/null || true
    die "ejabberd did not listen on 127.0.0.1:$EJABBERD_PORT within 60 s (logs above)"
}

ejabberd_sessions() {
    ejabberdctl_run "$LOAD_CORE" connected_users_number 2>/dev/null | tr -dc '0-9' || true
}

# ---- both ------------------------------------------------------------------------------

server_start() { # $1 = server, $2 = run dir
    case "$1" in
        rookery) rookery_start "$2" ;;
        ejabberd) ejabberd_start "$2" ;;
    esac
    CURRENT_SERVER=$1
}

server_sessions() { case "$CURRENT_SERVER" in rookery) rookery_sessions ;; ejabberd) ejabberd_sessions ;; esac; }

# Stops the running server by pid (the BEAM's pid for ejabberd: SIGTERM is a clean
# init:stop there) and waits for its launcher, so nothing outlives the run.
server_stop() {
    [ -n "${CURRENT_SERVER:-}" ] || return 0
    local below p
    # The BEAM's port programs (extauth, eimp, inet_gethost) exit when it closes their pipes;
    # noted first so any that linger are stopped by pid too.
    below=$( [ -n "${SERVER_PID:-}" ] && descendants "$SERVER_PID" | tail -n +2 )
    stop_pid "${SERVER_PID:-}"
    for p in $below; do stop_pid "$p"; done
    if [ -n "${SERVER_LAUNCHER:-}" ]; then
        wait_gone "$SERVER_LAUNCHER" 10 || stop_pid "$SERVER_LAUNCHER"
        wait "$SERVER_LAUNCHER" 2>/dev/null || true
    fi
    [ "$CURRENT_SERVER" = rookery ] && rm -rf "$WORK_TMP/rookery-data"
    if [ "$CURRENT_SERVER" = ejabberd ] && [ -n "${EJB_RUN:-}" ]; then
        cp "$EJB_RUN"/logs/*.log "$RUN_LOG_DIR/" 2>/dev/null || true
        rm -rf "$EJB_RUN"
    fi
    CURRENT_SERVER='' SERVER_PID='' SERVER_LAUNCHER=''
}

server_auth() { case "$1" in rookery) echo "token:$SECRET" ;; ejabberd) echo "plain:$PASS_PREFIX" ;; esac; }
server_port() { case "$1" in rookery) echo "$ROOKERY_PORT" ;; ejabberd) echo "$EJABBERD_PORT" ;; esac; }

# num VALUE: true for a plain number.
num() { case "$1" in '' | - | *[!0-9.eE+-]*) return 1 ;; esac; }
# ms MICROSECONDS: milliseconds with 3 decimals, "-" when absent.
ms() { if num "${1:-}"; then awk -v v="$1" 'BEGIN { printf "%.3f", v / 1000 }'; else echo "-"; fi; }
# div A B [FORMAT]: A / B, "-" when either is absent or B is 0.
div() {
    if num "${1:-}" && num "${2:-}"; then
        awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN { if (b == 0) print "-"; else printf f, a / b }'
    else echo "-"; fi
}

# verdict SUMMARY: "ok" when a run meets the ceiling criteria (every client logged in, no
# client error, no lost message, message p99 <= 10 ms when messages were sent), else why not.
verdict() {
    local f=$1 clients logins errors lost p99
    [ -f "$f" ] || { echo "no result"; return 0; }
    clients=$(json_get "$f" config.clients)
    logins=$(json_get "$f" counts.logins)
    errors=$(json_get "$f" counts.errors_total)
    lost=$(json_get "$f" counts.messages.lost)
    p99=$(json_get "$f" latency_us.e2e_corrected.p99_us)
    if [ "${logins:-0}" -lt "${clients:-1}" ]; then
        echo "only ${logins:-0} of ${clients:-?} logged in"
    elif [ "${errors:-0}" -gt 0 ]; then
        echo "$errors client errors"
    elif [ "${lost:-0}" -gt 0 ]; then
        echo "lost $lost messages"
    elif num "${p99:-}" && [ "$p99" -gt 10000 ]; then
        echo "p99 $(ms "$p99") ms > 10 ms"
    else
        echo ok
    fi
}
