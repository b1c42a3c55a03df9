//! The simulated driver against the contract the loop relies on (`rookery_io`'s points 2,
//! 4, 5, 8 and 9).

use std::cell::Cell;
use std::rc::Rc;

use rookery_io::{Driver, Event, FileSync, Handler, Linger, Ops, SendError};

use super::*;

/// Records what the driver delivers, as the shard would see it.
#[derive(Default)]
struct Seen(Vec<String>);

impl Handler<SimDriver> for Seen {
    fn on_event(&mut self, io: &mut SimOps<'_>, event: Event<'_>) {
        let line = match event {
            Event::Accepted { conn, .. } => format!("accepted {}", conn.index),
            Event::Received { conn, data } => {
                // Answer inside the handler, as the router does.
                let _ = io.send(conn, data);
                format!("received {}", data.len())
            }
            Event::Drained { conn } => format!("drained {}", conn.index),
            Event::Closed { conn, .. } => format!("closed {}", conn.index),
            Event::Detached { leftover, .. } => format!("detached {}", leftover.len()),
            Event::FileWritten { result, .. } => format!("written {result:?}"),
            Event::FileRead { result, buffer, .. } => format!("read {result:?} {buffer:?}"),
            other => format!("{other:?}"),
        };
        self.0.push(line);
    }
}

fn driver(cap: usize) -> SimDriver {
    SimDriver::new(SimClock::default(), 1, Rc::new(Cell::new(0)), cap)
}

#[test]
fn the_cap_refuses_like_the_real_driver_and_drains_in_pieces() {
    let mut d = driver(100);
    let conn = d.accept().expect("listening");
    let mut seen = Seen::default();
    d.turn(None, &mut seen).expect("turn");
    let mut ops = d.ops();
    // An empty queue takes one write of any size, then nothing more past the cap.
    assert_eq!(ops.send(conn, &[1; 150]), Ok(()));
    assert_eq!(ops.send(conn, &[2; 1]), Err(SendError::QueueFull));
    assert_eq!(d.queued(conn), 150);
    assert_eq!(d.write_out(conn, 100), (vec![1; 100], false));
    assert_eq!(d.queued(conn), 50);
    assert_eq!(d.write_out(conn, 100), (vec![1; 50], false));
    d.turn(None, &mut seen).expect("turn");
    assert_eq!(seen.0, vec!["accepted 1", "drained 1"]);
    let overflow = d
        .notes
        .iter()
        .any(|n| matches!(n, Note::Overflow { queued: 150, bytes, .. } if bytes == &[2]));
    assert!(
        overflow,
        "the refused send is noted with what the queue held"
    );
}

#[test]
fn close_and_detach_wait_for_the_queue() {
    let mut d = driver(1000);
    let (a, b) = (d.accept().expect("a"), d.accept().expect("b"));
    let mut seen = Seen::default();
    d.turn(None, &mut seen).expect("turn");
    let mut ops = d.ops();
    ops.send(a, b"bye").expect("queued");
    ops.close(a, Linger::Flush);
    ops.send(b, b"moving").expect("queued");
    ops.detach(b);
    // Bytes that arrive while detaching travel with the socket.
    assert_eq!(d.receive(b, b"late".to_vec()), Ok(()));
    d.turn(None, &mut seen).expect("turn");
    assert_eq!(seen.0.len(), 2, "nothing ends before its queue is out");
    assert_eq!(d.write_out(a, 10), (b"bye".to_vec(), true));
    assert_eq!(d.write_out(b, 10), (b"moving".to_vec(), false));
    d.turn(None, &mut seen).expect("turn");
    assert_eq!(&seen.0[2..], ["closed 1", "detached 4"]);
    assert_eq!(d.open_conns(), 0);
    // A send to a conn the router closed is noted for checker 3.
    let late = d.ops().send(a, b"x");
    assert_eq!(late, Err(SendError::Stale));
    assert!(d
        .notes
        .iter()
        .any(|n| matches!(n, Note::Late { state: None, .. })));
}

#[test]
fn log_writes_complete_in_order_after_their_delay() {
    let clock = SimClock::default();
    let mut d = SimDriver::new(clock.clone(), 7, Rc::new(Cell::new(0)), 100);
    let path = std::env::temp_dir().join(format!("rookery-sim-driver-{}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .expect("temp file");
    let id = d.register_file(file).expect("registered");
    let mut ops = d.ops();
    ops.write_file(id, 0, b"hello ".to_vec(), FileSync::Data);
    ops.write_file(id, 6, b"world".to_vec(), FileSync::Data);
    assert!(
        d.unregister_file(id).is_none(),
        "writes in flight keep the file"
    );
    let mut seen = Seen::default();
    clock.0.set(100); // past every seeded delay
    d.turn(None, &mut seen).expect("turn");
    assert_eq!(seen.0, vec!["written Ok(())", "written Ok(())"]);
    d.ops().read_file(id, 0, 11, Vec::new());
    clock.0.set(200);
    d.turn(None, &mut seen).expect("turn");
    let expected = format!("read Ok(()) {:?}", b"hello world".to_vec());
    assert_eq!(seen.0[2], expected);
    let _ = std::fs::remove_file(&path);
}

/// Collects what the shard reads, per read.
#[derive(Default)]
struct Reads(Vec<Vec<u8>>);

impl Handler<SimDriver> for Reads {
    fn on_event(&mut self, _io: &mut SimOps<'_>, event: Event<'_>) {
        if let Event::Received { data, .. } = event {
            self.0.push(data.to_vec());
        }
    }
}

#[test]
fn input_arrives_whole_and_in_order_but_sometimes_in_pieces() {
    let mut split = 0;
    for seed in 0..50 {
        let mut d = SimDriver::new(SimClock::default(), seed, Rc::new(Cell::new(0)), 100);
        let conn = d.accept().expect("listening");
        let input = b"<message to='a@b'><body>hello</body></message>".to_vec();
        d.receive(conn, input.clone()).expect("open");
        let mut reads = Reads::default();
        d.turn(None, &mut reads).expect("turn");
        assert!(
            reads.0.iter().all(|r| !r.is_empty()),
            "a read is never empty"
        );
        assert_eq!(reads.0.concat(), input);
        split += usize::from(reads.0.len() > 1);
    }
    assert!((5..45).contains(&split), "{split} of 50 inputs were split");
}
