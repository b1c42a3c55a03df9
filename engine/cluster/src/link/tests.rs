use proptest::prelude::*;

use super::*;

const A: NodeId = NodeId(1);
const B: NodeId = NodeId(2);

fn config() -> LinkConfig {
    LinkConfig {
        retry_interval_ms: 100,
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
        let received = to.receive(&frame, now_ms).unwrap();
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
    assert!(b.receive(&second, 1).unwrap().delivered.is_empty(), "held");
    let mut again = Vec::new();
    a.poll(99, &mut again);
    assert!(again.is_empty(), "not before the retry interval");
    a.poll(100, &mut again);
    assert_eq!(again.len(), 2);
    let got = pass(again, &mut b, 101);
    assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()]);
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
    let got = b.receive(&next, 5_002).unwrap();
    assert_eq!(got.delivered.len(), 1);
    assert_eq!(got.delivered[0].payload, b"later");
}

#[test]
fn a_restarted_peer_is_caught_up_and_old_acks_do_not_clear_new_frames() {
    let (mut a, mut b) = (Links::new(A, 1, config()), Links::new(B, 2, config()));
    for n in 0..3u8 {
        let frame = a.send(B, vec![n], 0, 0).unwrap();
        b.receive(&frame, 0).unwrap();
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
    let got = b.receive(&frame, 1).unwrap();
    assert_eq!(
        got.delivered[0].payload, b"after",
        "a new epoch starts at its base"
    );
    // An ack B would send for A's old incarnation does not clear A2's pending frame.
    let stale = {
        let mut links = Links::new(B, 2, config());
        let frame_from_old_a = a.send(B, b"x".to_vec(), 0, 0).unwrap();
        links.receive(&frame_from_old_a, 0).unwrap();
        let mut acks = Vec::new();
        links.poll(100, &mut acks);
        acks
    };
    for (_, ack) in stale.iter().chain(old_ack.iter()) {
        a2.receive(ack, 2).unwrap();
    }
    assert!(a2.stats().pending_bytes > 0, "old-epoch acks ignored");
    // A late frame of A's first incarnation reaches B after A2's: ignored, nothing re-delivered.
    let late = a.send(B, b"late".to_vec(), 0, 0).unwrap();
    assert!(b.receive(&late, 3).unwrap().delivered.is_empty());
    assert_eq!(b.stats().stale, 1);
    let again = a2.send(B, b"next".to_vec(), 4, 0).unwrap();
    let got = b.receive(&again, 5).unwrap();
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
    assert_eq!(b.receive(b"short", 0).unwrap_err(), FrameError::TooShort(5));
    let mut bad = vec![0u8; HEADER_LEN];
    bad[..4].copy_from_slice(b"XXXX");
    assert_eq!(b.receive(&bad, 0).unwrap_err(), FrameError::BadMagic);
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
    /// arrives exactly once and in order, within the retry timeout.
    #[test]
    fn a_lossy_bus_delivers_exactly_once_in_order(
        count in 1usize..60,
        fates in proptest::collection::vec(fate(), 400),
    ) {
        let (mut a, mut b) = (Links::new(A, 7, config()), Links::new(B, 9, config()));
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
        for now in 0..4_000u64 {
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
                let received = links.receive(&frame, now).unwrap();
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
