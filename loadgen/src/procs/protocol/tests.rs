//! Worker reports across processes: encoded, sent as a line, decoded and merged, they give
//! what one process would have counted.

use super::*;
use crate::metrics::{ErrorKind, Metric};
use crate::run::Part;

/// What process `part` of a 4-client chat reports: clients 0..4, each sent 3 messages to
/// the next client; recipients record what reached them (plus the listed extras).
fn process_report(part: Part, extra: &[(u32, u32, u32)]) -> WorkerReport {
    let mut r = WorkerReport {
        ledger: Ledger::new(4, 100),
        receipts: Ledger::new(0, 100),
        ..WorkerReport::default()
    };
    for client in (0..4).filter(|&c| part.owns(c)) {
        r.sent.push((client, 3));
        r.acked.push((client, 2));
        r.offline_deliveries += 3;
        r.last_delivery_ns = r.last_delivery_ns.max(100 + u64::from(client));
        r.logins += 1;
        r.histograms.record(Metric::Login, 1000 + u64::from(client));
        // Messages from the previous client (ring) arrive here.
        let sender = (client + 3) % 4;
        for seq in 0..3 {
            r.ledger.record(sender, client, seq);
            r.histograms.record(Metric::E2eCorrected, 500);
        }
    }
    for &(sender, recipient, seq) in extra {
        r.ledger.record(sender, recipient, seq);
    }
    r.errors.add(ErrorKind::Reset);
    r.storm_logins = 7;
    r
}

fn through_the_pipe(report: WorkerReport) -> WorkerReport {
    let line = to_line(&ChildMsg::Done {
        report: Box::new(encode_report(report)),
        meta: PartMeta::default(),
    });
    assert!(!line.contains('\n'));
    match from_line::<ChildMsg>(&line).unwrap() {
        ChildMsg::Done { report, .. } => decode_report(&report, 4).unwrap(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn merged_reports_count_like_one_process() {
    let a = Part { index: 0, of: 2 };
    let b = Part { index: 1, of: 2 };
    // Process b also got seq 1 of sender 0 (whose recipient, client 1, is its own) a second
    // time, and seq 2 of sender 1 that belongs to client 2 of process a: a duplicate across
    // processes.
    let mut merged = through_the_pipe(process_report(a, &[]));
    merged.absorb(through_the_pipe(process_report(b, &[(0, 1, 1), (1, 3, 2)])));
    let mut sent = vec![0u32; 4];
    for &(i, n) in &merged.sent {
        sent[i as usize] = n;
    }
    let totals = merged.ledger.totals(&sent);
    assert_eq!(totals.sent, 12);
    assert_eq!(totals.delivered, 12);
    assert_eq!(totals.lost, 0);
    assert_eq!(totals.duplicated, 2, "one within b, one across a and b");
    let mut acked = vec![0u32; 4];
    for &(i, n) in &merged.acked {
        acked[i as usize] = n;
    }
    let acks = merged
        .ledger
        .ack_totals(&sent, &acked, &merged.unacked_at_drop);
    assert_eq!(
        (acks.acknowledged, acks.acked_delivered, acks.acked_lost),
        (8, 8, 0)
    );
    assert_eq!((acks.unacked, acks.unacked_lost), (4, 0));
    assert_eq!(merged.offline_deliveries, 12);
    assert_eq!(merged.last_delivery_ns, 103, "the latest of all, not a sum");
    assert_eq!(merged.logins, 4);
    assert_eq!(merged.storm_logins, 14);
    assert_eq!(merged.errors.get(ErrorKind::Reset), 2);
    assert_eq!(merged.histograms.get(Metric::Login).len(), 4);
    assert_eq!(merged.histograms.get(Metric::E2eCorrected).len(), 12);
}

#[test]
fn corrupt_reports_are_refused() {
    let good = encode_report(process_report(Part::WHOLE, &[]));
    assert!(decode_report(&good, 4).is_ok());
    assert!(matches!(
        decode_report(&good, 2),
        Err(ProtocolError::Ledger(_)) | Err(ProtocolError::BadSentCounts)
    ));
    let mut bad = encode_report(process_report(Part::WHOLE, &[]));
    bad.histograms.insert("nope".into(), "AAAA".into());
    assert_eq!(
        decode_report(&bad, 4).err(),
        Some(ProtocolError::UnknownMetric("nope".into()))
    );
    let mut bad = encode_report(process_report(Part::WHOLE, &[]));
    bad.errors.insert("gremlins".into(), 1);
    assert!(matches!(
        decode_report(&bad, 4),
        Err(ProtocolError::UnknownError(_))
    ));
    let mut bad = encode_report(process_report(Part::WHOLE, &[]));
    bad.sent.push_str("AAA=");
    assert!(decode_report(&bad, 4).is_err());
    let mut bad = encode_report(process_report(Part::WHOLE, &[]));
    bad.acked = "!".into();
    assert_eq!(
        decode_report(&bad, 4).err(),
        Some(ProtocolError::BadSentCounts)
    );
    assert!(matches!(
        from_line::<ChildMsg>("{\"msg\":\"bogus\"}"),
        Err(ProtocolError::Json(_))
    ));
}

#[test]
fn parent_messages_round_trip() {
    for msg in [
        ParentMsg::Go { at_ns: 5 },
        ParentMsg::Steady {
            at_ns: 9,
            not_online: vec![1, 7],
        },
        ParentMsg::Abort,
    ] {
        assert_eq!(from_line::<ParentMsg>(&to_line(&msg)).unwrap(), msg);
    }
}

#[test]
fn group_reports_travel_by_group_rows_with_their_fanout_table() {
    let flags = ["--groups", "2", "--members", "5"];
    let cfg = crate::worker::testing::parsed_config("group", "10", &flags, "127.0.0.1:1", "d");
    let mut r = WorkerReport {
        ledger: Ledger::new(2, cfg.max_seq() * 5),
        ..WorkerReport::default()
    };
    // Group 1 sent 3 messages; message 2 reached members 0 and 4.
    r.sent.push((1, 3));
    r.ledger.record(1, 6, 2 * 5);
    r.ledger.record(1, 0, 2 * 5 + 4);
    r.last_receipts.record(1, 2, 700);
    r.last_receipts.record(1, 2, 900);
    r.fan.joins = 5;
    r.fan.join_errors[crate::fanout::JoinError::Conflict as usize] = 1;
    r.fan.initial_last_ms = 12;
    let wire = encode_report(r);
    let back = decode_report_for(&wire, &cfg).unwrap();
    assert_eq!(back.sent, vec![(1, 3)]);
    assert_eq!(back.fan.joins, 5);
    assert_eq!(back.fan.join_errors(), vec![("conflict", 1)]);
    assert_eq!(back.fan.initial_last_ms, 12);
    let mut sent = vec![0, 3];
    let mut back = back;
    let totals = crate::fanout::totals(&cfg, &mut back, &mut sent).unwrap();
    assert_eq!((totals.changes_sent, totals.changes_partial), (3, 1));
    assert_eq!(back.ledger.totals(&sent).delivered, 2);
    // Rows are groups: a report naming group 2 of 2 is refused, as is a table past max_seq.
    let mut bad = encode_report(WorkerReport::default());
    bad.sent = encode_report(WorkerReport {
        sent: vec![(2, 1)],
        ..WorkerReport::default()
    })
    .sent;
    assert_eq!(
        decode_report_for(&bad, &cfg).err(),
        Some(ProtocolError::BadSentCounts)
    );
    let mut far = WorkerReport::default();
    far.last_receipts.record(0, cfg.max_seq(), 1);
    assert!(matches!(
        decode_report_for(&encode_report(far), &cfg),
        Err(ProtocolError::Table(_))
    ));
    let mut unknown = encode_report(WorkerReport::default());
    unknown.counters.insert("join_error_gremlins".into(), 1);
    assert_eq!(
        decode_report_for(&unknown, &cfg).err(),
        Some(ProtocolError::UnknownCounter("join_error_gremlins".into()))
    );
}
