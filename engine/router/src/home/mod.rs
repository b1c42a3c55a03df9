//! The home layer: what a user's home shard keeps and does for the users it homes, grouped
//! by concern: XEP-0198 (`sm`), presence and rosters (`presence`), groups and fan-out
//! (`groups`), RFC 6121 routing (`routing`), server-answered stanzas (`local`),
//! store-and-forward (`offline`, `delivery`, `delay`, `dedupe`), the XEP-0363 upload service
//! (`upload`), XEP-0077 password change (`register`), XEP-0114 components (`components`),
//! XEP-0357 push notifications (`push`), XEP-0280 message carbons (`carbons`), XEP-0352
//! client state indication (`csi`), what the server answers for an account's bare JID (PEP,
//! vCard, private storage, last activity: `account`).
//!
//! [`Home`] owns the tables these modules work on (directory, XEP-0198 sessions, store, commit
//! waiters, deliveries, presences, rooms, gathers, mail deadlines, scratch buffers, placement,
//! the stats it updates, the clocks `Router` passes in). `Router` holds it beside the stream
//! layer's conn slab, so the two borrow apart: home methods that still read per-conn state
//! (today only the session's full JID, and a conn's phase) take `conns: &ConnSlab`;
//! the rest of a session's state is its `Session` (`sessions`), keyed by slot.
//!
//! What it does not do: streams (framing, SASL, binding: the stream layer, `stream`), timers
//! of conns (the router's wheel) or unauthenticated conns.
//!
//! Invariants: see each submodule; `now_ms` only moves forward (`Router::advance_clock`).

use std::collections::VecDeque;

use rookery_proto::Jid;
use rookery_store::Store;

use crate::config::RouterConfig;
use crate::deadlines::MailDeadlines;
use crate::home::components::Components;
use crate::home::dedupe::DupWindow;
use crate::home::delivery::Deliveries;
use crate::home::groups::fanout::Gathers;
use crate::home::groups::muc::{RoomAction, Rooms};
use crate::home::offline::Waiter;
use crate::home::presence::departures::Departures;
use crate::home::presence::table::PresenceTable;
use crate::home::push::Push;
use crate::home::sessions::Sessions;
use crate::home::sm::table::SmTable;
use crate::home::upload::UploadService;
use crate::location::{Location, Placement};
use crate::maps::HashState;
use crate::random::SecureRandom;
use crate::sessions::Directory;
use crate::stats::RouterStats;

pub(crate) mod account;
pub(crate) mod admin_accounts;
pub(crate) mod blocking;
pub(crate) mod carbons;
pub(crate) mod components;
pub(crate) mod csi;
pub(crate) mod dedupe;
pub(crate) mod delay;
pub(crate) mod delivery;
pub(crate) mod groups;
pub(crate) mod local;
pub(crate) mod mam;
pub(crate) mod offline;
pub(crate) mod presence;
pub(crate) mod push;
pub(crate) mod register;
pub(crate) mod routing;
pub(crate) mod sessions;
pub(crate) mod sm;
pub(crate) mod upload;

/// What the XEP-0198 resumption-id key is derived with from the router's key.
pub(crate) const SM_RESUME_KEY_LABEL: &[u8] = b"xep-0198 resume ids";

/// The home layer of one shard: the users homed here, their sessions' routing state, their
/// stored messages, presence and rooms.
#[derive(Debug)]
pub(crate) struct Home {
    pub domain: Jid,
    /// The group service's domain (`groups.<domain>`), as the rooms serve it.
    pub groups: Jid,
    /// This router's shard, and where every JID is homed.
    pub location: Location,
    pub placement: Placement,
    pub directory: Directory,
    /// Per bound session, by slot: conn key, presence, budget, XEP-0198 token, resumption.
    pub sessions: Sessions,
    pub stats: RouterStats,
    /// Scratch for bounces (stanza errors routed back to a sender); reused, never shrunk.
    /// Taken while the bounce is routed: routing needs `&mut Home`, and a bounce is never
    /// bounced again, so one buffer suffices.
    pub bounce: Vec<u8>,
    /// Scratch for stored messages written with a delay stamp; reused, never shrunk.
    pub delayed: Vec<u8>,
    /// Scratch for XEP-0280 carbon copies; reused, never shrunk.
    pub carbon: Vec<u8>,
    /// This shard's offline queues and log.
    pub store: Store,
    /// Sessions with XEP-0198 enabled, attached or detached.
    pub sm: SmTable,
    /// Senders to tell once the store commits, in commit order.
    pub waiters: VecDeque<Waiter>,
    /// Presence of this shard's sessions (last broadcast, rooms joined).
    pub presences: PresenceTable,
    /// Rooms left whose answer has not come back: older presence from them is stale.
    pub departures: Departures,
    /// Flow-controlled delivery of stored messages (backlogs, unconfirmed writes, log reads).
    pub deliveries: Deliveries,
    /// Groups homed on this shard.
    pub rooms: Rooms,
    /// Scratch for what rooms ask; reused.
    pub room_actions: Vec<RoomAction>,
    /// Fan-outs waiting for their destination shards (XEP-0198 group messages).
    pub gathers: Gathers,
    /// Mail waiting for an answer from another location, by deadline.
    pub deadlines: MailDeadlines,
    /// Keys of the one-to-one messages stored lately: resends are not stored again.
    pub dups: DupWindow,
    /// Conns whose unacked queue overflowed while routing: closed after the current call.
    pub doomed: Vec<u32>,
    pub roster_max: usize,
    pub sm_window_bytes: usize,
    pub sm_max_unacked_bytes: usize,
    pub max_output_bytes: usize,
    /// The latest time any entry point was given; deep code reads it from here.
    pub now_ms: u64,
    /// Unix ms minus `now_ms`, from `Router::set_wall_clock`.
    pub wall_offset_ms: i64,
    /// Unpredictable bytes (slot tokens, nonces): keyed by the server from the OS.
    pub random: SecureRandom,
    /// The XEP-0363 upload service and this shard's quota ledger, when configured.
    pub upload: Option<UploadService>,
    /// The domain's disco#items answer (the group service, the upload service).
    pub disco_items: Box<[u8]>,
    /// The XEP-0313 message archive of this shard, when `--archive-days` is not 0.
    pub mam: Option<mam::Archiver>,
    /// Why the archive did not open (the server refuses to start with it).
    pub mam_error: Option<String>,
    /// XEP-0114 components: the configured names, and those connected here.
    pub components: Components,
    /// XEP-0357 notifications waiting for their interval.
    pub push: Push,
    /// Room occupants' real JIDs, for users with a XEP-0191 blocklist (see `blocking`).
    pub seen_occupants: blocking::SeenOccupants,
}

impl Home {
    /// The home layer of the shard at `location`, owning its opened `store` and loaded
    /// `rooms`; the tables are keyed with `hash`.
    pub fn new(
        config: &RouterConfig,
        (domain, location, placement): (Jid, Location, Placement),
        store: Store,
        rooms: Rooms,
        (hash, random): (HashState, SecureRandom),
    ) -> Home {
        let resume_key = random.derive_key(SM_RESUME_KEY_LABEL);
        let upload = config.upload.as_ref().map(UploadService::new);
        let upload_jid = upload.as_ref().map(|u| &u.service);
        let disco_items = upload::domain_items(rooms.service(), upload_jid);
        let (mam, mam_error) = mam::Archiver::open(config.archive.as_ref(), location.shard.0);
        Home {
            mam,
            mam_error,
            random,
            upload,
            disco_items,
            components: Components::new(&config.components, hash),
            push: Push::new(config.push_interval_ms, config.push_include_body, hash),
            domain,
            groups: rooms.service().clone(),
            location,
            placement,
            directory: Directory::new(hash),
            sessions: Sessions::new(hash),
            stats: RouterStats::default(),
            bounce: Vec::new(),
            delayed: Vec::new(),
            carbon: Vec::new(),
            store,
            sm: SmTable::new(hash, &resume_key),
            waiters: VecDeque::new(),
            presences: PresenceTable::new(hash),
            departures: Departures::new(hash, config.mail_timeout_ms),
            deliveries: Deliveries::new(hash),
            rooms,
            room_actions: Vec::new(),
            gathers: Gathers::new(hash),
            deadlines: MailDeadlines::new(config.mail_timeout_ms),
            dups: DupWindow::new(hash, config.dup_window_entries, config.dup_window_bytes),
            doomed: Vec::new(),
            roster_max: config.roster_max,
            sm_window_bytes: config.sm_window_bytes,
            // Everything kept is written at once after a resumption: it must fit (the server
            // checks this at start; a smaller cap in a test or the simulator is clamped here).
            sm_max_unacked_bytes: config.sm_max_unacked_bytes.min(config.max_output_bytes / 2),
            max_output_bytes: config.max_output_bytes,
            now_ms: 0,
            wall_offset_ms: 0,
            seen_occupants: blocking::SeenOccupants::default(),
        }
    }

    /// Wall-clock Unix ms at the latest `now_ms`.
    pub fn wall_ms(&self) -> u64 {
        let wall = self.now_ms as i64 + self.wall_offset_ms;
        wall.max(0) as u64
    }
}
