use proptest::prelude::*;

use super::*;

const A: NodeId = NodeId(1);
const B: NodeId = NodeId(2);

fn config() -> LinkConfig {
    LinkConfig {
        min_retry_ms: 100,
        max_retry_ms: 800,
        retry_timeout_ms: 5_000,
        max_pending_bytes: 1 << 20,
        max_held: 64,
        ack_delay_ms: 10,
    }
}

/// Delivers every frame `from` publishes to `to` (a perfect bus), returning the payloads.
fn pass(frames: Vec<(NodeId, Vec<u8>)>, to: &mut Links, now_ms: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (_, frame) in frames {
        let received = to.receive(&frame, now_ms, now_ms * 1000).unwrap();
        out.extend(received.delivered.into_iter().map(|d| d.payload));
    }
    out
}

#[test]
fn payloads_arrive_in_order_once_and_acks_clear_the_sender() {
    let (mut a, mut b) = (Links::new(A, 11, config()), Links::new(B, 22, config()));
    let frames: Vec<_> = (0..5u8)
        .map(|n| (B, a.send(B, vec![n], 0, 1_000).unwrap()))
        .collect();
    let got = pass(frames.clone(), &mut b, 1);
    assert_eq!(got, vec![vec![0], vec![1], vec![2], vec![3], vec![4]]);
    assert!(pass(frames, &mut b, 2).is_empty(), "duplicates dropped");
    assert_eq!(b.stats().duplicates, 5);
    assert!(a.stats().pending_bytes > 0);
    let mut acks = Vec::new();
    b.poll(20, &mut acks);
    assert_eq!(acks.len(), 1, "one pure ack after the delay");
    pass(acks, &mut a, 21);
    assert_eq!(
        a.stats().pending_bytes,
        0,
        "the ack cleared every pending frame"
    );
    let mut nothing = Vec::new();
    a.poll(1_000, &mut nothing);
    assert!(nothing.is_empty(), "nothing left to send again");
}

#[test]
fn a_lost_frame_is_sent_again_and_the_gap_filled() {
    let (mut a, mut b) = (Links::new(A, 1, config()), Links::new(B, 2, config()));
    let first = a.send(B, b"one".to_vec(), 0, 0).unwrap();
    let second = a.send(B, b"two".to_vec(), 0, 0).unwrap();
    drop(first); // lost on the bus
    assert!(
        b.receive(&second, 1, 1_000).unwrap().delivered.is_empty(),
        "held"
    );
    let mut again = Vec::new();
    a.poll(99, &mut again);
    assert!(again.is_empty(), "not before the retry interval");
    a.poll(100, &mut again);
    assert_eq!(again.len(), 2);
    let got = pass(again, &mut b, 101);
    assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()]);
}

/// Sends one frame from `a` at `sent_ms` and has it acked by `b` `rtt_ms` later (a pure ack).
fn round_trip(a: &mut Links, b: &mut Links, sent_ms: u64, rtt_ms: u64) {
    let frame = a.send(B, vec![1], sent_ms, sent_ms * 1000).unwrap();
    b.receive(&frame, sent_ms, sent_ms * 1000).unwrap();
    let mut acks = Vec::new();
    b.poll(sent_ms + 10, &mut acks);
    assert_eq!(acks.len(), 1);
    let at = sent_ms + rtt_ms;
    pass(acks, a, at);
    assert_eq!(a.stats().pending_bytes, 0);
}

#[test]
fn the_retry_timeout_follows_the_measured_round_trip() {
    let (mut a, mut b) = (Links::new(A, 1, config()), Links::new(B, 2, config()));
    assert_eq!(a.stats().retry_ms, 0, "nothing measured yet");
    for n in 0..20 {
        round_trip(&mut a, &mut b, n * 1_000, 300);
    }
    let timeout = a.stats().retry_ms;
    assert!(
        (300..=400).contains(&timeout),
        "a steady 300 ms round trip: timeout {timeout} ms (srtt + 4 rttvar)"
    );
    // A frame is not sent again at the configured minimum (100 ms) but after the timeout.
    let lost = a.send(B, vec![2], 30_000, 30_000_000).unwrap();
    drop(lost);
    let mut again = Vec::new();
    a.poll(30_000 + timeout - 1, &mut again);
    assert!(again.is_empty(), "not before the measured timeout");
    a.poll(30_000 + timeout, &mut again);
    assert_eq!(again.len(), 1);
    // Fast round trips bring it down to the floor.
    let (mut c, mut d) = (Links::new(A, 3, config()), Links::new(B, 4, config()));
    for n in 0..20 {
        round_trip(&mut c, &mut d, n * 1_000, 1);
    }
    assert_eq!(c.stats().retry_ms, 100, "never below min_retry_ms");
}

#[test]
fn a_frame_sent_again_waits_twice_as_long_each_time_up_to_the_cap() {
    let (mut a, _) = (Links::new(A, 1, config()), Links::new(B, 2, config()));
    let lost = a.send(B, vec![0], 0, 0).unwrap();
    drop(lost);
    let mut sends = Vec::new();
    for now in 0..5_000 {
        let mut out = Vec::new();
        a.poll(now, &mut out);
        sends.extend(out.iter().map(|_| now));
    }
    // min 100 ms: sent again at 100, then +200, +400, +800 (the cap), +800 ...
    assert_eq!(sends[..5], [100, 300, 700, 1_500, 2_300]);
    assert_eq!(a.stats().retransmits as usize, sends.len());
}

#[test]
fn new_frames_keep_the_backed_off_timeout_until_a_clean_ack() {
    let (mut a, mut b) = (Links::new(A, 1, config()), Links::new(B, 2, config()));
    let late = a.send(B, vec![0], 0, 0).unwrap();
    let mut again = Vec::new();
    a.poll(100, &mut again); // 100 ms: sent again, the timeout doubles for new frames too
    assert_eq!(again.len(), 1);
    let next = a.send(B, vec![1], 150, 150_000).unwrap();
    let mut out = Vec::new();
    a.poll(349, &mut out);
    let seqs: Vec<u64> = out.iter().map(|(_, f)| decode(f).unwrap().0.seq).collect();
    assert_eq!(
        seqs,
        [1],
        "the late one again (at 300); the new one waits 200 ms, not 100"
    );
    out.clear();
    a.poll(350, &mut out);
    let seqs: Vec<u64> = out.iter().map(|(_, f)| decode(f).unwrap().0.seq).collect();
    assert_eq!(seqs, [2], "the new frame at 150 + 200");
    // A clean round trip (a frame sent once, acked) ends the backoff.
    b.receive(&late, 360, 360_000).unwrap();
    b.receive(&next, 360, 360_000).unwrap();
    let clean = a.send(B, vec![2], 360, 360_000).unwrap();
    b.receive(&clean, 361, 361_000).unwrap();
    let mut acks = Vec::new();
    b.poll(371, &mut acks);
    pass(acks, &mut a, 371);
    let fresh = a.send(B, vec![3], 400, 400_000).unwrap();
    drop(fresh);
    let mut due = Vec::new();
    a.poll(500, &mut due);
    assert_eq!(due.len(), 1, "back to the measured 100 ms floor");
}

#[test]
fn a_frame_sent_again_gives_no_round_trip_sample() {
    let (mut a, mut b) = (Links::new(A, 1, config()), Links::new(B, 2, config()));
    let frame = a.send(B, vec![0], 0, 0).unwrap();
    let mut again = Vec::new();
    a.poll(100, &mut again); // the first copy is only late, not lost
    b.receive(&frame, 1_900, 1_900_000).unwrap();
    let mut acks = Vec::new();
    b.poll(2_000, &mut acks);
    pass(acks, &mut a, 2_000);
    assert_eq!(a.stats().pending_bytes, 0);
    assert_eq!(
        a.stats().retry_ms,
        0,
        "the ack may answer either copy: no sample (Karn)"
    );
}

#[test]
fn the_budget_refuses_and_given_up_frames_are_skipped() {
    let small = LinkConfig {
        max_pending_bytes: 10,
        ..config()
    };
    let (mut a, mut b) = (Links::new(A, 1, small), Links::new(B, 2, config()));
    let lost = a.send(B, vec![0; 8], 0, 0).unwrap();
    drop(lost);
    assert!(matches!(
        a.send(B, vec![0; 8], 0, 0),
        Err(SendRefused::Budget { pending_bytes: 8 })
    ));
    assert_eq!(a.send(A, vec![1], 0, 0), Err(SendRefused::ToSelf));
    let mut out = Vec::new();
    a.poll(5_000, &mut out);
    assert!(
        out.is_empty(),
        "given up after the retry timeout, not sent again"
    );
    assert_eq!(a.stats().given_up, 1);
    // The next frame tells the receiver to stop waiting for the given-up one.
    let next = a.send(B, b"later".to_vec(), 5_001, 0).unwrap();
    let got = b.receive(&next, 5_002, 5_002_000).unwrap();
    assert_eq!(got.delivered.len(), 1);
    assert_eq!(got.delivered[0].payload, b"later");
}

#[test]
fn a_restarted_peer_is_caught_up_and_old_acks_do_not_clear_new_frames() {
    let (mut a, mut b) = (Links::new(A, 1, config()), Links::new(B, 2, config()));
    for n in 0..3u8 {
        let frame = a.send(B, vec![n], 0, 0).unwrap();
        b.receive(&frame, 0, 0).unwrap();
    }
    // B restarts (new epoch, nothing remembered) and A restarts too.
    let mut b = Links::new(B, 3, config());
    let old_ack = {
        let mut acks = Vec::new();
        b.poll(0, &mut acks);
        acks
    };
    let mut a2 = Links::new(A, 4, config());
    let frame = a2.send(B, b"after".to_vec(), 0, 0).unwrap();
    let got = b.receive(&frame, 1, 1_000).unwrap();
    assert_eq!(
        got.delivered[0].payload, b"after",
        "a new epoch starts at its base"
    );
    // An ack B would send for A's old incarnation does not clear A2's pending frame.
    let stale = {
        let mut links = Links::new(B, 2, config());
        let frame_from_old_a = a.send(B, b"x".to_vec(), 0, 0).unwrap();
        links.receive(&frame_from_old_a, 0, 0).unwrap();
        let mut acks = Vec::new();
        links.poll(100, &mut acks);
        acks
    };
    for (_, ack) in stale.iter().chain(old_ack.iter()) {
        a2.receive(ack, 2, 2_000).unwrap();
    }
    assert!(a2.stats().pending_bytes > 0, "old-epoch acks ignored");
    // A late frame of A's first incarnation reaches B after A2's: ignored, nothing re-delivered.
    let late = a.send(B, b"late".to_vec(), 0, 0).unwrap();
    assert!(b.receive(&late, 3, 3_000).unwrap().delivered.is_empty());
    assert_eq!(b.stats().stale, 1);
    let again = a2.send(B, b"next".to_vec(), 4, 0).unwrap();
    let got = b.receive(&again, 5, 5_000).unwrap();
    assert_eq!(
        got.delivered.len(),
        1,
        "A2's stream goes on after the stale frame"
    );
    assert_eq!(got.delivered[0].payload, b"next");
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let mut b = Links::new(B, 2, config());
    assert_eq!(
        b.receive(b"short", 0, 0).unwrap_err(),
        FrameError::TooShort(5)
    );
    let mut bad = vec![0u8; HEADER_LEN];
    bad[..4].copy_from_slice(b"XXXX");
    assert_eq!(b.receive(&bad, 0, 0).unwrap_err(), FrameError::BadMagic);
}

/// A lossy bus: each frame may be dropped, duplicated or delayed (reordered).
#[derive(Debug, Clone)]
struct Fate {
    drop: bool,
    duplicate: bool,
    delay_ms: u64,
}

fn fate() -> impl Strategy<Value = Fate> {
    (0u8..100, 0u8..100, 0u64..400).prop_map(|(d, u, delay_ms)| Fate {
        drop: d < 25,
        duplicate: u < 15,
        delay_ms,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Whatever the bus drops, duplicates or reorders (both ways, acks too), every payload
    /// arrives exactly once and in order, and nothing is given up.
    #[test]
    fn a_lossy_bus_delivers_exactly_once_in_order(
        count in 1usize..60,
        fates in proptest::collection::vec(fate(), 400),
    ) {
        // Round trips of up to 800 ms here: timeouts back off to the 800 ms cap, so a frame
        // gets some 25 tries within the 20 s before it would be given up.
        let patient = LinkConfig { retry_timeout_ms: 20_000, ..config() };
        let (mut a, mut b) = (Links::new(A, 7, patient.clone()), Links::new(B, 9, patient));
        // In flight: (arrival time, seq of the bus, to, frame).
        let mut bus: BTreeMap<(u64, u64), (NodeId, Vec<u8>)> = BTreeMap::new();
        let mut fates = fates.into_iter().cycle();
        let mut next_id = 0u64;
        let mut put = |bus: &mut BTreeMap<(u64, u64), (NodeId, Vec<u8>)>, now: u64, to: NodeId, frame: Vec<u8>| {
            let fate = fates.next().expect("cycled");
            if fate.drop { return; }
            let copies = if fate.duplicate { 2 } else { 1 };
            for _ in 0..copies {
                next_id += 1;
                bus.insert((now + fate.delay_ms, next_id), (to, frame.clone()));
            }
        };
        let mut got = Vec::new();
        let mut sent = 0usize;
        for now in 0..30_000u64 {
            if sent == count && got.len() == count && a.stats().pending_bytes == 0 {
                break;
            }
            if sent < count && now % 7 == 0 {
                let frame = a.send(B, (sent as u32).to_le_bytes().to_vec(), now, now).unwrap();
                put(&mut bus, now, B, frame);
                sent += 1;
            }
            let mut out = Vec::new();
            a.poll(now, &mut out);
            b.poll(now, &mut out);
            for (to, frame) in out { put(&mut bus, now, to, frame); }
            while let Some(entry) = bus.first_entry() {
                if entry.key().0 > now { break; }
                let (to, frame) = entry.remove();
                let links = if to == B { &mut b } else { &mut a };
                let received = links.receive(&frame, now, now * 1000).unwrap();
                if to == B {
                    got.extend(received.delivered.into_iter().map(|d| d.payload));
                }
            }
        }
        let expected: Vec<Vec<u8>> = (0..count as u32).map(|n| n.to_le_bytes().to_vec()).collect();
        prop_assert_eq!(got, expected);
        prop_assert_eq!(a.stats().given_up, 0);
    }
}
