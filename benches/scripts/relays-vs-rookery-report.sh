# shellcheck shell=bash
# README writer for relays-vs-rookery.sh (sourced, not run): reads runs.tsv and each step's
# summary.json and prints results/<stamp>-relays-vs-rookery/README.md on stdout.
#
# What it does not do: run anything. Invariants: every number printed comes from a file in the
# results folder (summary.json written by rookery-load; runs.tsv written by the script: CPU
# seconds read from /proc/<pid>/stat, the relays' exit line); a missing value prints "-".
# Reads the settings the run script set (or settings.env): RUNS, OUT, RATES, SERVERS, CLIENTS...
# shellcheck disable=SC2153

# GEN_BOUND_PCT: a side using at least this much of its core in the steady phase is called
# saturated (the kernel's work for its sockets comes on top, so 100% is never reached cleanly).
GEN_BOUND_PCT=85
SERVER_BOUND_PCT=85
DISTURBED_PCT=20

# run_col SERVER RATE COLUMN and sj SERVER RATE PATH: see vs-ejabberd-lib.sh.

# pct SECONDS WINDOW: CPU seconds over a window as "N%" of one core.
pct() { local v; v=$(div "$(calc "${1:--} * 100")" "${2:--}" "%.0f"); [ "$v" = - ] && echo "-" || echo "$v%"; }

delivered_rate() { div "$(sj "$1" "$2" counts.messages.delivered)" "$(div "$(sj "$1" "$2" config.duration_ms)" 1000 "%f")" "%.0f"; }

# us_per_msg SERVER RATE: server CPU over the steady window / messages delivered in it (the
# delivered rate of the run times the window), in microseconds.
us_per_msg() {
    local rate window
    rate=$(delivered_rate "$1" "$2")
    window=$(run_col "$1" "$2" window_s)
    div "$(calc "$(run_col "$1" "$2" server_steady_s) * 1000000")" "$(calc "$rate * $window")" "%.1f"
}

# side SERVER RATE: which side used its whole core in the steady phase.
side() {
    local s g o
    s=$(div "$(calc "$(run_col "$1" "$2" server_steady_s) * 100")" "$(run_col "$1" "$2" window_s)" "%.0f")
    g=$(div "$(calc "$(run_col "$1" "$2" gen_steady_s) * 100")" "$(run_col "$1" "$2" window_s)" "%.0f")
    o=$(run_col "$1" "$2" others_pct)
    local out=()
    num "$g" && [ "$g" -ge "$GEN_BOUND_PCT" ] && out+=("generator-bound")
    num "$s" && [ "$s" -ge "$SERVER_BOUND_PCT" ] && out+=("server-bound")
    num "$o" && [ "$o" -ge "$DISTURBED_PCT" ] && out+=("disturbed")
    local IFS=,
    echo "${out[*]:-}"
}

# drops SERVER RATE: the relay's dropped stanzas (unknown destination + full queue), from its
# exit line; "-" for rookery.
drops() {
    local st
    st=$(run_col "$1" "$2" relay_stats)
    [ "$st" = - ] && { echo "-"; return 0; }
    awk -v s="$st" 'BEGIN { n = split(s, kv, ";"); t = 0
        for (i = 1; i <= n; i++) { split(kv[i], p, "="); if (p[1] ~ /^dropped_/) t += p[2] }
        print t }'
}

step_row() { # SERVER RATE
    local f result
    f=$(run_col "$1" "$2" summary)
    [ "$f" = - ] && [ "$(run_col "$1" "$2" rc)" = - ] && return 0
    result=$(verdict "$f")
    kept_up "$f" "$2" || result="fell behind; $result"
    local bound
    bound=$(side "$1" "$2")
    [ -n "$bound" ] && result="$result ($bound)"
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$2" "$1" \
        "$(delivered_rate "$1" "$2")" "$(sj "$1" "$2" counts.messages.lost)" \
        "$(ms "$(sj "$1" "$2" latency_us.e2e_corrected.p50_us)")" \
        "$(ms "$(sj "$1" "$2" latency_us.e2e_corrected.p99_us)")" \
        "$(ms "$(sj "$1" "$2" latency_us.e2e_corrected.p999_us)")" \
        "$(pct "$(run_col "$1" "$2" server_steady_s)" "$(run_col "$1" "$2" window_s)")" \
        "$(us_per_msg "$1" "$2")" \
        "$(pct "$(run_col "$1" "$2" gen_steady_s)" "$(run_col "$1" "$2" window_s)")" \
        "$(run_col "$1" "$2" others_pct)%" "$(drops "$1" "$2")" "$result"
}

# crate_version NAME: the version Cargo.lock pins.
crate_version() {
    awk -v n="$1" '$0 == "name = \"" n "\"" { getline; gsub(/version = |"/, ""); print; exit }' "$REPO/Cargo.lock"
}

# kept_up SUMMARY RATE: true when the run delivered at least 95% of the offered messages
# (RATE x duration), every client logged in and none failed; latency is not judged here.
kept_up() {
    local f=$1 clients logins errors delivered dur
    [ -f "$f" ] || return 1
    clients=$(json_get "$f" config.clients) logins=$(json_get "$f" counts.logins)
    errors=$(json_get "$f" counts.errors_total) delivered=$(json_get "$f" counts.messages.delivered)
    dur=$(json_get "$f" config.duration_ms)
    [ "${logins:-0}" = "${clients:-x}" ] && [ "${errors:-1}" = 0 ] &&
        awk -v d="${delivered:-0}" -v r="$2" -v t="${dur:-0}" 'BEGIN { exit !(d >= 0.95 * r * t / 1000) }'
}

# best SERVER [kept]: the highest offered rate that passed (p99 <= 10 ms, zero loss, no
# errors), or with "kept", the highest the server kept up with.
best() {
    local r b=-
    for r in $RATES; do
        if [ "${2:-}" = kept ]; then
            kept_up "$(run_col "$1" "$r" summary)" "$r" && b=$r
        else
            [ "$(verdict "$(run_col "$1" "$r" summary)")" = ok ] && b=$r
        fi
    done
    echo "$b"
}

hold_section() {
    [ -f "$OUT/hold.tsv" ] || return 0
    local s row
    echo
    echo "## Hold: $HOLD idle sessions per server (RSS read once every conn was up, plus 2 s)"
    echo
    echo "| server | logins | client errors | login p99 ms | RSS before MiB | RSS held MiB | KiB per session |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    for s in $SERVERS; do
        row=$(awk -F'\t' -v s="$s" '$1 == s' "$OUT/hold.tsv" | tail -n 1)
        [ -n "$row" ] || continue
        local f before held
        f=$(cut -f3 <<< "$row") before=$(cut -f4 <<< "$row") held=$(cut -f5 <<< "$row")
        printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$s" "$(json_get "$f" counts.logins)" \
            "$(json_get "$f" counts.errors_total)" "$(ms "$(json_get "$f" latency_us.login.p99_us)")" \
            "$(div "$before" 1024 "%.1f")" "$(div "$held" 1024 "%.1f")" \
            "$(num "$held" && num "$before" && div "$((held - before))" "$HOLD" "%.2f" || echo -)"
    done
}

write_readme() {
    local s r rookery_backend load_backend
    rookery_backend=$(grep -ho 'backend: [a-z]*' "$OUT"/rookery/*/server.log 2>/dev/null | head -n 1 || true)
    for r in $RATES; do load_backend=$(sj "${SERVERS%% *}" "$r" backend.kind); [ -n "$load_backend" ] && break; done
    cat <<EOF
# rookery vs runtime peers (tokio, monoio, glommio): the same relay, side by side ($STAMP, $MODE)

- Machine: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(nproc --all) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM, kernel $(uname -r), $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")
- Load average when the script started: $LOAD_AVG
- Commit: $COMMIT
- Binaries: $BIN_INFO
- rookery: ${rookery_backend:-backend unknown}, \`--durability $DURABILITY${ROOKERY_ARGS:+ $ROOKERY_ARGS}\`; relays (benches/relays): tokio $(crate_version tokio)
  (current_thread runtime), monoio $(crate_version monoio) (io_uring driver), glommio $(crate_version glommio);
  rookery-load: backend ${load_backend:-unknown}, \`--threads 1\`, XEP-0198 off
- **Same CPU allotment**: each server pinned to core $SERVER_CORE (\`taskset -c $SERVER_CORE\`; rookery also
  \`--shards 1 --cores $SERVER_CORE\`, the relays \`--core $SERVER_CORE\`), rookery-load to core $LOAD_CORE. Every
  server started fresh for every step; the rates interleaved (all servers at one rate before the next).
- Scheduling: $([ -n "${RT_PRIO:-}" ] && echo "server and rookery-load under \`chrt -f $RT_PRIO\` (SCHED_FIFO): other work on the machine cannot delay their wake-ups" || echo "normal (CFS/EEVDF); on a shared machine other work can delay the servers' wake-ups (see the others column)")
- The load is identical for every server (only the server behind 127.0.0.1:$PORT changes): $CLIENTS clients
  logged in at $CONNECT_RATE/s, then each sends to random online peers at (rate / $CLIENTS) msgs/s for
  ${STEP_S} s; exact commands in commands.txt.
- What each server does per message: rookery routes it through its router, **appends it to its
  durable log and keeps it until delivered** (\`--durability $DURABILITY\`); the relays frame, parse
  and stamp it with the same rookery-proto code, look the destination up in a map and write it:
  no storage, no rosters. So the relays are the floor for "read, look up, write" on each runtime.
EOF
    [ -z "$RATES" ] || sweep_section
    hold_section
    files_section
}

sweep_section() {
    local s r
    cat <<EOF

## Chat sweep: offered total rate, ${STEP_S} s per step

e2e latency: end to end, corrected for coordinated omission (rookery-load). CPU: over the steady
sending phase ([ramp + 1.5 s, ramp + ${STEP_S} s - 0.5 s] after the load started), in % of one core, from
/proc/<pid>/stat (utime + stime). **us/msg**: server CPU in
that window / messages delivered in it. A step passes ("ok") with every client logged in, no client
error, zero loss and p99 <= 10 ms; "fell behind": under 95% of the offered messages delivered (by the end of rookery-load's drain: a server seconds behind still passes that test; its p50 tells). Marks: generator-bound = rookery-load used >= ${GEN_BOUND_PCT}% of its core
(the step measured the generator), server-bound = the server used >= ${SERVER_BOUND_PCT}%, disturbed = other
processes used >= ${DISTURBED_PCT}% of a core. Relay drops: stanzas the relay dropped (unknown
destination or full queue), from its exit line.

| offered msgs/s | server | delivered msgs/s | lost | p50 ms | p99 ms | p99.9 ms | server CPU | server us/msg | rookery-load CPU | others | relay drops | result |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
EOF
    for r in $RATES; do for s in $SERVERS; do step_row "$s" "$r"; done; done
    echo
    echo "### Server CPU per delivered message (us), by rate"
    echo
    printf '| offered msgs/s |'; for s in $SERVERS; do printf ' %s |' "$s"; done; echo
    printf '| --- |'; for s in $SERVERS; do printf ' --- |'; done; echo
    for r in $RATES; do
        printf '| %s |' "$r"
        for s in $SERVERS; do printf ' %s |' "$(us_per_msg "$s" "$r")"; done
        echo
    done
    echo
    echo "Highest offered rate each server kept up with (>= 95% delivered, no errors), and the highest"
    echo "that also met p99 <= 10 ms with zero loss:"
    for s in $SERVERS; do echo "- $s: kept up to $(best "$s" kept) msgs/s; passed up to $(best "$s") msgs/s"; done
    if [ -f "$OUT/sweep-stops.txt" ]; then
        echo
        echo "Steps not run (server, rate, why: left-the-sweep = fell behind in two steps in a row; budget = the"
        echo "${BUDGET_S} s time budget):"
        echo
        sed 's/^/- /' "$OUT/sweep-stops.txt"
    fi
}

files_section() {
    cat <<EOF

## Files

- runs.tsv: one row per step (CPU seconds, window, exit code, path of its summary.json, relay stats)
- commands.txt: the exact server and rookery-load command lines
- <server>/rate-<N>/ (and <server>/hold/): rookery-load's folder (summary.json, histograms), loadgen.txt, server.log
- <server>/rate-<N>/flame.svg and stacks.folded.gz: the server's flame graph over the step's steady window (perf at 499 Hz, when perf and inferno are installed)
- hold.tsv (with HOLD=N): exit code, summary, RSS before and held per server
- settings.env: what \`benches/scripts/relays-vs-rookery.sh --report <this folder>\` needs to rewrite this file
EOF
}
