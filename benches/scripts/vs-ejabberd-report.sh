# shellcheck shell=bash
# README writer for vs-ejabberd.sh (sourced, not run): reads runs.tsv and each run's
# summary.json and prints results/<stamp>-vs-ejabberd/README.md on stdout.
#
# What it does not do: run anything. Invariants: every number printed comes from a file in
# the results folder (summary.json written by rookery-load, runs.tsv written by the script:
# server RSS and CPU read from /proc); a missing value prints "-", never a guess.

# run_col and sj (runs.tsv and summary.json readers) live in vs-ejabberd-lib.sh.

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
v_gen_pct() { local v; v=$(run_col "$1" "$2" gen_cpu_pct); [ "$v" = - ] && echo "-" || echo "$v%"; }
v_others_pct() { local v; v=$(run_col "$1" "$2" others_cpu_pct); [ "$v" = - ] && echo "-" || echo "$v%"; }
# generator_bound SERVER LABEL: the load generator used >= GEN_BOUND_PCT of its core in the
# steady phase (kernel work for its sockets comes on top), so a failure there may be the
# generator's, not the server's. disturbed SERVER LABEL: other processes used >=
# DISTURBED_PCT of a core meanwhile.
GEN_BOUND_PCT=85
DISTURBED_PCT=20
generator_bound() {
    local v
    v=$(run_col "$1" "$2" gen_cpu_pct)
    num "$v" && [ "$v" -ge "$GEN_BOUND_PCT" ]
}
disturbed() {
    local v
    v=$(run_col "$1" "$2" others_cpu_pct)
    num "$v" && [ "$v" -ge "$DISTURBED_PCT" ]
}
# cpu_rows RUN PHASE [NOTE]: the server's, rookery-load's and every other process's CPU over the
# run's PHASE (steady, storm), in % of a core; NOTE follows "one core" in the last label.
cpu_rows() {
    both "server CPU, $2 phase (% of its core)" v_steady_pct "$1"
    both "rookery-load CPU, $2 phase (% of its core)" v_gen_pct "$1"
    both "other processes' CPU, $2 phase (% of one core${3:-})" v_others_pct "$1"
}
v_steady_pct() { local v; v=$(run_col "$1" "$2" steady_cpu_pct); [ "$v" = - ] && echo "-" || echo "$v%"; }
v_cpu_us_per_msg() {
    div "$(awk -v c="$(run_col "$1" "$2" cpu_s)" 'BEGIN { print c * 1e6 }')" "$(sj "$1" "$2" counts.messages.delivered)" "%.1f"
}
v_rate() { div "$(sj "$1" "$2" counts.messages.delivered)" "$(div "$(sj "$1" "$2" config.duration_ms)" 1000 "%f")" "%.0f"; }

# storm_stat SERVER mean|peak: the storm summary's own logins/s figure of that kind
# (storm.logins_per_s_KIND, or another key naming one); empty when absent.
storm_stat() {
    local f v
    f=$(run_col "$1" storm summary)
    [ -f "$f" ] || return 0
    v=$(json_get "$f" "storm.logins_per_s_$2")
    [ -n "$v" ] || v=$(json_keys "$f" "login.*per_s.*$2" | head -n 1 | cut -d' ' -f2)
    echo "$v"
}

# storm_rate SERVER: logins/s over the storm: the summary's own mean, else logins / duration,
# marked "derived".
storm_rate() {
    local f v
    f=$(run_col "$1" storm summary)
    [ -f "$f" ] || { echo "-"; return 0; }
    v=$(storm_stat "$1" mean)
    if num "$v"; then
        fmt "%.0f" "$v"
    else
        echo "$(div "$(json_get "$f" counts.logins)" "$(div "$(json_get "$f" config.duration_ms)" 1000 "%f")" "%.0f") (derived)"
    fi
}
storm_peak() { fmt "%.0f" "$(storm_stat "$1" peak)"; }

# step_label SERVER TOTAL: the run that decides a sweep step: its retry when there was one.
step_label() {
    local l
    l=sweep-$(printf '%05d' "$2")
    if [ "$(run_col "$1" "$l-retry" summary)" != - ]; then echo "$l-retry"; else echo "$l"; fi
}

# The highest sweep step that passed before the first failure, per server ("none" when the
# first step failed), and why the sweep stopped there: server, generator (the failing step
# had rookery-load saturated), budget, or top (never failed). Sets SWEEP_BEST and SWEEP_STOP
# (not for $(...)).
sweep_best() {
    local best=none total l v
    SWEEP_STOP=top
    for total in $SWEEP_RATES; do
        l=$(step_label "$1" "$total")
        v=$(run_col "$1" "$l" summary)
        if [ "$v" = - ]; then
            SWEEP_STOP=budget
            grep -qs "^$1 $total\$" "$OUT/sweep-budget-stops.txt" || SWEEP_STOP=server
            break
        fi
        if [ "$(verdict "$v")" = ok ]; then best=$total; continue; fi
        # Either attempt being generator-bound or disturbed makes the stop uncertain.
        SWEEP_STOP=server
        disturbed "$1" "${l%-retry}" && SWEEP_STOP=disturbance
        disturbed "$1" "$l" && SWEEP_STOP=disturbance
        generator_bound "$1" "${l%-retry}" && SWEEP_STOP=generator
        generator_bound "$1" "$l" && SWEEP_STOP=generator
        break
    done
    SWEEP_BEST=$best
}

# step_flags SERVER LABEL: why a failed step may not be the server's limit.
step_flags() {
    local f=""
    generator_bound "$1" "$2" && f="$f (generator-bound)"
    disturbed "$1" "$2" && f="$f (disturbed)"
    echo "$f"
}

sweep_row() { # $1 = total msgs/s
    local label first cells s v gen
    cells=""
    for s in $SERVERS; do
        label=$(step_label "$s" "$1")
        v=$(run_col "$s" "$label" summary)
        if [ "$v" = - ]; then
            cells="$cells | not run | | | | "
            continue
        fi
        first="" gen=""
        if [ "$label" != "${label%-retry}" ]; then
            first="1st: $(verdict "$(run_col "$s" "${label%-retry}" summary)")$(step_flags "$s" "${label%-retry}"); retry: "
        fi
        [ "$(verdict "$v")" = ok ] || gen=$(step_flags "$s" "$label")
        cells="$cells | $first$(verdict "$v")$gen | $(v_ms "$s" "$label" latency_us.e2e_corrected.p99_us)"
        cells="$cells | $(v_steady_pct "$s" "$label") | $(v_gen_pct "$s" "$label") | $(v_others_pct "$s" "$label")"
    done
    echo "| $1$cells |"
}

# ratio_text: rookery's and ejabberd's best rates and why each sweep stopped
# ($1 best, $2 stop, $3 best, $4 stop) -> the ratio, as a bound when a sweep did not end
# at the server's own limit.
ratio_text() {
    local r=$1 rs=$2 e=$3 es=$4 q
    if [ "$e" = none ]; then
        if num "$r"; then echo "> $(div "$r" "${SWEEP_RATES%% *}" "%.0f")x (ejabberd failed the first step)"; else echo "-"; fi
        return 0
    fi
    if ! num "$r" || ! num "$e"; then echo "-"; return 0; fi
    q=$(div "$r" "$e" "%.1f")
    case "$rs/$es" in
        server/server) echo "${q}x" ;;
        */server) echo ">= ${q}x (rookery's sweep stopped at $(stop_text "$rs"), not at a rookery limit)" ;;
        server/*) echo "<= ${q}x (ejabberd's sweep stopped at $(stop_text "$es"))" ;;
        *) echo "~${q}x (neither sweep stopped at a server limit: $(stop_text "$rs") / $(stop_text "$es"))" ;;
    esac
}

stop_text() {
    case "$1" in
        top) echo "the top of the sweep" ;;
        generator) echo "the load generator's limit" ;;
        disturbance) echo "a step disturbed by other processes" ;;
        budget) echo "the time budget" ;;
        *) echo "its own limit" ;;
    esac
}

machine_section() {
    local rookery_backend load_backend
    rookery_backend=$(grep -ho 'backend: [a-z]*' "$OUT"/rookery/*/server.log 2>/dev/null | head -n 1)
    load_backend=$(sj rookery chat backend.kind)
    [ -n "$load_backend" ] || load_backend=$(sj rookery storm backend.kind)
    [ -n "$load_backend" ] || load_backend=$(sj rookery presence backend.kind)
    [ -n "$load_backend" ] || load_backend=$(sj rookery group backend.kind)
    cat <<EOF
# rookery vs ejabberd, side by side ($STAMP, $MODE)

- Machine: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(nproc --all) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM, kernel $(uname -r), $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")
- Load average when the script started: $LOAD_AVG
- Commit: $COMMIT
- ejabberd $EJB_VERSION (Debian package), Erlang/OTP $(cat /usr/lib/erlang/releases/*/OTP_VERSION 2>/dev/null | head -n 1), run as user \`$EJB_USER\`; the files it ran with
  are in ejabberd/config/ (from benches/ejabberd/*.in)
- Binaries: ${BIN_INFO:-$BIN}
- rookery: ${rookery_backend:-backend unknown}, durability ${DURABILITY:--}; rookery-load: backend ${load_backend:-unknown}, \`--threads 1\`
- XEP-0198 stream management enabled by the clients: ${SM:-off} (on both servers alike)
- TLS: ${TLS:-off} (starttls: the same P-256 certificate on both servers, every client does
  STARTTLS with a full TLS 1.3 handshake, no resumption)
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
    cpu_rows chat steady "; interference"
    both "server CPU, whole run incl. logins (% of its core)" v_cpu_pct chat
    both "server CPU per delivered message (us, incl. logins)" v_cpu_us_per_msg chat
}

sweep_section() {
    local r rs e es total
    echo
    echo "## Ceiling: $SWEEP_N clients, total rate stepped, ${SWEEP_S} s per step"
    echo
    echo "A step passes with every client logged in, no client error, zero loss and e2e p99 <= 10 ms."
    echo "A failing step is run once more on a fresh server; a server leaves the sweep when the retry"
    echo "fails too. CPU over the steady phase, in % of one core: the server, rookery-load (>= ${GEN_BOUND_PCT}%:"
    echo "generator-bound, the step measured the load generator), and all other processes (>= ${DISTURBED_PCT}%:"
    echo "disturbed, the machine was not quiet)."
    echo
    echo "| offered msgs/s | rookery | p99 ms | server CPU | rookery-load CPU | others | ejabberd | p99 ms | server CPU | rookery-load CPU | others |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    for total in $SWEEP_RATES; do sweep_row "$total"; done
    sweep_best rookery
    r=$SWEEP_BEST rs=$SWEEP_STOP
    sweep_best ejabberd
    e=$SWEEP_BEST es=$SWEEP_STOP
    echo
    echo "Highest sustained rate (p99 <= 10 ms, zero loss): **rookery $r msgs/s, ejabberd $e msgs/s**"
    echo "(rookery's sweep stopped at $(stop_text "$rs"), ejabberd's at $(stop_text "$es"))."
    echo "Ratio rookery / ejabberd: **$(ratio_text "$r" "$rs" "$e" "$es")**"
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
    cpu_rows storm storm
    echo
    echo "Ratio rookery / ejabberd (logins/s): $(div "$(storm_rate rookery | cut -d' ' -f1)" "$(storm_rate ejabberd | cut -d' ' -f1)" "%.1fx")$(
        generator_bound rookery storm && echo " (rookery-load saturated its core against rookery: a lower bound)")"
}

caveats_section() {
    cat <<EOF

## Commands

Servers (restarted fresh before each run) and load (one line per run), as executed:

$(sed 's/^/    /' "$CMDS")

Reproduce: \`benches/scripts/vs-ejabberd.sh$( [ "$MODE" = quick ] && echo " --quick")$( [ "$ONLY" != hold,chat,storm,ceiling ] && echo " --only $ONLY")\`
(as root, on an otherwise idle machine).

## Caveats

- Two cores only: server and load generator each get one; the load generator's own limit can cap
  the sweep (watch "generator send lag": latency is measured from the intended send time, so a
  lagging generator shows up as latency and is charged to the server under test).
- ejabberd's accounts go through extauth (a perl process per pool slot, pinned to the same core,
  and ejabberd's auth cache): logins cost it a pipe round trip that a database-backed deployment
  would replace with a Mnesia or SQL lookup. Messages are unaffected.
- ejabberd is measured as configured here: TLS only with TLS=starttls, loglevel warning, shapers off, OOM killer off,
  mod_stream_mgmt (XEP-0198) offered. Unless SM=on, the clients do not enable XEP-0198
  (\`--stream-management off\`, or a rookery-load without it), so both servers handle the same
  stanzas and a dropped client's session ends at once instead of waiting to be resumed.
- rookery's durability mode (above) decides what it writes to its log; ejabberd here stores no
  messages (no mod_offline; nothing is offline during these runs anyway).
- Server RSS is the VmRSS of one process (rookery; ejabberd's beam.smp, not its extauth helpers).
  "Before" is read right after start, so the delta includes fixed costs that grow on first use
  (rookery: io_uring provided receive buffers, ~4 MiB per shard; ejabberd: code and tables),
  which weigh more per session in a small run.
- Server CPU is user + system time of the server and its child processes, from /proc (kernel
  softirq work for loopback TCP done outside a process's context is charged to none): "steady"
  over the sending phase only (from 1 s after every conn is up to 1 s before the end), "whole
  run" from launch to exit of the load generator (ramp, logins and drain included).
- Loopback only, so there is no NIC, interrupt or network cost in any number here.
EOF
}

runs_section() {
    echo
    echo "## Every run"
    echo
    echo "Steady-phase CPU (chat runs), in % of one core: server / rookery-load / all other processes."
    echo
    echo "| server | run | exit | wall s | server CPU s (whole run) | steady: server / rookery-load / others | result |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    awk -F'\t' 'NR > 1 { print $1 "\t" $2 "\t" $4 "\t" $7 "\t" $6 "\t" $5 "\t" $11 "% / " $13 "% / " $14 "%" }' "$RUNS" |
        while IFS=$'\t' read -r server label rc wall cpu summary steady; do
            [ "$steady" = "-% / -% / -%" ] && steady=-
            echo "| $server | $label | $rc | $wall | $cpu | $steady | $(verdict "$summary") |"
        done
}

write_readme() {
    machine_section
    if [ "${GROUPS_ONLY:-0}" != 1 ]; then
        if want hold; then hold_section; else printf '\n## Hold\n\nNot run (--only %s).\n' "$ONLY"; fi
        if want chat; then chat_section; else printf '\n## Chat\n\nNot run (--only %s).\n' "$ONLY"; fi
        if want ceiling; then sweep_section; else printf '\n## Ceiling\n\nNot run (--only %s).\n' "$ONLY"; fi
        storm_section
    fi
    if want presence; then presence_section; fi
    if want group; then group_section; fi
    runs_section
    caveats_section
    if want presence || want group; then groups_caveats; fi
}
