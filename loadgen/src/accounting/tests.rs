//! Ledger accounting: loss, duplicates, order, acks, and the trip between processes.

use super::*;

#[test]
fn counts_lost_duplicated_and_out_of_order() {
    let mut ledger = Ledger::new(3, 1000);
    // Sender 0 sent 5 to recipient 1: 0,1,3,2 arrive (2 late), 4 is lost, 1 arrives twice.
    for seq in [0, 1, 3] {
        assert_eq!(ledger.record(0, 1, seq), Delivery::InOrder);
    }
    assert_eq!(ledger.record(0, 1, 2), Delivery::OutOfOrder);
    assert_eq!(ledger.record(0, 1, 1), Delivery::Duplicate);
    // Sender 2 sent 2 to two recipients: order is per pair, so this is in order.
    assert_eq!(ledger.record(2, 0, 1), Delivery::InOrder);
    assert_eq!(ledger.record(2, 1, 0), Delivery::InOrder);
    let totals = ledger.totals(&[5, 0, 2]);
    assert_eq!(
        totals,
        MessageTotals {
            sent: 7,
            delivered: 6,
            lost: 1,
            duplicated: 1,
            out_of_order: 1,
            unexpected: 0,
            order_unchecked: 0,
        }
    );
}

#[test]
fn pairs_beyond_the_table_are_counted_not_checked() {
    let mut ledger = Ledger::new(4, 100);
    ledger.max_pairs = 2;
    ledger.record(0, 1, 5);
    ledger.record(1, 2, 5);
    // A third pair does not fit: its inversion goes unchecked, but it is still delivered.
    assert_eq!(ledger.record(2, 3, 5), Delivery::InOrder);
    assert_eq!(ledger.record(2, 3, 4), Delivery::InOrder);
    // Known pairs are still checked.
    assert_eq!(ledger.record(0, 1, 4), Delivery::OutOfOrder);
    let totals = ledger.totals(&[6, 6, 6, 0]);
    assert_eq!(
        (
            totals.order_unchecked,
            totals.out_of_order,
            totals.delivered
        ),
        (2, 1, 5)
    );
}

#[test]
fn unexpected_senders_and_sequences_are_refused() {
    let mut ledger = Ledger::new(2, 100);
    assert_eq!(ledger.record(5, 0, 0), Delivery::Unexpected);
    assert_eq!(ledger.record(0, 1, 100), Delivery::Unexpected);
    // In range but above what the sender says it sent.
    assert_eq!(ledger.record(1, 0, 70), Delivery::InOrder);
    let totals = ledger.totals(&[0, 3]);
    assert_eq!(
        (totals.unexpected, totals.lost, totals.delivered),
        (3, 3, 0)
    );
}

#[test]
fn merge_across_threads_finds_cross_thread_duplicates() {
    let mut a = Ledger::new(2, 1000);
    let mut b = Ledger::new(2, 1000);
    for seq in 0..130 {
        // Even seqs went to a recipient on thread a, odd ones to thread b.
        let ledger = if seq % 2 == 0 { &mut a } else { &mut b };
        ledger.record(0, 1, seq);
    }
    b.record(0, 1, 64); // seq 64 also delivered on the other thread: a misroute
    a.merge(b);
    let totals = a.totals(&[131, 0]);
    assert_eq!(totals.delivered, 130);
    assert_eq!(totals.lost, 1);
    assert_eq!(totals.duplicated, 1);
    assert_eq!(a.deliveries(), 131);
}

#[test]
fn ledgers_cross_processes_exactly() {
    // Process A's recipients got seqs 0..70 of sender 1 and seq 3 of sender 0; process B's
    // got 70..100 of sender 1 plus seq 5 again (a duplicate across processes), and one
    // out-of-order delivery of its own.
    let mut a = Ledger::new(3, 1000);
    let mut b = Ledger::new(3, 1000);
    for seq in 0..70 {
        a.record(1, 0, seq);
    }
    a.record(0, 2, 3);
    for seq in (70..100).rev() {
        b.record(1, 2, seq);
    }
    b.record(1, 2, 5);
    let wire_a = a.to_wire();
    let wire_b = b.to_wire();
    let mut merged = Ledger::from_wire(&wire_a, 3).unwrap();
    merged.merge(Ledger::from_wire(&wire_b, 3).unwrap());
    let totals = merged.totals(&[4, 101, 0]);
    assert_eq!(totals.sent, 105);
    assert_eq!(totals.delivered, 101);
    assert_eq!(totals.lost, 4, "3 of sender 0 and seq 100 of sender 1");
    assert_eq!(totals.duplicated, 1);
    // 98..70 after 99, and 5 after 99: counted where the pair lives.
    assert_eq!(totals.out_of_order, 30);
    assert_eq!(merged.deliveries(), 102);

    assert_eq!(
        Ledger::from_wire(&wire_a, 1).err(),
        Some(WireError::OutOfRange)
    );
    let mut cut = wire_a.clone();
    cut.seen = base64::engine::general_purpose::STANDARD.encode([1u8, 0, 0, 0, 2, 0]);
    assert_eq!(Ledger::from_wire(&cut, 3).err(), Some(WireError::Truncated));
    cut.seen = "!!".into();
    assert_eq!(Ledger::from_wire(&cut, 3).err(), Some(WireError::Base64));
    let empty = Ledger::new(3, 10).to_wire();
    assert!(empty.seen.is_empty());
}

#[test]
fn receipts_are_counted_without_order() {
    let mut receipts = Ledger::new(2, 100);
    assert_eq!(receipts.record_unordered(1, 5), Delivery::InOrder);
    assert_eq!(
        receipts.record_unordered(1, 2),
        Delivery::InOrder,
        "no order check"
    );
    assert_eq!(receipts.record_unordered(1, 5), Delivery::Duplicate);
    assert_eq!(receipts.record_unordered(9, 0), Delivery::Unexpected);
    let totals = receipts.totals(&[0, 7]);
    assert_eq!(
        (
            totals.delivered,
            totals.lost,
            totals.duplicated,
            totals.out_of_order
        ),
        (2, 5, 1, 0)
    );
}

#[test]
fn acked_losses_are_told_apart_from_unacked_ones() {
    let mut ledger = Ledger::new(3, 1000);
    // Sender 0 sent 100, 70 acked; lost: 5 (acked) and 80 (not acked).
    for seq in (0..100).filter(|&q| q != 5 && q != 80) {
        ledger.record(0, 1, seq);
    }
    // Sender 1 sent 3, none acked, all delivered; sender 2 sent 2, both acked, none came.
    for seq in 0..3 {
        ledger.record(1, 2, seq);
    }
    let t = ledger.ack_totals(&[100, 3, 2], &[70, 0, 2], &[]);
    assert_eq!(
        t,
        AckTotals {
            acknowledged: 72,
            acked_delivered: 69,
            acked_lost: 3,
            unacked: 33,
            unacked_delivered: 32,
            unacked_lost: 1,
        }
    );
    // An ack count beyond what was sent is clamped, and a missing row acks nothing.
    let t = ledger.ack_totals(&[100, 3], &[500], &[]);
    assert_eq!((t.acknowledged, t.unacked), (100, 3));
}

#[test]
fn messages_unacked_when_a_stream_dropped_are_not_counted_as_acked() {
    let mut ledger = Ledger::new(2, 1000);
    // Sender 0: stream 1 sent 0..10, acked 0..7, then dropped; stream 2 sent 10..20, all
    // acked (so the prefix says 20). 8 never arrived: no ack covered it, so not an acked loss;
    // 15 never arrived either: acked, so it is one.
    for seq in (0..20).filter(|&q| q != 8 && q != 15) {
        ledger.record(0, 1, seq);
    }
    let t = ledger.ack_totals(&[20], &[20], &[(0, 7, 10)]);
    assert_eq!(
        t,
        AckTotals {
            acknowledged: 17,
            acked_delivered: 16,
            acked_lost: 1,
            unacked: 3,
            unacked_delivered: 2,
            unacked_lost: 1,
        }
    );
    // A range beyond the acknowledged prefix (the new stream acked nothing) changes nothing.
    let t2 = ledger.ack_totals(&[20], &[7], &[(0, 7, 10)]);
    assert_eq!((t2.acknowledged, t2.unacked), (7, 13));
}

#[test]
fn split_counts_straddle_word_boundaries() {
    let bits = [u64::MAX, 0b1011];
    assert_eq!(count_split(&bits, 64), (64, 3));
    assert_eq!(count_split(&bits, 66), (66, 1));
    assert_eq!(count_split(&bits, 200), (67, 0));
    assert_eq!(count_split(&[], 10), (0, 0));
}

#[test]
fn a_million_senders_cost_only_those_that_delivered() {
    // One thread of a million-client run: 3 senders wrote to its recipients.
    let mut a = Ledger::new(1_000_000, 1000);
    let mut b = Ledger::new(1_000_000, 1000);
    a.record(999_999, 4, 0);
    a.record(17, 4, 0);
    a.record(17, 4, 1);
    b.record(17, 8, 1); // the same message reached another thread: a duplicate
    b.record(500_000, 8, 70);
    assert!(!a.seen.is_dense() && !b.seen.is_dense());
    assert_eq!(
        a.seen.iter().count(),
        2,
        "rows only for senders that delivered"
    );
    // Across processes, then threads: the merge semantics of the dense ledger.
    let wire = b.to_wire();
    let mut merged = Ledger::from_wire(&a.to_wire(), 1_000_000).unwrap();
    merged.merge(Ledger::from_wire(&wire, 1_000_000).unwrap());
    assert!(!merged.seen.is_dense());
    let mut sent = vec![0u32; 1_000_000];
    (sent[17], sent[500_000], sent[999_999]) = (3, 71, 1);
    let totals = merged.totals(&sent);
    assert_eq!(
        (
            totals.sent,
            totals.delivered,
            totals.lost,
            totals.duplicated
        ),
        (75, 4, 71, 1)
    );
    assert_eq!(merged.deliveries(), 5);
    // A sender index beyond the run is still refused.
    assert_eq!(a.record(1_000_000, 0, 0), Delivery::Unexpected);
}

#[test]
fn rows_turn_dense_when_most_senders_delivered_and_keep_their_bits() {
    let mut ledger = Ledger::new(4, 1000);
    ledger.record(3, 0, 100);
    ledger.record(1, 0, 2);
    assert!(!ledger.seen.is_dense(), "2 of 4 senders: still sparse");
    ledger.record(0, 0, 7);
    assert!(ledger.seen.is_dense(), "3 of 4 senders: dense is smaller");
    assert_eq!(ledger.record(3, 0, 100), Delivery::Duplicate);
    assert_eq!(ledger.record(1, 0, 2), Delivery::Duplicate);
    // A dense ledger merges with a sparse one and crosses processes the same way.
    let mut sparse = Ledger::new(4, 1000);
    sparse.record(3, 1, 101);
    sparse.record(1, 1, 2);
    ledger.merge(sparse);
    let back = Ledger::from_wire(&ledger.to_wire(), 4).unwrap();
    let totals = back.totals(&[8, 3, 0, 102]);
    assert_eq!(
        (totals.delivered, totals.duplicated, totals.lost),
        (4, 3, 109)
    );
}
