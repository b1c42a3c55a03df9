//! The shape of the two fan-out scenarios, `presence` and `group`: who is whose contact, who
//! is in which group, and the options that set them.
//!
//! Presence: a ring. Client `i`'s K contacts are `i+1 .. i+K/2` and `i-1 .. i-K/2` (mod N), so
//! the relation is symmetric and every client has exactly K contacts. Contact number `pos` of
//! a client is `+1, +2, .. +K/2` for `pos < K/2`, then `-1, -2, .. -K/2`. A change of client
//! `s` is expected at each of its K contacts; the receipt at contact `c` is accounted as
//! receipt number `seq * K + position(s, c)` of sender `s` (see `accounting`): a computed
//! index, so no client keeps a per-contact map.
//! Group: group `g`'s members are clients `(g*S + m) mod N` for `m` in `0..S` (member `m = 0`,
//! the first, is the one whose worker runs the group's message schedule); a message of group
//! `g` is expected at each of its S members, accounted as receipt `seq * S + m` of row `g`.
//!
//! What it does not do: speak XMPP (see `wire`, `client`) or run phases (see `worker`).
//! Invariants (checked by [`resolve`]): presence needs an even K with `2 <= K < N`, so the
//! `+d` and `-d` contacts never coincide; a group needs `1 <= S <= N`, so a client is at most
//! once in a group.

use anyhow::bail;
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::cli::{RunConfig, Scenario};
use crate::metrics::Metric;
use crate::worker::WorkerReport;

pub mod table;
pub mod wire;

/// Presence: contacts per client by default.
pub const DEFAULT_CONTACTS: u32 = 10;
/// Presence: status changes per second per client by default.
pub const DEFAULT_PRESENCE_RATE: f64 = 0.1;
/// Group: groups and members per group by default (the quick size).
pub const DEFAULT_GROUPS: u32 = 10;
pub const DEFAULT_MEMBERS: u32 = 100;
/// Longest the per-client setup (subscriptions, or group joins) may take by default.
pub const DEFAULT_SETUP_MS: u64 = 60_000;
/// Presence: from the initial presences to the first status change, by default.
pub const DEFAULT_PROBE_MS: u64 = 3_000;

/// `--setup`: whether the presence scenario subscribes the contact ring before measuring.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SetupMode {
    /// Only when a client's roster lacks a contact with subscription='both'.
    Auto,
    /// Every time, whatever the roster holds.
    Always,
    /// Never: the rosters are trusted to be there.
    Skip,
}

/// The options of the fan-out scenarios (refused by the others).
#[derive(Args, Debug, Clone, Default)]
pub struct FanoutArgs {
    /// Presence: contacts per client, an even number: the ring neighbours +-1 .. +-K/2
    /// [default: 10].
    #[arg(long)]
    pub contacts: Option<u32>,
    /// Presence: subscribe the contact ring first: auto (when a roster lacks it), always, skip
    /// [default: auto].
    #[arg(long, value_enum)]
    pub setup: Option<SetupMode>,
    /// Presence and group: longest the setup (subscriptions; group joins) may take, per client,
    /// in ms, before the client goes on with what it has [default: 60000].
    #[arg(long)]
    pub setup_ms: Option<u64>,
    /// Presence: from the initial presences (the server probes the contacts) to the first
    /// status change, in ms [default: 3000].
    #[arg(long)]
    pub probe_ms: Option<u64>,
    /// Group: how many groups (XEP-0045 rooms g0, g1, ...) [default: 10].
    #[arg(long)]
    pub groups: Option<u32>,
    /// Group: members per group [default: 100].
    #[arg(long)]
    pub members: Option<u32>,
    /// Group: the multi-user chat service [default: groups.<domain>].
    #[arg(long)]
    pub muc_domain: Option<String>,
    /// Group: roles whose presence each room broadcasts, set by the room's creator in the
    /// instant-room form (`muc#roomconfig_presencebroadcast`): e.g. `moderator`, or `none`.
    /// Big groups need it: with every role broadcast, N joins cost N^2/2 presences
    /// [default: the server's, usually every role].
    #[arg(long)]
    pub presence_broadcast: Option<String>,
}

/// The validated shape of a fan-out run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Fanout {
    Presence {
        contacts: u32,
        setup: SetupMode,
        setup_ms: u64,
        probe_ms: u64,
    },
    Group {
        groups: u32,
        members: u32,
        muc_domain: String,
        setup_ms: u64,
        /// Roles, comma-separated, or "none"; `None`: the server's default.
        #[serde(default)]
        presence_broadcast: Option<String>,
    },
}

impl Fanout {
    /// Receipts expected per change (presence) or message (group).
    pub fn per_change(&self) -> u32 {
        match self {
            Fanout::Presence { contacts, .. } => *contacts,
            Fanout::Group { members, .. } => *members,
        }
    }

    /// Rows of the delivery ledger: one per client (presence) or per group.
    pub fn rows(&self, clients: u32) -> u32 {
        match self {
            Fanout::Presence { .. } => clients,
            Fanout::Group { groups, .. } => *groups,
        }
    }

    pub fn setup_ms(&self) -> u64 {
        match self {
            Fanout::Presence { setup_ms, .. } | Fanout::Group { setup_ms, .. } => *setup_ms,
        }
    }

    /// The default end of the results folder's name.
    pub fn slug(&self, clients: u64, rate: f64) -> String {
        match self {
            Fanout::Presence { contacts, .. } => format!("c{clients}-k{contacts}-r{rate}"),
            Fanout::Group {
                groups, members, ..
            } => format!("g{groups}-s{members}-r{rate}"),
        }
    }

    /// Presence: the wait between the initial presences and the measurement; 0 for groups.
    pub fn probe_ms(&self) -> u64 {
        match self {
            Fanout::Presence { probe_ms, .. } => *probe_ms,
            Fanout::Group { .. } => 0,
        }
    }
}

/// `--presence-broadcast`: `none`, or roles from moderator, participant, visitor.
fn presence_roles(spec: &str) -> anyhow::Result<String> {
    let spec = spec.trim().to_ascii_lowercase();
    if spec == "none" {
        return Ok(spec);
    }
    let roles: Vec<&str> = spec.split(',').map(str::trim).collect();
    let known = ["moderator", "participant", "visitor"];
    if roles.is_empty() || roles.iter().any(|r| !known.contains(r)) {
        bail!(
            "--presence-broadcast {spec:?}: use none, or roles from moderator,participant,visitor"
        );
    }
    Ok(roles.join(","))
}

/// Validates the fan-out options of `scenario`; `None` for the other scenarios (which refuse
/// them).
pub fn resolve(
    scenario: Scenario,
    args: &FanoutArgs,
    clients: u64,
    domain: &str,
) -> anyhow::Result<Option<Fanout>> {
    let presence_only = args.contacts.is_some() || args.setup.is_some() || args.probe_ms.is_some();
    let group_only = args.groups.is_some()
        || args.members.is_some()
        || args.muc_domain.is_some()
        || args.presence_broadcast.is_some();
    let setup_ms = args.setup_ms.unwrap_or(DEFAULT_SETUP_MS).max(1);
    match scenario {
        Scenario::Presence if group_only => bail!("--groups, --members, --muc-domain: group only"),
        Scenario::Presence => {
            let contacts = args.contacts.unwrap_or(DEFAULT_CONTACTS);
            if contacts < 2 || !contacts.is_multiple_of(2) || u64::from(contacts) >= clients {
                bail!(
                    "--contacts must be even, at least 2 and below --clients ({clients}): the ring \
                     gives each client its neighbours +-1 .. +-K/2"
                );
            }
            Ok(Some(Fanout::Presence {
                contacts,
                setup: args.setup.unwrap_or(SetupMode::Auto),
                setup_ms,
                probe_ms: args.probe_ms.unwrap_or(DEFAULT_PROBE_MS),
            }))
        }
        Scenario::Group if presence_only => {
            bail!("--contacts, --setup, --probe-ms: presence only")
        }
        Scenario::Group => {
            let groups = args.groups.unwrap_or(DEFAULT_GROUPS);
            let members = args.members.unwrap_or(DEFAULT_MEMBERS);
            if groups == 0 || members == 0 || u64::from(members) > clients {
                bail!("--groups must be at least 1, --members between 1 and --clients ({clients})");
            }
            let muc_domain = match &args.muc_domain {
                Some(d) => d.to_ascii_lowercase(),
                None => format!("groups.{domain}"),
            };
            let ok = muc_domain.len() <= 255
                && !muc_domain.is_empty()
                && muc_domain
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c));
            if !ok {
                bail!("--muc-domain {muc_domain:?}: use ASCII letters, digits, '.' and '-' only");
            }
            let presence_broadcast = match args.presence_broadcast.as_deref() {
                None => None,
                Some(roles) => Some(presence_roles(roles)?),
            };
            Ok(Some(Fanout::Group {
                groups,
                members,
                muc_domain,
                setup_ms,
                presence_broadcast,
            }))
        }
        _ if presence_only || group_only || args.setup_ms.is_some() => {
            bail!("--contacts, --setup, --setup-ms, --probe-ms, --groups, --members, --muc-domain apply to presence and group only")
        }
        _ => Ok(None),
    }
}

/// How the changes (presence) or messages (group) of a run fared, once every worker's
/// receipts are merged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Receipts expected per change: K contacts, or S members.
    pub per_change: u32,
    pub changes_sent: u64,
    /// Changes every expected recipient got.
    pub changes_complete: u64,
    /// Changes some, not all, recipients got.
    pub changes_partial: u64,
    /// Changes no recipient got.
    pub changes_unseen: u64,
    /// Receipts not followed for the last-recipient latency (the table's cap).
    pub untracked: u64,
}

/// The fan-out totals of a merged report (`None` outside presence and group): records the
/// last-recipient latency of every complete change, and turns `sent` (changes per ledger
/// row) into receipts expected per row, as the ledger numbers them (see the module doc).
pub fn totals(cfg: &RunConfig, report: &mut WorkerReport, sent: &mut [u32]) -> Option<Totals> {
    let fanout = cfg.fanout.as_ref()?;
    let per_change = fanout.per_change();
    let changes_sent: u64 = sent.iter().map(|&c| u64::from(c)).sum();
    for s in sent.iter_mut() {
        // Below u32::MAX: `RunConfig::resolve` checks max_seq * fan-out, and the ledger
        // refuses sequences past max_seq.
        *s = s.saturating_mul(per_change);
    }
    let metric = match fanout {
        Fanout::Presence { .. } => Metric::PresenceFanoutLast,
        Fanout::Group { .. } => Metric::GroupFanoutLast,
    };
    let histograms = &mut report.histograms;
    let done = report
        .last_receipts
        .finish(per_change, &mut |us| histograms.record(metric, us));
    Some(Totals {
        per_change,
        changes_sent,
        changes_complete: done.complete,
        changes_partial: done.partial,
        changes_unseen: changes_sent.saturating_sub(done.complete + done.partial),
        untracked: report.last_receipts.untracked,
    })
}

/// Receipt numbers are `seq * fan-out + position` (see the module doc): with sequences below
/// `max_seq` they must fit a u32.
pub fn check_receipt_numbers(max_seq: u32, per_change: u32) -> anyhow::Result<()> {
    if u64::from(max_seq) * u64::from(per_change) >= u64::from(u32::MAX) {
        bail!("--rate x --duration is too large for this fan-out (receipt numbers overflow)");
    }
    Ok(())
}

/// The presence contact ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ring {
    pub clients: u32,
    pub contacts: u32,
}

impl Ring {
    fn half(self) -> u32 {
        self.contacts / 2
    }

    /// Contact number `pos` (`0..contacts`) of `client`.
    pub fn contact(self, client: u32, pos: u32) -> u32 {
        let n = u64::from(self.clients);
        let (c, half) = (u64::from(client), u64::from(self.half()));
        let p = u64::from(pos);
        // Offsets stay below n (contacts < clients), so the sums do not wrap below zero.
        let other = if p < half {
            (c + p + 1) % n
        } else {
            (c + n - (p - half + 1)) % n
        };
        other as u32
    }

    /// Where `other` is among `client`'s contacts; `None` when it is not one.
    pub fn position(self, client: u32, other: u32) -> Option<u32> {
        let n = u64::from(self.clients);
        if u64::from(client) >= n || u64::from(other) >= n {
            return None;
        }
        let ahead = (u64::from(other) + n - u64::from(client)) % n;
        let half = u64::from(self.half());
        if (1..=half).contains(&ahead) {
            Some((ahead - 1) as u32)
        } else if ahead != 0 && n - ahead <= half {
            Some((half + n - ahead - 1) as u32)
        } else {
            None
        }
    }
}

/// The group memberships.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Groups {
    pub clients: u32,
    pub groups: u32,
    pub members: u32,
}

impl Groups {
    /// Member `m` (`0..members`) of `group`.
    pub fn member(self, group: u32, m: u32) -> u32 {
        let first = u64::from(group) * u64::from(self.members);
        ((first + u64::from(m)) % u64::from(self.clients)) as u32
    }

    /// Which member of `group` `client` is; `None` when it is not in it.
    pub fn position(self, group: u32, client: u32) -> Option<u32> {
        if group >= self.groups || client >= self.clients {
            return None;
        }
        let n = u64::from(self.clients);
        let first = self.member(group, 0);
        let m = (u64::from(client) + n - u64::from(first)) % n;
        (m < u64::from(self.members)).then_some(m as u32)
    }

    /// The groups `client` is a member of, in increasing order.
    pub fn groups_of(self, client: u32) -> impl Iterator<Item = u32> {
        (0..self.groups).filter(move |&g| self.position(g, client).is_some())
    }
}

/// Why a group join failed, by the error condition the server gave (XEP-0045 7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinError {
    /// The room stayed locked (or missing) past the setup time.
    ItemNotFound,
    /// The room is full (its member cap), or the service refuses.
    ServiceUnavailable,
    /// The nickname is taken.
    Conflict,
    Forbidden,
    NotAllowed,
    NotAuthorized,
    RegistrationRequired,
    /// No answer within the setup time.
    Timeout,
    Other,
}

impl JoinError {
    pub const ALL: [JoinError; 9] = [
        JoinError::ItemNotFound,
        JoinError::ServiceUnavailable,
        JoinError::Conflict,
        JoinError::Forbidden,
        JoinError::NotAllowed,
        JoinError::NotAuthorized,
        JoinError::RegistrationRequired,
        JoinError::Timeout,
        JoinError::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            JoinError::ItemNotFound => "item-not-found",
            JoinError::ServiceUnavailable => "service-unavailable",
            JoinError::Conflict => "conflict",
            JoinError::Forbidden => "forbidden",
            JoinError::NotAllowed => "not-allowed",
            JoinError::NotAuthorized => "not-authorized",
            JoinError::RegistrationRequired => "registration-required",
            JoinError::Timeout => "timeout",
            JoinError::Other => "other",
        }
    }

    /// The error named by a stanza error condition (RFC 6120 8.3.3).
    pub fn from_condition(condition: &str) -> JoinError {
        JoinError::ALL
            .into_iter()
            .find(|e| e.name() == condition && *e != JoinError::Timeout && *e != JoinError::Other)
            .unwrap_or(JoinError::Other)
    }
}

#[cfg(test)]
mod tests;
