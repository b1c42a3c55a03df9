//! The offline scenario's shape: who sends, who receives what, and the drain figures.
//!
//! Clients `0..senders` send; clients `senders..clients` are the recipients and stay offline
//! through phase 1. Message `seq` of sender `s` goes to recipient
//! `senders + (s * messages + seq) % recipients`: a round robin over the recipients, so each
//! gets `senders * messages / recipients` messages, give or take one, and the recipient is a
//! pure function of the probe (nothing is kept per message).
//!
//! Phase 1 ends (for the coordinator, the "ramp") once every sender has sent its messages
//! and the server acknowledged them all (XEP-0198), or `--drain-ms` passed after its last
//! send, or it failed; phase 2 (the "steady" phase) logs the recipients in at
//! `--connect-rate` and ends `--drain-ms` after the last of them settled.
//!
//! What it does not do: run the phases (see `worker`) or judge the result (see `output`).

use anyhow::bail;
use serde::Serialize;

use crate::cli::{LoadArgs, RunConfig, Scenario, SmArg, OFFLINE_MESSAGES};
use crate::run::RunResult;

/// Who sends and who receives in an offline run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OfflinePlan {
    pub senders: u32,
    pub recipients: u32,
    pub messages: u32,
}

impl OfflinePlan {
    /// The plan of an offline run; `None` for the other scenarios.
    pub fn of(cfg: &RunConfig) -> Option<OfflinePlan> {
        (cfg.scenario == Scenario::Offline).then_some(OfflinePlan {
            senders: cfg.senders,
            recipients: cfg.clients - cfg.senders,
            messages: cfg.messages,
        })
    }

    pub fn is_sender(&self, client: u32) -> bool {
        client < self.senders
    }

    /// The client that message `seq` of `sender` goes to.
    pub fn recipient(&self, sender: u32, seq: u32) -> u32 {
        let k = u64::from(sender) * u64::from(self.messages) + u64::from(seq);
        // `recipients` >= 1 (checked by `shape`), and the remainder is below it, a u32.
        self.senders + (k % u64::from(self.recipients)) as u32
    }
}

/// `--verify` needs messages and stream management; so does offline.
pub fn check_verify(scenario: Scenario, load: &LoadArgs) -> anyhow::Result<()> {
    if load.verify && !matches!(scenario, Scenario::Chat | Scenario::Offline) {
        bail!("--verify applies to chat and offline, the scenarios that send messages");
    }
    let needs_sm = load.verify || scenario == Scenario::Offline;
    if needs_sm && load.stream_management == SmArg::Off {
        bail!(
            "{} counts messages by the server's XEP-0198 acks: drop --stream-management off",
            if load.verify { "--verify" } else { "offline" }
        );
    }
    Ok(())
}

/// Offline: (senders, messages per sender), both at least 1 and leaving a recipient;
/// (0, 0) for the other scenarios, which refuse the options.
pub fn shape(scenario: Scenario, load: &LoadArgs, clients: u64) -> anyhow::Result<(u32, u32)> {
    if scenario != Scenario::Offline {
        if load.messages.is_some() || load.senders.is_some() {
            bail!("--messages and --senders apply to offline only");
        }
        return Ok((0, 0));
    }
    let senders = load.senders.unwrap_or(clients / 2);
    if senders == 0 || senders >= clients {
        bail!("--senders must leave at least one sender and one recipient (--clients {clients})");
    }
    let messages = load.messages.unwrap_or(OFFLINE_MESSAGES);
    if messages == 0 {
        bail!("--messages must be at least 1");
    }
    // Bounded by --clients (u32 range, see cli::MAX_CLIENTS).
    Ok((senders as u32, messages))
}

/// How fast the recipients drained their stored messages in phase 2.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Drain {
    /// Messages delivered (first deliveries and duplicates) during phase 2.
    pub delivered: u64,
    /// From the phase 2 start to the last delivery.
    pub span_ms: u64,
    /// `delivered` over `span_ms`.
    pub rate_mean_per_s: f64,
    /// Deliveries in the busiest whole second of phase 2.
    pub rate_peak_per_s: u64,
}

/// Phase 2's drain figures, once the run is over.
pub fn drain(r: &RunResult) -> Option<Drain> {
    let steady_ns = r.meta.steady_ns;
    if steady_ns == 0 {
        return None;
    }
    let delivered = r.report.offline_deliveries;
    let span_ns = r.report.last_delivery_ns.saturating_sub(steady_ns);
    let rate_mean_per_s = if span_ns > 0 {
        delivered as f64 / (span_ns as f64 / 1e9)
    } else {
        0.0
    };
    let from_s = steady_ns.saturating_sub(r.meta.go_ns) as f64 / 1e9;
    let rate_peak_per_s = r
        .series
        .received_per_s(from_s.floor(), f64::INFINITY)
        .into_iter()
        .max()
        .unwrap_or(0);
    Some(Drain {
        delivered,
        span_ms: span_ns / 1_000_000,
        rate_mean_per_s,
        rate_peak_per_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_spread_evenly_over_recipients_only() {
        let plan = OfflinePlan {
            senders: 7,
            recipients: 5,
            messages: 3,
        };
        let mut per_recipient = [0u32; 12];
        for s in 0..plan.senders {
            assert!(plan.is_sender(s));
            for q in 0..plan.messages {
                per_recipient[plan.recipient(s, q) as usize] += 1;
            }
        }
        assert!(
            per_recipient[..7].iter().all(|&n| n == 0),
            "no sender receives"
        );
        // 21 messages over 5 recipients: 4 or 5 each.
        assert!(per_recipient[7..].iter().all(|&n| n == 4 || n == 5));
        assert_eq!(per_recipient.iter().sum::<u32>(), 21);
        assert!(!plan.is_sender(7));
        // Large indexes do not overflow.
        let big = OfflinePlan {
            senders: 4_000_000,
            recipients: 3,
            messages: u32::MAX,
        };
        assert!((4_000_000..4_000_003).contains(&big.recipient(3_999_999, u32::MAX - 1)));
    }
}
