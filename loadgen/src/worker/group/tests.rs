//! The group flow of one worker, note by note, against fake ops.

use super::*;
use crate::cli::RunConfig;
use crate::live::Shared;
use crate::worker::storm::tests::FakeOps;
use crate::worker::testing::{all_online, parsed_config};

const S_NS: u64 = 1_000_000_000;

/// 4 clients in one thread; g0 = {0, 1, 2}, g1 = {3, 0, 1}; 2 messages/s per group for 1 s.
fn config() -> RunConfig {
    let mut flags = vec!["--groups", "2", "--members", "3", "--threads", "1"];
    flags.extend_from_slice(&["--rate", "2", "--duration", "1s", "--setup-ms", "3000"]);
    parsed_config("group", "4", &flags, "127.0.0.1:1", "example.test")
}

const JOIN_G0: &str = "<presence to='g0@groups.example.test/user1'><x \
    xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>";
const JOIN_G1: &str = "<presence to='g1@groups.example.test/user1'><x \
    xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>";

#[test]
fn joins_create_retry_fail_and_settle() {
    let cfg = config();
    let shared = Shared::new(4, 1);
    let (mut w, mut io) = all_online(&cfg, &shared);
    for i in 0..4 {
        w.group_online(&mut io, i, 0);
    }
    assert_eq!(io.take(1), format!("{JOIN_G0}{JOIN_G1}"));
    // g0 is created by client 0: the instant-room form follows.
    w.on_group_note(
        &mut io,
        0,
        Note::Joined {
            group: 0,
            created: true,
        },
        0,
    );
    assert_eq!(
        io.take(1),
        "<iq type='set' id='cfg-0' to='g0@groups.example.test'><query \
         xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' \
         type='submit'/></query></iq>"
    );
    // g1 is still locked: retried after JOIN_RETRY_NS, then joined; settled.
    let locked = Note::JoinFailed {
        group: 1,
        error: JoinError::ItemNotFound,
    };
    w.on_group_note(&mut io, 0, locked, 0);
    assert_eq!(w.fan_turn(&mut io, 1), Some(JOIN_RETRY_NS));
    assert_eq!(io.take(1), "");
    assert_eq!(w.fan_turn(&mut io, JOIN_RETRY_NS), None);
    assert_eq!(io.take(1), JOIN_G1);
    assert_eq!(w.settled, 0);
    w.on_group_note(
        &mut io,
        0,
        Note::Joined {
            group: 1,
            created: false,
        },
        0,
    );
    w.on_group_note(
        &mut io,
        0,
        Note::Joined {
            group: 1,
            created: false,
        },
        0,
    );
    assert_eq!(
        (w.settled, w.report.fan.joins, w.report.fan.join_retries),
        (1, 2, 1)
    );
    // Client 3 (g1 only) is refused: counted by condition, settled. A group it is not in
    // is ignored.
    w.on_group_note(
        &mut io,
        3,
        Note::Joined {
            group: 0,
            created: false,
        },
        0,
    );
    let full = Note::JoinFailed {
        group: 1,
        error: JoinError::ServiceUnavailable,
    };
    w.on_group_note(&mut io, 3, full, 0);
    assert_eq!(w.settled, 2);
    assert_eq!(w.report.fan.join_errors(), vec![("service-unavailable", 1)]);
    // Client 1 joins g0 only, client 2 nothing: the setup time ends both.
    w.on_group_note(
        &mut io,
        1,
        Note::Joined {
            group: 0,
            created: false,
        },
        0,
    );
    w.fire_timers(&mut io, 3 * S_NS);
    assert_eq!(w.settled, 4);
    assert_eq!(
        w.report.fan.join_errors(),
        vec![("service-unavailable", 1), ("timeout", 2)],
        "client 1's g1 and client 2's g0"
    );
    w.on_group_note(&mut io, 0, Note::RoomConfigured { ok: true }, 0);
    assert_eq!(w.report.fan.rooms_configured, 1);
}

#[test]
fn messages_rotate_over_joined_members_and_are_accounted() {
    let cfg = config();
    let shared = Shared::new(4, 1);
    let (mut w, mut io) = all_online(&cfg, &shared);
    for i in 0..4 {
        w.group_online(&mut io, i, 0);
    }
    // Everyone joins, except client 1 in g0.
    for (i, group) in [(0, 0), (2, 0), (0, 1), (1, 1), (3, 1)] {
        w.on_group_note(
            &mut io,
            i,
            Note::Joined {
                group,
                created: false,
            },
            0,
        );
    }
    io.sent.clear();
    shared.start_steady(S_NS);
    w.advance_phase(&mut io, S_NS);
    // 2 messages per group in [1 s, 2 s).
    w.fire_timers(&mut io, 2 * S_NS);
    let from = |n: u32, io: &mut FakeOps| io.take(n);
    let (s0, s1, s2, s3) = (
        from(1, &mut io),
        from(2, &mut io),
        from(3, &mut io),
        from(4, &mut io),
    );
    // g0's turns: 0, then 1 (not joined: skipped) so 2; g1's: 3, then 0.
    assert!(s0.contains("g0@") && s0.contains("g1@"), "{s0}");
    assert!(s1.is_empty(), "{s1}");
    assert!(s2.contains("g0@") && s3.contains("g1@"), "{s2} | {s3}");
    assert!(
        s0.contains("<body>rk r=") && s0.contains(" s=0 q=0 i="),
        "{s0}"
    );
    assert_eq!(
        w.fan.group_mut().map(|g| g.sent()),
        Some(vec![(0, 2), (1, 2)])
    );
    // Message 0 of g0 reaches its members 0 and 2 (positions 0 and 2), once each; a stranger
    // to g0 (client 3) receiving it is unexpected.
    let probe = Probe {
        run: w.run_id,
        sender: 0,
        seq: 0,
        intended_ns: S_NS,
        actual_ns: S_NS,
    };
    let msg = Note::GroupProbe { group: 0, probe };
    w.on_group_note(&mut io, 0, msg, S_NS + 2_000_000);
    w.on_group_note(&mut io, 2, msg, S_NS + 5_000_000);
    w.on_group_note(&mut io, 2, msg, S_NS + 6_000_000);
    w.on_group_note(&mut io, 3, msg, S_NS + 6_000_000);
    let mut sent = vec![2u32, 2];
    let mut report = std::mem::take(&mut w.report);
    let totals = crate::fanout::totals(&cfg, &mut report, &mut sent).unwrap();
    assert_eq!(
        (
            totals.changes_sent,
            totals.changes_complete,
            totals.changes_partial
        ),
        (4, 0, 1),
        "member 1 of g0 never joined"
    );
    let m = report.ledger.totals(&sent);
    assert_eq!(
        (m.sent, m.delivered, m.lost, m.duplicated, m.unexpected),
        (12, 2, 10, 1, 1)
    );
    // Closing leaves every group joined.
    w.begin_closing(&mut io, 3 * S_NS);
    assert!(io.take(1).starts_with(
        "<presence type='unavailable' to='g0@groups.example.test/user1'/>\
         <presence type='unavailable' to='g1@groups.example.test/user1'/>"
    ));
}
