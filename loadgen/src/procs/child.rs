//! A worker process (`rookery-load worker --index I --of P`): reads its [`Spec`] from stdin,
//! runs its share of the clients with `run::execute_part` under a [`ChildControl`] that asks
//! the parent for the ramp and steady starts, and reports on stdout (see `protocol`).
//!
//! It dies with its parent: SIGKILL on the parent's death (asked of the kernel first thing),
//! and a closed stdin (the parent exited) aborts the run at once; the run is bounded anyway.
//!
//! What it does not do: write files or print progress (the parent owns both).

use std::io::{BufRead, BufReader, Write};
use std::sync::mpsc::{self, Receiver, TryRecvError};

use anyhow::{bail, Context};

use super::protocol::{encode_histograms, encode_report, from_line, to_line};
use super::protocol::{ChildMsg, ParentMsg, Spec};
use crate::live::{Shared, Snapshot};
use crate::metrics::Histograms;
use crate::run::{self, Control, Part};
use crate::sys;

/// Runs worker process `index` of `of`; returns the exit status.
pub fn main(index: u32, of: u32) -> i32 {
    match serve(index, of) {
        Ok(()) => 0,
        Err(err) => {
            say(&ChildMsg::Failed {
                error: format!("{err:#}"),
            });
            1
        }
    }
}

fn serve(index: u32, of: u32) -> anyhow::Result<()> {
    sys::die_with_parent().context("asking to die with the parent")?;
    if of == 0 || index >= of {
        bail!("--index {index} --of {of}: the index must be below the count");
    }
    let mut input = BufReader::new(std::io::stdin());
    let mut first = String::new();
    input
        .read_line(&mut first)
        .context("reading the spec from stdin")?;
    let spec: Spec = from_line(first.trim_end()).context("reading the spec")?;
    if std::os::unix::process::parent_id() != spec.parent_pid {
        bail!("the parent process is gone");
    }
    let mut cfg = spec.config;
    cfg.auth = spec.auth.parse().context("the spec's auth")?;
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("rookery-load-parent".into())
        .spawn(move || {
            for line in input.lines() {
                let Ok(line) = line else { break };
                match from_line::<ParentMsg>(&line) {
                    Ok(msg) => {
                        if tx.send(msg).is_err() {
                            return;
                        }
                    }
                    Err(err) => tracing::error!("from the parent: {err}"),
                }
            }
            // stdin closed: the parent is gone (or done with us).
            let _ = tx.send(ParentMsg::Abort);
        })
        .context("starting the stdin reader")?;
    let nofile = rookery_io::raise_nofile_limit().context("raising RLIMIT_NOFILE")?;
    let part = Part { index, of };
    let mut control = ChildControl::new(part, cfg.clients, run::ramp_bound_ns(&cfg), rx);
    let (report, meta) = run::execute_part(&cfg, part, nofile, &mut control)?;
    say(&ChildMsg::Done {
        report: Box::new(encode_report(report)),
        meta,
    });
    Ok(())
}

/// Writes one message line to stdout. A parent that stopped reading is gone; the process
/// then dies with it anyway, so a failed write is not an error of its own.
fn say(msg: &ChildMsg) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", to_line(msg)).and_then(|()| out.flush());
}

/// The parent's side of the phases, seen from a worker process.
pub struct ChildControl {
    part: Part,
    clients: u32,
    ramp_bound_ns: u64,
    rx: Receiver<ParentMsg>,
    go_ns: u64,
    settled_sent: bool,
    steady: Option<(u64, Vec<u32>)>,
    aborted: bool,
}

impl ChildControl {
    pub fn new(part: Part, clients: u32, ramp_bound_ns: u64, rx: Receiver<ParentMsg>) -> Self {
        ChildControl {
            part,
            clients,
            ramp_bound_ns,
            rx,
            go_ns: 0,
            settled_sent: false,
            steady: None,
            aborted: false,
        }
    }

    /// Takes in whatever the parent said since the last look.
    fn hear(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(ParentMsg::Steady { at_ns, not_online }) => {
                    self.steady = Some((at_ns, not_online))
                }
                Ok(ParentMsg::Abort) | Err(TryRecvError::Disconnected) => {
                    self.aborted = true;
                    return;
                }
                Ok(ParentMsg::Go { .. }) => {}
                Err(TryRecvError::Empty) => return,
            }
        }
    }

    /// This process' clients that are not online now.
    fn not_online(&self, shared: &Shared) -> Vec<u32> {
        (self.part.index..self.clients)
            .step_by(self.part.of as usize)
            .filter(|&c| !shared.is_online(c))
            .collect()
    }
}

impl Control for ChildControl {
    fn go(&mut self) -> Option<u64> {
        say(&ChildMsg::Ready);
        loop {
            match self.rx.recv() {
                Ok(ParentMsg::Go { at_ns }) => {
                    self.go_ns = at_ns;
                    return Some(at_ns);
                }
                Ok(ParentMsg::Steady { .. }) => {}
                Ok(ParentMsg::Abort) | Err(_) => {
                    self.aborted = true;
                    return None;
                }
            }
        }
    }

    fn steady_start(&mut self, shared: &Shared, now: u64) -> Option<u64> {
        if !self.settled_sent {
            let settled = shared.snapshot().settled >= u64::from(self.part.clients(self.clients));
            let stalled = now.saturating_sub(self.go_ns) > self.ramp_bound_ns;
            if settled || stalled {
                say(&ChildMsg::Settled {
                    not_online: self.not_online(shared),
                });
                self.settled_sent = true;
            }
        }
        self.hear();
        let (at_ns, not_online) = self.steady.take()?;
        // Other processes' clients are online unless the parent listed them (sorted).
        for c in (0..self.clients).filter(|&c| !self.part.owns(c)) {
            if not_online.binary_search(&c).is_err() {
                shared.set_online(c, true);
            }
        }
        Some(at_ns)
    }

    fn tick(&mut self, second: u32, counts: Snapshot, latencies: &Histograms) {
        say(&ChildMsg::Tick {
            second,
            counts,
            latencies: encode_histograms(latencies),
        });
    }

    fn abort_requested(&mut self) -> bool {
        self.hear();
        self.aborted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settles_then_takes_the_parents_view_of_other_processes() {
        let part = Part { index: 1, of: 2 };
        let shared = Shared::new(6, 1);
        let (tx, rx) = mpsc::channel();
        let mut control = ChildControl::new(part, 6, u64::MAX / 2, rx);
        control.go_ns = 1;
        // Clients 1 and 3 online, 5 not: not settled yet (settled counter is 0).
        shared.set_online(1, true);
        shared.set_online(3, true);
        assert_eq!(control.steady_start(&shared, 10), None);
        assert!(!control.settled_sent);
        assert_eq!(control.not_online(&shared), vec![5]);
        // The parent says: steady at 500, and client 2 (of process 0) is not online.
        tx.send(ParentMsg::Steady {
            at_ns: 500,
            not_online: vec![2, 5],
        })
        .unwrap();
        assert_eq!(control.steady_start(&shared, 20), Some(500));
        let online: Vec<u32> = (0..6).filter(|&c| shared.is_online(c)).collect();
        assert_eq!(online, vec![0, 1, 3, 4], "5 is ours and stays as it is");
        assert!(!control.abort_requested());
        drop(tx);
        assert!(control.abort_requested(), "a gone parent aborts the run");
    }
}
