# shellcheck shell=bash
# The presence and group scenarios of vs-ejabberd.sh (sourced, not run; `--only presence,group`,
# or groups-vs-ejabberd.sh): their sizes, their runs against each server, their README sections.
#
# Presence (rookery-load presence): on a fresh server, a setup run (`--setup always`: every
# client subscribes its contact ring, then 2 s of changes), then on the same server the
# measured run (`--setup auto`: the rosters hold the ring, so every client goes straight to
# its initial presence, waits --probe-ms for its contacts' presences, then changes status
# open-loop). Group (rookery-load group): on a fresh server, one run: the joins create the
# rooms (timed only as the ramp), then every group gets its messages.
# Sizes: quick = the issue's small shapes (1,000 x 10 contacts; 10 groups x 100 members),
# full = the issue's numbers (10,000 x 50 contacts; 100 groups x 1024 members over
# GRP_N clients and GRP_PROCS worker processes, the fd ceiling being ~19,900 per process).
# Every size can be overridden from the environment (PRES_N=2000 ... ).
#
# What it does not do: start servers, sample /proc or write the common sections
# (vs-ejabberd.sh, vs-ejabberd-lib.sh and vs-ejabberd-report.sh do). Invariants: every run is
# bounded (run_load's timeout covers the ramp, --setup-ms, --probe-ms, the duration and 60 s);
# every number in the README comes from a summary.json or runs.tsv.

# groups_sizes: the PRES_* and GRP_* sizes of this mode (environment values win).
groups_sizes() {
    if [ "$QUICK" = 1 ]; then
        : "${PRES_N:=1000}" "${PRES_K:=10}" "${PRES_RATE:=0.2}" "${PRES_S:=20}"
        : "${PRES_PROBE_MS:=3000}" "${PRES_SETUP_MS:=120000}"
        : "${GRP_N:=1000}" "${GRP_G:=10}" "${GRP_M:=100}" "${GRP_RATE:=1}" "${GRP_S:=20}"
        : "${GRP_SETUP_MS:=60000}" "${GRP_PROCS:=1}" "${GRP_JOIN_WAIT_S:=2}"
    else
        : "${PRES_N:=10000}" "${PRES_K:=50}" "${PRES_RATE:=0.02}" "${PRES_S:=60}"
        : "${PRES_PROBE_MS:=30000}" "${PRES_SETUP_MS:=1800000}"
        : "${GRP_N:=102400}" "${GRP_G:=100}" "${GRP_M:=1024}" "${GRP_RATE:=1}" "${GRP_S:=60}"
        : "${GRP_SETUP_MS:=1800000}" "${GRP_PROCS:=6}" "${GRP_JOIN_WAIT_S:=120}"
    fi
    : "${GRP_PRESENCE_BROADCAST:=}"
    # shellcheck disable=SC2034 # read by vs-ejabberd.sh, which records these in settings.env
    GROUPS_VARS="PRES_N PRES_K PRES_RATE PRES_S PRES_PROBE_MS PRES_SETUP_MS GRP_N GRP_G GRP_M GRP_RATE GRP_S GRP_SETUP_MS GRP_PROCS GRP_JOIN_WAIT_S GRP_PRESENCE_BROADCAST"
}

# presence_runs: the setup run and the measured run, per server.
presence_runs() {
    local s args
    args=(--contacts "$PRES_K" --rate "$PRES_RATE" --setup-ms "$PRES_SETUP_MS" --probe-ms "$PRES_PROBE_MS")
    for s in $SERVERS; do
        fresh "$s" presence-setup
        EXTRA_LIMIT_S=$(((PRES_SETUP_MS + PRES_PROBE_MS) / 1000)) \
            run_load "$s" presence presence-setup 2 "$PRES_N" "${args[@]}" --setup always
        # Same server, so the rosters the setup wrote are there.
        mkdir -p "$OUT/$s/presence"
        SAMPLE=steady SAMPLE_DELAY_S=$((PRES_PROBE_MS / 1000)) EXTRA_LIMIT_S=$(((PRES_SETUP_MS + PRES_PROBE_MS) / 1000)) \
            run_load "$s" presence presence "$PRES_S" "$PRES_N" "${args[@]}" --setup auto
    done
}

# group_runs: one run per server, on a fresh server.
group_runs() {
    local s procs=() broadcast=()
    [ "$GRP_PROCS" -gt 1 ] && procs=(--processes "$GRP_PROCS")
    # GRP_PRESENCE_BROADCAST (e.g. moderator): roles whose presence the rooms broadcast, set
    # by each room's creator; big groups need it (every role: N joins cost N^2/2 presences).
    [ -n "${GRP_PRESENCE_BROADCAST:-}" ] && broadcast=(--presence-broadcast "$GRP_PRESENCE_BROADCAST")
    for s in $SERVERS; do
        fresh "$s" group
        SAMPLE=steady SAMPLE_DELAY_S=$GRP_JOIN_WAIT_S EXTRA_LIMIT_S=$((GRP_SETUP_MS / 1000)) \
            run_load "$s" group group "$GRP_S" "$GRP_N" --groups "$GRP_G" --members "$GRP_M" \
            --rate "$GRP_RATE" --setup-ms "$GRP_SETUP_MS" "${procs[@]}" "${broadcast[@]}"
    done
}

# ratio SERVER_A SERVER_B LABEL PATH: A's value / B's value at PATH, "-" when either lacks it.
ratio() { div "$(sj "$1" "$3" "$4")" "$(sj "$2" "$3" "$4")" "%.1fx"; }
v_ms_max() { ms "$(sj "$1" "$2" "$3")"; }
v_int() { fmt "%.0f" "$(sj "$1" "$2" "$3")"; }
# v_of SERVER LABEL PATH_A PATH_B: "A of B".
v_of() { echo "$(v_raw "$1" "$2" "$3") of $(v_raw "$1" "$2" "$4")"; }

# receipt_rows RUN: the run's receipts (expected, lost) and client errors.
receipt_rows() {
    both "receipts expected" v_raw "$1" "$1.receipts.sent"
    both "receipts lost" v_raw "$1" "$1.receipts.lost"
    both "client errors" v_raw "$1" counts.errors_total
}

# last_rows RUN NOUN: delivery to the last NOUN of each fan-out: p50, p99 (the headline), max.
last_rows() {
    both "delivery to the last $2 p50 (ms)" v_ms "$1" "latency_us.$1_fanout_last.p50_us"
    both "**delivery to the last $2 p99 (ms)**" v_ms "$1" "latency_us.$1_fanout_last.p99_us"
    both "delivery to the last $2 max (ms)" v_ms_max "$1" "latency_us.$1_fanout_last.max_us"
}

# rate_rows RUN [EMPH]: RUN's stanzas delivered per second (mean over the sending time, busiest
# second), the generator's send lag and the steady-phase CPU; EMPH ("**") makes the mean a
# headline.
rate_rows() {
    local e=${2:-}
    both "$e$1 stanzas delivered/s (mean over the sending time)$e" v_int "$1" "$1.delivered_per_s_mean"
    both "$1 stanzas delivered/s (busiest second)" v_raw "$1" "$1.delivered_per_s_peak"
    both "generator send lag p99 (ms)" v_ms "$1" latency_us.send_lag.p99_us
    cpu_rows "$1" steady
}

presence_section() {
    echo
    echo "## Presence: $PRES_N clients x $PRES_K contacts, $PRES_RATE status changes/s each, ${PRES_S} s"
    echo
    echo "Ring of contacts (client i's are i+-1 .. i+-$((PRES_K / 2))), subscribed by a setup run on the same"
    echo "server; the measured run finds them in the rosters. Latency from each change's intended send"
    echo "time to its receipt at each contact (coordinated omission corrected), and to the last contact."
    echo
    row "" rookery ejabberd
    row "---" "---" "---"
    both "setup run: clients that subscribed" v_raw presence-setup presence.counters.setup_runs
    both "setup run: contact links not mutual at its end" v_raw presence-setup presence.counters.setup_incomplete_links
    both "setup run: ramp incl. subscriptions (ms)" v_raw presence-setup phases_ms.ramp
    both "measured run: rings found in place (clients)" v_raw presence presence.counters.setup_skipped
    both "initial presence: contacts seen available (of expected)" v_of presence presence.counters.initial_presences presence.counters.initial_expected
    both "initial presence: last one after (ms)" v_raw presence presence.counters.initial_last_ms
    both "status changes sent" v_raw presence presence.changes.changes_sent
    both "changes that reached every contact" v_raw presence presence.changes.changes_complete
    receipt_rows presence
    both "delivery to each contact p50 (ms)" v_ms presence latency_us.presence_delivery.p50_us
    both "**delivery to each contact p99 (ms)**" v_ms presence latency_us.presence_delivery.p99_us
    both "delivery to each contact p99.9 (ms)" v_ms presence latency_us.presence_delivery.p999_us
    last_rows presence contact
    rate_rows presence
    echo
    echo "p99 to each contact, ejabberd / rookery: $(ratio ejabberd rookery presence latency_us.presence_delivery.p99_us);" \
        "to the last contact: $(ratio ejabberd rookery presence latency_us.presence_fanout_last.p99_us)"
}

group_section() {
    echo
    echo "## Groups: $GRP_G groups x $GRP_M members over $GRP_N clients, $GRP_RATE message/s per group, ${GRP_S} s"
    echo
    echo "XEP-0045 rooms g0..g$((GRP_G - 1)); group g's members are clients (g*$GRP_M + m) mod $GRP_N. The joins"
    echo "create the rooms (the first joiner submits the instant-room form), then each group's messages come"
    echo "open-loop from a rotating member; every member, the sender included, must receive each one."
    echo
    row "" rookery ejabberd
    row "---" "---" "---"
    both "joins done" v_raw group group.counters.joins
    both "joins refused: service-unavailable (room full)" v_raw group "group.counters.join_error_service-unavailable"
    both "joins that timed out" v_raw group group.counters.join_error_timeout
    both "rooms created / configured" v_of group group.counters.rooms_created group.counters.rooms_configured
    both "ramp incl. joins (ms)" v_raw group phases_ms.ramp
    both "messages sent" v_raw group group.changes.changes_sent
    both "messages that reached every member" v_raw group group.changes.changes_complete
    receipt_rows group
    both "delivery to each member p50 (ms)" v_ms group latency_us.group_delivery.p50_us
    both "delivery to each member p99 (ms)" v_ms group latency_us.group_delivery.p99_us
    last_rows group member
    rate_rows group "**"
    echo
    echo "p99 to the last member, ejabberd / rookery: $(ratio ejabberd rookery group latency_us.group_fanout_last.p99_us)"
}

groups_caveats() {
    cat <<EOF

## Caveats (presence and groups)

- The steady-phase CPU window starts a fixed time after every conn is up (presence:
  --probe-ms, ${PRES_PROBE_MS} ms; groups: ${GRP_JOIN_WAIT_S} s for the joins): if the initial presences or the
  joins took longer, the window includes some of them.
- ejabberd's mod_muc is configured as benches/ejabberd/ejabberd.yml.in says (rooms of up to 1024,
  no history, persistent, its defaults otherwise: e.g. max_users_presence 1000, past which it stops
  broadcasting occupants' presence); rookery runs with its defaults (--group-max-members 1024).
- Every server is restarted fresh before each scenario; presence's measured run reuses the server
  of its setup run (the rosters must be there).
EOF
}
