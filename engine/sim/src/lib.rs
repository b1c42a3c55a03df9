//! rookery-sim: a deterministic simulator of Rookery shards and XMPP clients in one thread,
//! in the FoundationDB / TigerBeetle VOPR style.
//!
//! N shards and M simulated clients run in one thread, driven by a seeded PRNG ([`rng`]) and
//! a virtual clock. Each shard is the server's own loop (`rookery::shard::Shard`: the turn,
//! effects, hand-off and adopt, the group-commit pump, log reads, the output cap, shutdown)
//! over a `rookery_router::Router` with a `Log`-durability store in a per-run temp dir, run
//! one turn at a time on simulated parts: a driver ([`driver`]: in-memory conns whose output
//! queues the network writes out in seeded pieces, `Drained`, close and detach completions,
//! the shard's real log file written and read after seeded delays, writes failing with
//! ENOSPC, short writes), a mailbox ([`mailbox`]) and a clock. Everything concurrent in the
//! real server is an explicit event in a queue ordered by (virtual time, sequence)
//! ([`world`]): shard turns (when their driver has completions, mail arrived, or the wait the
//! loop asked for ran out), bytes in both directions on each conn (per-conn FIFO, random
//! delays), cross-shard mail of every kind (router mail and `Adopt` hand-offs: random delay,
//! per-(src, dst) lane FIFO, lost at a restart), conn drops by the "network", whole-server
//! restarts that keep only what the logs hold (a write in flight is lost or torn, like a
//! kill -9), and graceful stops through the loop's stop flag (`shutdown`).
//!
//! Output queues (`flow`, `driver`): each conn's queue is the driver's; the router sees it
//! through `Effects::queued_bytes` and hears `on_drained` when the network emptied it. The
//! driver's output cap (`SimConfig::max_output_bytes`, 16 KiB, also the routers'
//! `max_output_bytes`) refuses a send past it into a non-empty queue, and the real loop aborts
//! the conn. Some conns read slowly while clients chat (a bytes-per-ms budget), so queues
//! build up and backlogs are flow-controlled; half the drops hit a conn with bytes still
//! queued. A third of fresh logins skip XEP-0198 (`SimConfig::no_sm_per_mille`): their stored
//! messages are deleted on drain, not on `<a h>`. Clients connect to a random shard, so most
//! logins are handed off to their home shard by the loop's detach / `Adopt` / adopt.
//!
//! Nodes (`SimConfig::nodes`, `nodes`, `bus`): with more than one, every node has its
//! shards (real loops whose routers place users and rooms with `Placement::cluster` over a
//! cluster file) and a bridge, the last participant of its mailbox grid. Clients log in on
//! a shard of any node; one whose home is elsewhere gets `see-other-host` from the router
//! after SASL and logs in again on its home node (`rookery_client` reports the address).
//! Mail for another node's shard goes to the bridge, which batches it with the real codec
//! (`rookery::cluster::batch`) and sends it through the real `rookery_cluster::link::Links`
//! over a seeded bus that drops, duplicates, delays and reorders frames; the receiving links
//! deliver in order and once, to the destination shards' inboxes. Restarts: the whole
//! cluster's, and one node's kill -9 while the others run on (`node_kill`). The ledger's
//! rules below are the same across nodes.
//!
//! A run has up to four phases. Setup (only with contacts or rooms in the [`plan`]): no
//! faults; clients log in, build their rosters through the router (subscribe / subscribed
//! both ways with K random others) and join their rooms once (which makes them members);
//! once nothing is in flight and every store committed, the rosters are final. Active:
//! chats, presence updates (`<status>sim C SEQ</status>`), groupchat messages, clean closes,
//! faults. Quiet: no faults; clients still send during its first quarter, then only drain.
//! End checks.
//!
//! Checkers, chats ([`ledger`], [`world`]): (1) every chat acknowledged to its sender
//! (XEP-0198) or seen stored in a written commit batch, and not bounced, reaches its
//! recipient by the end, whether the recipient's sessions use XEP-0198 or not (a bounce the
//! router wrote counts even if a drop ate it); (2) per-pair order, with duplicates allowed only
//! across a non-resumed reconnect, and counted by cause: after a XEP-0198 session, after a
//! session without it whose conn died before it drained, or after a restart; a duplicate of a
//! delivery the router was told drained, with no restart since, is a `duplicate` violation;
//! (3) nothing is sent to a conn the router closed, handed off or was told is closed, and no
//! chat, presence or groupchat reaches a client that is not in a bound session; (4) bounded
//! queues (store queue per owner, lanes, unacked stanzas); at the end every client is online
//! with every stanza acknowledged; (5) the router's own stored-message traffic never makes the
//! output cap abort a conn (`backlog-overflow`; aborts by live traffic are counted).
//!
//! Rosters ([`social`]): after setup, every roster get (each fresh login, restarts included)
//! returns exactly the plan (every contact `both`, no `ask`), and no roster push or
//! subscription stanza ever arrives: rosters survive restarts unchanged.
//!
//! Presence ([`presence`]), what is checked and why only that: presence is not stored (a
//! detached session gets the changes queued for its resumption, but a session that is not
//! resumed loses them) and a restart drops every session by design, so only a
//! contact whose current conn stayed open from before the update to the end ("stable") is
//! owed it. Always: presence comes only from planned contacts; per recipient session a
//! contact's broadcasts arrive in the sender's order, never twice (a probe answer may repeat
//! the current one); nothing from a session after its unavailable. At the end, for stable
//! contacts: every update the router acknowledged (XEP-0198) arrived exactly once; every
//! session of a contact the stable conn saw available (from a broadcast made while stable)
//! and that ended without resumption (clean close, resumption timeout, replaced by a fresh
//! bind) was followed by exactly one unavailable, and a session still open by none. Not
//! checked: deliveries to contacts that dropped, resumed or re-logged in meanwhile (they may
//! or may not get it), presence directed elsewhere, and anything during setup beyond order.
//!
//! Groups ([`groups`], [`rooms`]): every copy comes from `room/nick` of a member and reaches
//! only members, never twice in one session (a re-delivery from the offline queue after a
//! non-resumed reconnect is allowed), in the sender's order within each channel (live copies;
//! copies flushed from the offline queue); a session is never removed from a room it joined.
//! At the end, for each groupchat message acknowledged to its sender (the room's gather: every
//! shard stored its copies) and not refused: a member whose final session had joined before
//! the send got it in that session; a member with no session in the room between send and
//! ack (absent: never rejoined after setup, or offline) got it at least once, from its offline
//! queue, restarts included. Not checked: members who joined or dropped around the message
//! (an occupant's copy is written, not stored, and dies with a session that is not resumed).
//!
//! Canaries (`--inject-bug`): drop-mail, reorder-lane, lose-committed,
//! drop-fanout-recipient (one recipient removed from one presence or groupchat `Fanout`
//! mail), skip-link-dedupe (a cluster's receiving bridge hands its shards data frames the
//! link calls duplicates), and delete-on-queue (`Drained` reported as soon as bytes are queued: a session
//! without XEP-0198 loses what was queued when its conn dies); the tests assert each is
//! caught by most seeds.
//!
//! Router bugs these checkers found, both fixed: a XEP-0198 resumption that took over a
//! session whose old conn the router had not seen close ended that session's presence and
//! rooms (`presence-order`, `group-left`; seed 243 with `--shards 4 --clients 12 --steps 3000
//! --contacts 5`); and a member copy of a group message that the store refused (quota, or
//! unavailable after a failed write) was dropped silently while the sender was acknowledged
//! (`group-delivered`): the sender now gets a `resource-constraint` error naming the count.
//!
//! Router findings of the output-cap model, not fixed here (reported, and outside the tested
//! configurations): a XEP-0198 resumption resends every unacknowledged non-stored stanza at
//! once, so a session that collected more than the cap while detached is aborted at every
//! resumption and its client never gets back in (seed 2 with `--shards 3 --clients 8 --steps
//! 1500 --contacts 3 --groups 3 --group-size 5 --offline-max 60 --max-output-bytes 4096`:
//! `liveness`); nothing keeps `sm_window_bytes` at or below half of `max_output_bytes`, and
//! above it a live stored message to a slow XEP-0198 reader overflows the cap (seed 53 with
//! `--shards 3 --clients 8 --steps 1500 --max-output-bytes 2048 --sm-window-bytes 4096`:
//! `backlog-overflow`); a window of fewer than five stanzas waits for the one-second `<r/>`
//! timer per window (`--sm-window-bytes 512`: `acked-delivered`).
//!
//! Cluster finding, not fixed here (reported; one node's restart is off by default and out
//! of the tested scenario): the link is at-least-once across a receiver's kill -9. A node
//! that stored a cross-node chat and died before its link's ack reached the sender gets the
//! frame again from the sender's link (its new incarnation expects from the frame's `base`),
//! and stores it a second time: the recipient gets the chat twice in one session, from the
//! offline queue (`order`: seeds 21 and 38 with `--nodes 3 --shards 2 --clients 8 --steps
//! 1000 --node-restarts 1`, `n=5 after n=5`), or an old chat after newer ones (seed 41:
//! `n=6 after n=19`). The fix belongs to the home node (a dedupe window of recent stanza
//! ids per sender, or the link's expected seq kept in the log), not to the bus. Measured:
//! 3 of 100 seeds at that configuration; 0 of 100 without node restarts. Cluster routers
//! wait `nodes::MAIL_TIMEOUT_MS` (4 s) for a remote answer, so mail a kill lost is answered
//! with an error before the end checks (at the default 30 s, 7 of 100 seeds ended with
//! senders still waiting: `liveness`).
//!
//! Compaction runs in the loop only with a small `SimConfig::compact_min_bytes` (the default
//! threshold, 4 MiB, is never reached by the sim's logs).
//!
//! What it does not do: real sockets, threads, TLS or kernel buffers (a byte is handed to the
//! kernel when the network pulled it from the driver's queue), linger timeouts;
//! room administration, leaves, nick changes; roster changes after setup. Groupchat messages
//! from sessions without XEP-0198 are never owed (nothing acknowledges them).
//!
//! Invariants: a run is a pure function of ([`SimConfig`], seed): no `HashMap` iteration in
//! the simulator (the loop's own maps never order its outputs), routers and drivers seeded
//! from the run's PRNG, the clock virtual; the fds standing for handed-off conns are only
//! used as keys. The trace hash in [`Outcome`] proves it (see the tests).

#![forbid(unsafe_code)]
// STYLE.md: functions under 70 lines (the threshold is in this package's clippy.toml).
#![warn(clippy::too_many_lines)]

mod bus;
mod checks;
pub mod client;
mod commit;
pub mod driver;
mod flow;
pub mod groups;
pub mod ledger;
mod mail;
pub mod mailbox;
mod net;
mod node_kill;
mod nodes;
mod outcome;
pub mod plan;
pub mod presence;
pub mod rng;
pub mod rooms;
mod setup;
mod shutdown;
pub mod social;
mod tamper;
mod turns;
pub mod world;

pub use bus::BusStats;
pub use ledger::Violation;
pub use outcome::{run, Failure, Outcome};

/// A deliberate misbehaviour of the simulator, to prove the checkers catch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectBug {
    /// Drop one cross-shard `Deliver` mail carrying a message its sender waits for (the first
    /// of the quiet period, so no fault excuses the sender's missing acknowledgement).
    DropMail,
    /// Hold one message `Deliver` back until the next one of the same pair on its lane
    /// passes it.
    ReorderLane,
    /// On restart, also lose one committed stored message from a log (a run that lost nothing
    /// owed by the quiet period gets one more restart then, see `world`).
    LoseCommitted,
    /// Remove one recipient from one `Fanout` mail (an available presence or a groupchat
    /// message) in the quiet period: a fan-out that skips someone.
    DropFanoutRecipient,
    /// Tell the router `on_drained` as soon as bytes are queued for a conn, not once they were
    /// delivered: the old behaviour of deleting a stored message for a session without
    /// XEP-0198 when it is merely queued, which loses it when the conn dies first.
    DeleteOnQueue,
    /// The receiving bridge hands the shards every data frame the link calls a duplicate (a
    /// bus duplicate, a retransmission of a frame already delivered) instead of dropping it:
    /// a bus without the link's dedupe. Only with `nodes` > 1.
    SkipLinkDedupe,
}

impl InjectBug {
    /// The canaries of the chat scenario (no rosters, no rooms).
    pub const ALL: [InjectBug; 4] = [
        InjectBug::DropMail,
        InjectBug::ReorderLane,
        InjectBug::LoseCommitted,
        InjectBug::DeleteOnQueue,
    ];

    pub fn parse(name: &str) -> Option<InjectBug> {
        match name {
            "drop-mail" => Some(InjectBug::DropMail),
            "reorder-lane" => Some(InjectBug::ReorderLane),
            "lose-committed" => Some(InjectBug::LoseCommitted),
            "drop-fanout-recipient" => Some(InjectBug::DropFanoutRecipient),
            "delete-on-queue" => Some(InjectBug::DeleteOnQueue),
            "skip-link-dedupe" => Some(InjectBug::SkipLinkDedupe),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            InjectBug::DropMail => "drop-mail",
            InjectBug::ReorderLane => "reorder-lane",
            InjectBug::LoseCommitted => "lose-committed",
            InjectBug::DropFanoutRecipient => "drop-fanout-recipient",
            InjectBug::DeleteOnQueue => "delete-on-queue",
            InjectBug::SkipLinkDedupe => "skip-link-dedupe",
        }
    }
}

/// The shape of one run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub shards: u16,
    pub clients: usize,
    /// Events processed in the active phase (faults on), before the quiet period; shard turns
    /// are not counted (see `world`).
    pub steps: u64,
    pub inject: Option<InjectBug>,
    /// Offline quota per user (small, so refusals happen).
    pub offline_max: usize,
    /// Virtual length of the quiet period.
    pub quiet_ms: u64,
    /// Let clients resume with stanzas unacknowledged and resend those above `<resumed h>`
    /// (XEP-0198 5; see `client::Client::resume_with_unacked`). On by default; off
    /// (`--no-resume-unacked`) clients abandon their unacked stanzas and bind afresh instead.
    pub resume_with_unacked: bool,
    /// Print every event to stderr (for replaying a failure by hand).
    pub trace: bool,
    /// K: contacts each client picks at random for its roster (0: no rosters, no presence
    /// updates). See `plan`.
    pub contacts: usize,
    /// G: rooms (0: no groups).
    pub groups: usize,
    /// Members per room.
    pub group_size: usize,
    /// Do not excuse a member's missing copy when its home shard's store refused a write
    /// while the message was in flight (see `groups`). On by default: the router reports such
    /// a copy to the sender with a `resource-constraint` error, which is what makes the
    /// message not owed; `--lenient-group-refusals` turns the old excuse back on.
    pub strict_group_refusals: bool,
    /// Share (per mille) of fresh logins that do not enable XEP-0198: their stored messages
    /// are deleted when the conn drains, not on `<a h>` (see `ledger` for what they are owed).
    pub no_sm_per_mille: u64,
    /// The driver's output cap per conn, also the router's `max_output_bytes`: a send past it
    /// into a non-empty queue is refused and the loop aborts the conn (see `driver`).
    pub max_output_bytes: usize,
    /// The router's XEP-0198 byte window (`sm_window_bytes`); `None`: a quarter of the cap,
    /// the ratio of the server's defaults (256 KiB of 1 MiB). Keep it at or below half the
    /// cap and above five stanzas (see the crate report on both).
    pub sm_window_bytes: Option<usize>,
    /// Share (per mille) of conns whose client reads slowly during the active phase (its
    /// bytes arrive at `slow_read_bytes_per_ms`), so output queues build up.
    pub slow_reader_per_mille: u64,
    /// Read rates of slow readers (bytes per virtual ms): drawn per conn in this range.
    pub slow_read_bytes_per_ms: (u64, u64),
    /// Chance (per mille, per active step without a kill) of a graceful stop: the loops'
    /// stop flag is set, they flush and commit, then the server starts again (see `shutdown`).
    pub graceful_stop_per_mille: u64,
    /// How long one log write takes (virtual ms, drawn per write): the loop keeps one write
    /// in flight and appends what arrives meanwhile to the next (group commit).
    pub log_write_ms: (u64, u64),
    /// The stores' `compact_min_bytes` (`None`: the store's default, 4 MiB, which the sim's
    /// logs never reach): small, the loops compact their logs while clients chat.
    pub compact_min_bytes: Option<u64>,
    /// Nodes of the cluster (1: a single node, no bridge, no bus: the traces of existing
    /// seeds are unchanged). Each node has `shards` shards; see `nodes` and `bus`.
    pub nodes: u16,
    /// The bus between the nodes' bridges: chance (per mille, per frame) that a frame is
    /// dropped, and that it is delivered twice.
    pub bus_drop_per_mille: u64,
    pub bus_dup_per_mille: u64,
    /// A frame's delay on the bus (virtual ms, drawn per frame and per copy).
    pub bus_delay_ms: (u64, u64),
    /// Chance (per mille) that a frame is held back long enough (`BUS_LATE_MS`) for later
    /// frames to pass it.
    pub bus_reorder_per_mille: u64,
    /// Chance (per mille, per active step without a whole restart) that one node is killed
    /// and restarts while the others run on (see `node_kill`). Only with `nodes` > 1; off by
    /// default (see the crate report: a restarted node stores again what its link had not
    /// acknowledged yet).
    pub node_restart_per_mille: u64,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            shards: 3,
            clients: 8,
            steps: 3_000,
            inject: None,
            offline_max: 30,
            quiet_ms: 8_000,
            trace: false,
            resume_with_unacked: true,
            contacts: 0,
            groups: 0,
            group_size: 4,
            strict_group_refusals: true,
            no_sm_per_mille: 333,
            max_output_bytes: 16 * 1024,
            sm_window_bytes: None,
            slow_reader_per_mille: 250,
            slow_read_bytes_per_ms: (1, 8),
            graceful_stop_per_mille: 0,
            log_write_ms: (0, 8),
            compact_min_bytes: None,
            nodes: 1,
            bus_drop_per_mille: 100,
            bus_dup_per_mille: 50,
            bus_delay_ms: (0, 20),
            bus_reorder_per_mille: 100,
            node_restart_per_mille: 0,
        }
    }
}
