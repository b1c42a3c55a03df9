# shellcheck shell=bash
# README writer for vs-ejabberd.sh (sourced, not run): reads runs.tsv and each run's
# summary.json and prints results/<stamp>-vs-ejabberd/README.md on stdout.
#
# What it does not do: run anything. Invariants: every number printed comes from a file in
# the results folder (summary.json written by rookery-load, runs.tsv written by the script:
# server RSS and CPU read from /proc); a missing value prints "-", never a guess.

# run_col SERVER LABEL COLUMN: one field of the last runs.tsv row for that run.
run_col() {
    awk -F'\t' -v s="$1" -v l="$2" -v c="$3" '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        $1 == s && $2 == l { v = $(col[c]) }
        END { print (v == "" ? "-" : v) }' "$RUNS"
}

# sj SERVER LABEL PATH: a value from that run's summary.json.
sj() {
    local f
    f=$(run_col "$1" "$2" summary)
    [ -f "$f" ] && json_get "$f" "$3"
}

row() { printf '| %s | %s | %s |\n' "$1" "${2:--}" "${3:--}"; }

# both LABEL FUNCTION ARGS...: a table row with FUNCTION's value for rookery and ejabberd.
both() {
    local title=$1 fn=$2
    shift 2
    row "$title" "$("$fn" rookery "$@")" "$("$fn" ejabberd "$@")"
}

v_ms() { ms "$(sj "$1" "$2" "$3")"; }
v_raw() { local v; v=$(sj "$1" "$2" "$3"); echo "${v:--}"; }
v_rss_mib() { div "$(run_col "$1" "$2" "$3")" 1024 "%.1f"; }
v_per_session_kib() {
    local before held seen
    before=$(run_col "$1" hold rss_before_kib)
    held=$(run_col "$1" hold rss_held_kib)
    seen=$(run_col "$1" hold sessions_seen)
    num "$held" && num "$before" && div "$((held - before))" "$seen" "%.2f" || echo "-"
}
v_cpu_pct() { div "$(awk -v c="$(run_col "$1" "$2" cpu_s)" 'BEGIN { print c * 100 }')" "$(run_col "$1" "$2" wall_s)" "%.0f%%"; }
v_steady_pct() { local v; v=$(run_col "$1" "$2" steady_cpu_pct); [ "$v" = - ] && echo "-" || echo "$v%"; }
v_cpu_us_per_msg() {
    div "$(awk -v c="$(run_col "$1" "$2" cpu_s)" 'BEGIN { print c * 1e6 }')" "$(sj "$1" "$2" counts.messages.delivered)" "%.1f"
}
v_rate() { div "$(sj "$1" "$2" counts.messages.delivered)" "$(div "$(sj "$1" "$2" config.duration_ms)" 1000 "%f")" "%.0f"; }

# storm_rate SERVER: logins/s over the storm: the summary's own figure
# (storm.logins_per_s_mean, or another key naming a mean of logins per second), else
# logins / duration, marked "derived".
storm_rate() {
    local f v
    f=$(run_col "$1" storm summary)
    [ -f "$f" ] || { echo "-"; return 0; }
    v=$(json_get "$f" storm.logins_per_s_mean)
    [ -n "$v" ] || v=$(json_keys "$f" 'login.*per_s.*mean' | head -n 1 | cut -d' ' -f2)
    if num "$v"; then
        fmt "%.0f" "$v"
    else
        echo "$(div "$(json_get "$f" counts.logins)" "$(div "$(json_get "$f" config.duration_ms)" 1000 "%f")" "%.0f") (derived)"
    fi
}
storm_peak() {
    local f v
    f=$(run_col "$1" storm summary)
    [ -f "$f" ] || { echo "-"; return 0; }
    v=$(json_get "$f" storm.logins_per_s_peak)
    [ -n "$v" ] || v=$(json_keys "$f" 'login.*per_s.*peak' | head -n 1 | cut -d' ' -f2)
    fmt "%.0f" "$v"
}

# step_label SERVER TOTAL: the run that decides a sweep step: its retry when there was one.
step_label() {
    local l
    l=sweep-$(printf '%05d' "$2")
    if [ "$(run_col "$1" "$l-retry" summary)" != - ]; then echo "$l-retry"; else echo "$l"; fi
}

# The highest sweep step that passed before the first failure, per server; "none" when the
# first step failed, with a "+" when it never failed (the ceiling is above the sweep).
sweep_best() {
    local best=none total v ran=0 failed=0
    for total in $SWEEP_RATES; do
        v=$(run_col "$1" "$(step_label "$1" "$total")" summary)
        [ "$v" = - ] && break
        ran=1
        if [ "$(verdict "$v")" = ok ]; then best=$total; else failed=1; break; fi
    done
    [ "$ran" = 1 ] || { echo "not run"; return 0; }
    if [ "$failed" = 0 ] && [ "$best" != none ]; then echo "$best+"; else echo "$best"; fi
}

sweep_row() { # $1 = total msgs/s
    local label first cells s v
    cells=""
    for s in $SERVERS; do
        label=$(step_label "$s" "$1")
        v=$(run_col "$s" "$label" summary)
        if [ "$v" = - ]; then
            cells="$cells | not run | | | "
            continue
        fi
        first=""
        if [ "$label" != "${label%-retry}" ]; then
            first="1st: $(verdict "$(run_col "$s" "${label%-retry}" summary)"); retry: "
        fi
        cells="$cells | $first$(verdict "$v") | $(v_ms "$s" "$label" latency_us.e2e_corrected.p99_us)"
        cells="$cells | $(v_rate "$s" "$label") | $(v_steady_pct "$s" "$label")"
    done
    echo "| $1$cells |"
}

ratio_text() { # $1 = rookery value, $2 = ejabberd value (either may end in "+" or be "none")
    local r=${1%+} e=${2%+}
    if num "$r" && num "$e"; then
        local q
        q=$(div "$r" "$e" "%.1f")
        case "$1/$2" in *+/*[!+]) echo ">= ${q}x (rookery never failed: its ceiling is above the sweep)" ;; *) echo "${q}x" ;; esac
    elif num "$r" && [ "$e" = none ]; then
        echo "> $(div "$r" "${SWEEP_RATES%% *}" "%.0f")x (ejabberd failed the first step, ${SWEEP_RATES%% *} msgs/s)"
    else
        echo "-"
    fi
}

machine_section() {
    local commit dirty rookery_backend load_backend
    commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    dirty=$( [ -n "$(git status --porcelain 2>/dev/null | head -n 1)" ] && echo " (working tree has uncommitted changes)")
    rookery_backend=$(grep -ho 'backend: [a-z]*' "$OUT"/rookery/*/server.log 2>/dev/null | head -n 1)
    load_backend=$(sj rookery chat backend.kind)
    cat <<EOF
# rookery vs ejabberd, side by side ($STAMP, $MODE)

- Machine: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(nproc --all) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM, kernel $(uname -r), $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")
- Load average when the script started: $LOAD_AVG
- Commit: $commit$dirty
- ejabberd $EJB_VERSION (Debian package), Erlang/OTP $(cat /usr/lib/erlang/releases/*/OTP_VERSION 2>/dev/null | head -n 1), run as user \`$EJB_USER\`, config: benches/ejabberd/ejabberd.yml.in
- rookery: ${rookery_backend:-backend unknown}; rookery-load: backend ${load_backend:-unknown}, \`--threads 1\`
- **Same CPU allotment**: each server pinned to core $SERVER_CORE (\`taskset -c $SERVER_CORE\`; rookery also
  \`--shards 1 --cores $SERVER_CORE\`; ejabberd's BEAM with \`+S 1:1\`), the load generator to core $LOAD_CORE
  (\`taskset -c $LOAD_CORE rookery-load ... --threads 1\`). Every server was restarted fresh before every run.
- Accounts: ejabberd authenticates through an extauth script accepting password == "$PASS_PREFIX" + n for
  $USER_PREFIX<n> (no storage, like rookery's token backend); rookery uses its token backend. The load
  flags are identical except \`--server\` and \`--auth\` (token:SECRET vs plain:PREFIX).
- ejabberd setup (install if needed + config + a test start): ${SETUP_S}s
EOF
}

hold_section() {
    echo
    echo "## Hold: $HOLD_N sessions (server RSS, VmRSS delta / sessions the server counted)"
    echo
    row "" rookery ejabberd
    row "---" "---" "---"
    both "logins" v_raw hold counts.logins
    both "client errors" v_raw hold counts.errors_total
    both "sessions counted by the server at sampling" run_col hold sessions_seen
    both "server RSS before (MiB)" v_rss_mib hold rss_before_kib
    both "server RSS with sessions held (MiB)" v_rss_mib hold rss_held_kib
    both "**server RSS per session (KiB)**" v_per_session_kib
    both "login p50 (ms)" v_ms hold latency_us.login.p50_us
    both "login p99 (ms)" v_ms hold latency_us.login.p99_us
    echo
    echo "Memory per session, ejabberd / rookery: $(div "$(v_per_session_kib ejabberd)" "$(v_per_session_kib rookery)" "%.0fx")"
}

chat_section() {
    echo
    echo "## Chat: $CHAT_N clients x 1 msg/s x ${CHAT_S} s (end to end, coordinated omission corrected)"
    echo
    row "" rookery ejabberd
    row "---" "---" "---"
    both "messages sent" v_raw chat counts.messages.sent
    both "delivered" v_raw chat counts.messages.delivered
    both "lost" v_raw chat counts.messages.lost
    both "client errors" v_raw chat counts.errors_total
    both "e2e p50 (ms)" v_ms chat latency_us.e2e_corrected.p50_us
    both "e2e p99 (ms)" v_ms chat latency_us.e2e_corrected.p99_us
    both "e2e p99.9 (ms)" v_ms chat latency_us.e2e_corrected.p999_us
    both "e2e max (ms)" v_ms chat latency_us.e2e_corrected.max_us
    both "generator send lag p99 (ms)" v_ms chat latency_us.send_lag.p99_us
    both "server CPU, steady phase (% of its core)" v_steady_pct chat
    both "server CPU, whole run incl. logins (% of its core)" v_cpu_pct chat
    both "server CPU per delivered message (us, incl. logins)" v_cpu_us_per_msg chat
}

sweep_section() {
    local r e total
    echo
    echo "## Ceiling: $SWEEP_N clients, total rate stepped, ${SWEEP_S} s per step"
    echo
    echo "A step passes with every client logged in, no client error, zero loss and e2e p99 <= 10 ms."
    echo "A server leaves the sweep at its first failing step."
    echo
    echo "CPU: the server's share of its core over the steady phase."
    echo
    echo "| offered msgs/s | rookery | p99 ms | delivered/s | CPU | ejabberd | p99 ms | delivered/s | CPU |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for total in $SWEEP_RATES; do sweep_row "$total"; done
    r=$(sweep_best rookery)
    e=$(sweep_best ejabberd)
    echo
    echo "Highest sustained rate (p99 <= 10 ms, zero loss): **rookery $r msgs/s, ejabberd $e msgs/s**."
    echo "Ratio rookery / ejabberd: **$(ratio_text "$r" "$e")**"
    [ -f "$OUT/sweep-budget-stops.txt" ] && echo "Stopped by the time budget (server, next step): $(tr '\n' ';' < "$OUT/sweep-budget-stops.txt")"
    return 0
}

storm_section() {
    echo
    echo "## Storm: $STORM_N clients, ${STORM_S} s of drop-and-reconnect"
    echo
    if [ "$STORM" != available ]; then
        echo "Storm $STORM."
        return 0
    fi
    row "" rookery ejabberd
    row "---" "---" "---"
    both "**logins/s (mean)**" storm_rate
    both "logins/s (peak second)" storm_peak
    both "logins (initial ramp + storm)" v_raw storm counts.logins
    both "logins during the storm" v_raw storm storm.logins
    both "client errors" v_raw storm counts.errors_total
    both "login p50 (ms)" v_ms storm latency_us.login.p50_us
    both "login p99 (ms)" v_ms storm latency_us.login.p99_us
    both "server CPU (% of its core)" v_cpu_pct storm
    echo
    echo "Ratio rookery / ejabberd (logins/s): $(div "$(storm_rate rookery | cut -d' ' -f1)" "$(storm_rate ejabberd | cut -d' ' -f1)" "%.1fx")"
}

caveats_section() {
    cat <<EOF

## Commands

Servers (restarted fresh before each run):

    $(rookery_cmd)
    HOME=<tmp> taskset -c $SERVER_CORE setpriv --reuid=ejabberd --regid=ejabberd --init-groups \\
        /usr/sbin/ejabberdctl --config-dir <tmp>/etc --config <tmp>/etc/ejabberd.yml \\
        --ctl-config <tmp>/etc/ejabberdctl.cfg --logs <run>/logs --spool <run>/spool foreground

Load (one line per run, as executed):

$(sed 's/^/    /' "$CMDS")

Reproduce: \`benches/scripts/vs-ejabberd.sh$( [ "$MODE" = quick ] && echo " --quick")\` (as root, on an otherwise idle machine).

## Caveats

- Two cores only: server and load generator each get one; the load generator's own limit can cap
  the sweep (watch "generator send lag": latency is measured from the intended send time, so a
  lagging generator shows up as latency and is charged to the server under test).
- ejabberd's accounts go through extauth (a perl process per pool slot, pinned to the same core,
  and ejabberd's auth cache): logins cost it a pipe round trip that a database-backed deployment
  would replace with a Mnesia or SQL lookup. Messages are unaffected.
- ejabberd is measured as configured here: no TLS, loglevel warning, shapers off, OOM killer off,
  mod_stream_mgmt advertised but not enabled by the clients (rookery-load does not do XEP-0198 yet).
- Server RSS is the VmRSS of one process (rookery; ejabberd's beam.smp, not its extauth helpers).
  "Before" is read right after start, so the delta includes fixed costs that grow on first use
  (rookery: io_uring provided receive buffers, ~4 MiB per shard; ejabberd: code and tables),
  which weigh more per session in a small run.
- Server CPU is user + system time of the server and its child processes, from /proc: "steady"
  over the sending phase only (from 1 s after every conn is up to 1 s before the end), "whole
  run" from launch to exit of the load generator (ramp, logins and drain included).
- Loopback only, so there is no NIC, interrupt or network cost in any number here.
EOF
}

runs_section() {
    echo
    echo "## Every run"
    echo
    echo "| server | run | exit | load avg (1 min) at start | wall s | server CPU s | result |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    awk -F'\t' 'NR > 1 { print $1 "\t" $2 "\t" $4 "\t" $12 "\t" $7 "\t" $6 "\t" $5 }' "$RUNS" |
        while IFS=$'\t' read -r server label rc load1 wall cpu summary; do
            echo "| $server | $label | $rc | $load1 | $wall | $cpu | $(verdict "$summary") |"
        done
}

write_readme() {
    machine_section
    hold_section
    chat_section
    sweep_section
    storm_section
    runs_section
    caveats_section
}
