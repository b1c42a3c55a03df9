//! The presence flow of one worker, note by note, against fake ops.

use super::*;
use crate::cli::RunConfig;
use crate::client::Subscription;
use crate::live::Shared;
use crate::worker::testing::{all_online, parsed_config};

const S_NS: u64 = 1_000_000_000;

/// 6 clients in one thread, 2 contacts each (client 0: 1 and 5), 2 changes/s for 2 s.
fn config(extra: &[&str]) -> RunConfig {
    let mut flags = vec!["--contacts", "2", "--threads", "1", "--rate", "2"];
    flags.extend_from_slice(&[
        "--duration",
        "2s",
        "--setup-ms",
        "5000",
        "--probe-ms",
        "1000",
    ]);
    flags.extend_from_slice(extra);
    parsed_config("presence", "6", &flags, "127.0.0.1:1", "example.test")
}

fn link(contact: u32, subscription: Subscription) -> Note {
    Note::RosterItem {
        contact,
        subscription,
    }
}

#[test]
fn setup_subscribes_answers_and_goes_unavailable_once_mutual() {
    let cfg = config(&[]);
    let shared = Shared::new(6, 1);
    let (mut w, mut io) = all_online(&cfg, &shared);
    for i in 0..6 {
        w.presence_online(&mut io, i, 0);
    }
    assert_eq!(
        io.take(1),
        "<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>"
    );
    // Client 0 (user1): contact 1 is mutual already, contact 5 only `to`.
    w.on_presence_note(&mut io, 0, link(1, Subscription::Both), 0);
    w.on_presence_note(&mut io, 0, link(5, Subscription::To), 0);
    w.on_presence_note(&mut io, 0, link(3, Subscription::Both), 0); // not a contact
    w.on_presence_note(&mut io, 0, Note::RosterLoaded, 0);
    assert_eq!(
        io.take(1),
        "<presence to='user2@example.test' type='subscribe'/>\
         <presence to='user6@example.test' type='subscribe'/><presence/>",
        "auto: an incomplete ring subscribes to every contact, then becomes available"
    );
    assert_eq!(w.report.fan.setup_runs, 1);
    // Contact 5 asks; we approve; the push says both: done, unavailable, settled.
    w.on_presence_note(&mut io, 0, Note::Subscribe(5), 0);
    w.on_presence_note(&mut io, 0, Note::Subscribe(3), 0); // not a contact: no answer
    assert_eq!(
        io.take(1),
        "<presence to='user6@example.test' type='subscribed'/>"
    );
    assert_eq!(w.settled, 0);
    w.on_presence_note(&mut io, 0, link(5, Subscription::Both), 0);
    assert_eq!(io.take(1), "<presence type='unavailable'/>");
    assert_eq!((w.settled, w.report.fan.subscribes_answered), (1, 1));
    // Client 1 finds its ring in place: skipped, settled, nothing sent.
    w.on_presence_note(&mut io, 1, link(0, Subscription::Both), 0);
    w.on_presence_note(&mut io, 1, link(2, Subscription::Both), 0);
    w.on_presence_note(&mut io, 1, Note::RosterLoaded, 0);
    assert_eq!(
        io.take(2),
        "<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>"
    );
    assert_eq!((w.settled, w.report.fan.setup_skipped), (2, 1));
    // Client 3 fails before its roster came: settled once, even if it fails again.
    w.fail(&mut io, 3, crate::metrics::ErrorKind::Reset);
    w.fail(&mut io, 3, crate::metrics::ErrorKind::Reset);
    assert_eq!(w.settled, 3);
    // Client 2 gets one `subscribed` and nothing else: out of time, 2 links missing (the
    // `to` of contact 1 alone does not make it mutual); so do 4 and 5, still waiting for
    // their rosters.
    w.on_presence_note(&mut io, 2, Note::RosterLoaded, 0);
    w.on_presence_note(&mut io, 2, Note::Subscribed(1), 0);
    w.fire_timers(&mut io, 5 * S_NS - 1);
    assert_eq!(w.report.fan.setup_timeouts, 0);
    w.fire_timers(&mut io, 5 * S_NS);
    assert_eq!(w.report.fan.setup_timeouts, 3);
    assert_eq!(w.report.fan.setup_incomplete_links, 6);
    assert!(io.take(3).ends_with("<presence type='unavailable'/>"));
    assert!(
        !io.take(5).contains("unavailable"),
        "never available: nothing to undo"
    );
    assert_eq!(w.settled, 6);
}

#[test]
fn initial_presence_then_changes_are_sent_and_accounted() {
    let cfg = config(&["--setup", "skip"]);
    let shared = Shared::new(6, 1);
    let (mut w, mut io) = all_online(&cfg, &shared);
    for i in 0..6 {
        w.presence_online(&mut io, i, 0);
        w.on_presence_note(&mut io, i, Note::RosterLoaded, 0);
    }
    assert_eq!(w.settled, 6, "skip: settled as soon as the roster is in");
    io.sent.clear();
    // Steady at 1 s: initial presences at 1 s, changes from 2 s (--probe-ms 1000) to 4 s.
    w.shared.start_steady(S_NS);
    w.advance_phase(&mut io, S_NS / 2);
    assert_eq!(w.fan_turn(&mut io, S_NS / 2), Some(S_NS));
    assert!(io.sent.is_empty(), "not before the start");
    assert_eq!(w.fan_turn(&mut io, S_NS), Some(2 * S_NS));
    assert_eq!(io.take(1), "<presence/>");
    // Client 0 sees contact 1 (twice), a stranger and itself; contact 5 stays silent.
    for from in [1, 1, 3, 0] {
        let note = Note::Available { from, probe: None };
        w.on_presence_note(&mut io, 0, note, S_NS + 1_000_000);
    }
    assert_eq!(w.fan_turn(&mut io, 2 * S_NS), None);
    assert_eq!(
        (
            w.report.fan.initial_presences,
            w.report.fan.initial_expected
        ),
        (1, 12)
    );
    // Client 0's changes: 2/s from 2 s, the first at a random phase in the first 0.5 s.
    w.fire_timers(&mut io, 3 * S_NS);
    let sent = io.take(1);
    assert!(
        sent.starts_with("<presence><status>rk r=") && sent.contains(" s=0 q=0 i="),
        "{sent}"
    );
    assert_eq!(w.slots[0].seq, 2, "due at 2.x s and 2.x + 0.5 s");
    // Contact 1 receives change 0 of client 0 (position of 1 among 0's contacts: 0), twice.
    let probe = Probe {
        run: w.run_id,
        sender: 0,
        seq: 0,
        intended_ns: 2 * S_NS,
        actual_ns: 2 * S_NS,
    };
    let change = Note::Available {
        from: 0,
        probe: Some(probe),
    };
    w.on_presence_note(&mut io, 1, change, 2 * S_NS + 3_000_000);
    w.on_presence_note(&mut io, 1, change, 2 * S_NS + 4_000_000);
    // Its other contact (5) gets it too; a body naming another sender is unexpected; a
    // stranger's change (2 is not a contact of 5) is outside the ring; our own is ignored.
    w.on_presence_note(&mut io, 5, change, 2 * S_NS + 9_000_000);
    let forged = Note::Available {
        from: 4,
        probe: Some(probe),
    };
    w.on_presence_note(&mut io, 5, forged, 2 * S_NS);
    let stranger = Note::Available {
        from: 2,
        probe: Some(Probe { sender: 2, ..probe }),
    };
    w.on_presence_note(&mut io, 5, stranger, 2 * S_NS);
    w.on_presence_note(&mut io, 0, change, 2 * S_NS);
    assert_eq!(w.report.fan.outside_ring, 1);
    let h = w.recent.get(Metric::PresenceDelivery);
    assert_eq!(h.len(), 2, "first deliveries only");
    assert!(h.equivalent(h.max(), 9_000));
    let mut sent = vec![0u32; 6];
    sent[0] = 1;
    let mut report = std::mem::take(&mut w.report);
    let totals = crate::fanout::totals(&cfg, &mut report, &mut sent).unwrap();
    assert_eq!((totals.changes_sent, totals.changes_complete), (1, 1));
    let m = report.ledger.totals(&sent);
    assert_eq!(
        (m.sent, m.delivered, m.duplicated, m.unexpected),
        (2, 2, 1, 1)
    );
    let last = report.histograms.get(Metric::PresenceFanoutLast);
    assert!(last.len() == 1 && last.equivalent(last.max(), 9_000));
}
