//! What the presence and group scenarios add to a worker: their state ([`Fan`]), built once
//! per worker, the names their stanzas use, and their turn in the worker's loop (stage
//! changes and retries that are due, see `presence` and `group`).
//!
//! What it does not do: any protocol step itself (see `presence` and `group`).

use rookery_io::Ops;

use super::group::GroupState;
use super::presence::PresenceState;
use super::{RunPhase, Worker};
use crate::accounting::Delivery;
use crate::cli::RunConfig;
use crate::fanout::wire::Names;
use crate::fanout::{Fanout, Groups, Ring};
use crate::metrics::Metric;
use crate::schedule::MessageSchedule;
use crate::wire::Probe;

/// The state of the fan-out scenarios, when one runs.
#[derive(Debug)]
pub(super) enum Fan {
    None,
    Presence(PresenceState),
    Group(GroupState),
}

impl Fan {
    pub(super) fn presence_mut(&mut self) -> Option<&mut PresenceState> {
        match self {
            Fan::Presence(p) => Some(p),
            _ => None,
        }
    }

    pub(super) fn group_mut(&mut self) -> Option<&mut GroupState> {
        match self {
            Fan::Group(g) => Some(g),
            _ => None,
        }
    }

    pub(super) fn is_some(&self) -> bool {
        !matches!(self, Fan::None)
    }
}
/// The fan-out state of a worker with `slots` slots; `local` maps a client to its slot here.
pub(super) fn fan_state(
    cfg: &RunConfig,
    slots: usize,
    local: impl Fn(u32) -> Option<usize>,
) -> Fan {
    match &cfg.fanout {
        Some(Fanout::Presence {
            contacts,
            setup,
            setup_ms,
            probe_ms,
        }) => {
            let ring = Ring {
                clients: cfg.clients,
                contacts: *contacts,
            };
            Fan::Presence(PresenceState::new(
                ring,
                *setup,
                (*setup_ms, *probe_ms),
                slots,
            ))
        }
        Some(Fanout::Group {
            groups,
            members,
            setup_ms,
            ..
        }) => {
            let groups = Groups {
                clients: cfg.clients,
                groups: *groups,
                members: *members,
            };
            let schedule = MessageSchedule::new(cfg.rate, cfg.pattern);
            Fan::Group(GroupState::new(groups, *setup_ms, schedule, slots, local))
        }
        None => Fan::None,
    }
}

impl<'a> Worker<'a> {
    /// Accounts receipt number `receipt` (None: a misroute) of `probe` at client `me`, and
    /// records its latency under `metric` and as a candidate last receipt of its change.
    pub(super) fn record_fan_receipt(
        &mut self,
        probe: &Probe,
        me: u32,
        receipt: Option<u32>,
        metric: Metric,
        now: u64,
    ) {
        // u32::MAX is past the ledger's range: recorded as unexpected (a misroute).
        let receipt = receipt.unwrap_or(u32::MAX);
        match self.report.ledger.record(probe.sender, me, receipt) {
            Delivery::InOrder | Delivery::OutOfOrder => {
                let us = now.saturating_sub(probe.intended_ns) / 1000;
                self.recent.record(metric, us);
                self.report
                    .last_receipts
                    .record(probe.sender, probe.seq, us);
            }
            Delivery::Duplicate | Delivery::Unexpected => {}
        }
    }

    /// The names this run's stanzas use.
    pub(super) fn names(&self) -> Names<'a> {
        let (muc_domain, presence_broadcast) = match &self.cfg.fanout {
            Some(Fanout::Group {
                muc_domain,
                presence_broadcast,
                ..
            }) => (
                muc_domain.as_str(),
                presence_broadcast.as_deref().unwrap_or(""),
            ),
            _ => ("", ""),
        };
        Names {
            user_prefix: &self.cfg.user_prefix,
            domain: &self.cfg.domain,
            muc_domain,
            presence_broadcast,
        }
    }

    /// The fan-out scenarios' stage changes and retries; the next instant they need a turn.
    pub(super) fn fan_turn<O: Ops>(&mut self, io: &mut O, now: u64) -> Option<u64> {
        if matches!(self.phase, RunPhase::Closing { .. }) {
            return None;
        }
        match self.fan {
            Fan::None => None,
            Fan::Presence(_) => self.presence_turn(io, now),
            Fan::Group(_) => self.group_turn(io, now),
        }
    }
}
