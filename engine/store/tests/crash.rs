//! Crash safety with `Log` durability: a child process (this test binary, re-run in writer
//! mode) puts, acks and commits messages, printing each committed id; the parent SIGKILLs it
//! at a random moment, reopens the log and checks every id printed as committed is there
//! (and every ack printed as committed is applied). Three rounds on the same log, so replay
//! after a kill is itself killed into.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::TempDir;
use rookery_store::{Durability, MsgId, Store, StoreConfig, SyncWriter};

/// Env var that turns `crash_child_writer` into the child.
const CHILD_DIR: &str = "ROOKERY_STORE_CRASH_DIR";
/// Puts per child, so a child the parent fails to kill still ends.
const CHILD_PUTS: u64 = 20_000;
/// Longest wait for a child's line.
const LINE_TIMEOUT: Duration = Duration::from_secs(30);

/// The child's work; a no-op when run as a normal test.
#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let cfg = StoreConfig::new(dir, 0).with_durability(Durability::Log);
    let mut store = Store::open(cfg).expect("child open");
    let mut out = std::io::stdout().lock();
    // Leading newline: libtest has printed "test crash_child_writer ... " without one.
    writeln!(out, "\nREADY").unwrap();
    let mut puts = Vec::new();
    let mut acks = Vec::new();
    for n in 0..CHILD_PUTS {
        let owner = format!("user{}@x", n % 7);
        let stanza = format!(
            "<message id='{n}'><body>{}</body></message>",
            "x".repeat(200)
        );
        let id = store
            .put(&owner, "s@x/r", n, stanza.as_bytes())
            .expect("put");
        puts.push((owner, id));
        if n % 3 == 0 {
            // Only ids of the batch being built (`puts` is drained at each commit).
            let (owner, id) = &puts[puts.len() / 2];
            let id = *id;
            if store.ack(owner, id).expect("ack") {
                acks.push(id);
            }
        }
        if n % 8 == 7 {
            store.commit(&mut SyncWriter).expect("commit");
            // Printed only once committed: the parent's ground truth. Acks first: an ack
            // always names a put of the same batch, so a parent that saw a PUT line has seen
            // every ACK of it, even when the kill lands between two lines.
            for id in acks.drain(..) {
                writeln!(out, "ACK {}", id.0).unwrap();
            }
            for (_, id) in puts.drain(..) {
                writeln!(out, "PUT {}", id.0).unwrap();
            }
            out.flush().unwrap();
        }
    }
}

/// A cheap random number from the clock: the kill moment differs every run.
fn random_below(bound: u64) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    u64::from(nanos.wrapping_mul(2_654_435_761)) % bound.max(1)
}

/// Runs one child, kills it after a random number of lines; returns what it printed.
fn run_child_and_kill(dir: &TempDir) -> (Vec<u64>, Vec<u64>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    // Kill after a random number of committed-id lines (0: right after start-up).
    let kill_after = random_below(3_000) as usize;
    let mut seen = Vec::new();
    let mut ids_seen = 0;
    while !seen.iter().any(|l| l == "READY") || ids_seen < kill_after {
        match lines.recv_timeout(LINE_TIMEOUT) {
            Ok(line) => {
                ids_seen += usize::from(line.starts_with("PUT "));
                seen.push(line);
            }
            Err(_) => break, // the child ended (or hung: it is killed below either way)
        }
    }
    child.kill().expect("SIGKILL the child");
    let status = child.wait().unwrap();
    reader.join().unwrap();
    seen.extend(lines.try_iter());
    assert!(
        seen.iter().any(|l| l == "READY"),
        "child never started: {status:?}"
    );
    let ids = |tag: &str| -> Vec<u64> {
        seen.iter()
            .filter_map(|l| l.strip_prefix(tag)?.parse().ok())
            .collect()
    };
    (ids("PUT "), ids("ACK "))
}

#[test]
fn sigkill_loses_no_committed_message() {
    let dir = TempDir::new("crash");
    let mut committed = std::collections::BTreeSet::new();
    let mut acked = std::collections::BTreeSet::new();
    for round in 0..3 {
        let (puts, acks) = run_child_and_kill(&dir);
        committed.extend(puts);
        acked.extend(acks);
        let cfg = StoreConfig::new(dir.path(), 0).with_durability(Durability::Log);
        let store = Store::open(cfg).expect("reopen after SIGKILL");
        let report = store.replay_report();
        eprintln!(
            "round {round}: {} committed ids so far; {report}",
            committed.len()
        );
        for &id in &committed {
            let present = store
                .owners()
                .any(|owner| store.get(owner, MsgId(id)).is_some());
            assert_eq!(present, !acked.contains(&id), "id {id} after round {round}");
        }
        assert!(
            !committed.is_empty() || round > 0,
            "the child committed something"
        );
    }
}
