//! Router configuration: the served domain, the account backend, shard count and limits.
//!
//! What it does not do: parse command lines or files (the server does that), validate the
//! domain (the server hands it over already validated and lowercased; the router builds a
//! `Jid` from it once, in `Router::new`), or configure the store (`--data-dir`,
//! `--durability` and `--offline-max` go to `rookery_store::StoreConfig`).
//!
//! Invariants: `shards >= 1` (a value of 0 is treated as 1 by `Router::new`, see there); with
//! `cluster`, its placement gives this node `shards` shards.

use crate::location::{NodeId, Placement};

/// How logins are checked (the account backend, see `accounts`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthBackend {
    /// password == lowercase hex HMAC-SHA256(secret, localpart). Stateless: the load-test default.
    Token { secret: Vec<u8> },
    /// Any non-empty password is accepted (loopback only; the server enforces that).
    Open,
    /// Accounts with stored SCRAM credentials (salt, iteration count, StoredKey, ServerKey per
    /// hash; never the password) in each user's home-shard store (`rookery accounts`).
    File,
}

/// Everything the router of one shard needs to know; shared by all shards through an `Arc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterConfig {
    /// The served domain, already validated and lowercased by the server.
    pub domain: String,
    pub auth: AuthBackend,
    /// Total number of shards (>= 1); decides every JID's home shard.
    pub shards: u16,
    /// Largest stanza (and largest partial-stanza buffer) the framer accepts.
    pub max_stanza_bytes: usize,
    /// A conn must be authenticated and bound this long after connecting, or it is closed.
    pub auth_timeout_ms: u64,
    /// A conn with no byte received for this long is closed; 0 disables the idle timeout.
    pub idle_timeout_ms: u64,
    /// How long a session with XEP-0198 resumption survives its stream (`--resume-timeout`);
    /// announced as `max` (in seconds, rounded up) in `<enabled/>`.
    pub resume_timeout_ms: u64,
    /// The group (XEP-0045) service's domain, `groups.<domain>` by default: rooms are
    /// `room@groups.<domain>`.
    pub groups_domain: String,
    /// Most members (affiliation member, admin or owner) a group may have; a join past it is
    /// refused (`--group-max-members`, WhatsApp's cap by default).
    pub group_max_members: usize,
    /// Most roster items per user (`--roster-max`); a roster set past it is refused.
    pub roster_max: usize,
    /// Presence stanzas a session may send per second on average (`--presence-rate`), and in a
    /// burst (`--presence-burst`); past it the stream is closed with policy-violation.
    pub presence_rate_per_s: u32,
    pub presence_burst: u32,
    /// Roles whose presence a new group broadcasts until its owner configures otherwise
    /// (`--group-presence-broadcast`; XEP-0045's default is every role).
    pub group_presence_broadcast: BroadcastRoles,
    /// The driver's output cap per conn (`--max-output-bytes`): a backlog is written only
    /// while a conn holds less than an eighth of it, a live stored message only while it
    /// holds less than half (see `delivery`).
    pub max_output_bytes: usize,
    /// XEP-0198 byte window (`--sm-window-bytes`): stored messages wait in the store while a
    /// session's unacked stanzas add up to this many bytes, and follow as `<a h>` frees room
    /// (data in flight, not memory: an unacked stored message is kept as its id).
    pub sm_window_bytes: usize,
    /// XEP-0198 hard byte cap of the unacked stanzas a session keeps in memory (not stored
    /// messages) (`--sm-max-unacked-bytes`); past it the stream is closed with
    /// policy-violation.
    pub sm_max_unacked_bytes: usize,
    /// How long mail that waits for an answer from another location may wait (a `Deliver`
    /// whose sender counts stanzas, a group message's fan-out): past it the sender gets a
    /// `remote-server-timeout` error for that stanza, which counts as handled.
    pub mail_timeout_ms: u64,
    /// The duplicate window of each home shard (`--dup-window-entries`): how many stored
    /// one-to-one messages' keys (sender, recipient, id) are remembered, oldest out first; a
    /// message with a remembered key is not stored again (see `home::dedupe`). 0: off.
    pub dup_window_entries: usize,
    /// The same window's byte budget (`--dup-window-bytes`): keys plus 64 bytes each.
    pub dup_window_bytes: usize,
    /// Most sessions (bound resources, attached or resumable) one user may have
    /// (`--max-resources`); a bind past it is refused with resource-constraint.
    pub max_resources: usize,
    /// Most conns not yet authenticated from one source address, per shard
    /// (`--max-unauth-per-address`); past it a new conn is closed with policy-violation.
    pub max_unauth_per_address: usize,
    /// Failed logins one source address may have per minute, per shard
    /// (`--auth-fail-per-address`); past it each failure is answered after
    /// `auth_fail_delay_ms`, past twice it the login is refused and the stream closed. 0: off.
    pub auth_fail_per_address: u32,
    /// Failed logins one account may have per ten minutes (`--auth-fail-per-account`),
    /// counted where its credentials are checked (its home shard for `--auth file`); same
    /// delay and refusal as per address. 0: off.
    pub auth_fail_per_account: u32,
    /// How long a throttled failure answer waits (`--auth-fail-delay-ms`); nothing more is
    /// read from the conn meanwhile.
    pub auth_fail_delay_ms: u64,
    /// Most addresses, and most accounts, the throttle counts per shard
    /// (`--auth-throttle-entries`); past it the oldest window is forgotten.
    pub auth_throttle_entries: usize,
    /// XEP-0077 in-band registration before authentication (`--allow-registration`, `--auth
    /// file` only): offered under TLS or on loopback, like PLAIN. Off by default.
    pub allow_registration: bool,
    /// Most groups one user may own on the groups' home shards (`--max-rooms-per-user`,
    /// counted per shard); a creation past it is refused with not-allowed.
    pub max_rooms_per_user: usize,
    /// Most groups homed on one shard (`--max-rooms-per-shard`); a creation past it is
    /// refused with resource-constraint.
    pub max_rooms_per_shard: usize,
    /// The XEP-0363 upload service, when the server runs its HTTP side (`--http-listen`).
    pub upload: Option<crate::UploadConfig>,
    /// The cluster this node is part of; `None` for a single node (placement by shard only).
    pub cluster: Option<ClusterConfig>,
    /// The XEP-0313 message archive (`--archive-days`); its `dir` is the base directory, each
    /// shard's archive is `<dir>/shard-N` (`None` dir: in memory). `None`: archiving off.
    pub archive: Option<rookery_store::archive::ArchiveConfig>,
    /// STARTTLS and whether TLS must come before authentication (`--tls-cert`, `--require-tls`).
    pub tls: TlsPolicy,
    /// XEP-0114 external components (`--component NAME=SECRET`): the domains served by a
    /// component connected with the secret, not by the server.
    pub components: Vec<ComponentConfig>,
    /// XEP-0357: at most one notification per registration this often (`--push-interval`);
    /// messages in between are counted into the next one.
    pub push_interval_ms: u64,
    /// XEP-0357: notifications carry the last message's body (`--push-include-body`; off by
    /// default: the app server and the push service would read it).
    pub push_include_body: bool,
}

/// One XEP-0114 external component: its domain and the shared secret of its handshake.
#[derive(Clone, PartialEq, Eq)]
pub struct ComponentConfig {
    /// The component's domain (lowercase), e.g. `push.example.com`.
    pub name: String,
    pub secret: String,
}

// The secret stays out of logs.
impl std::fmt::Debug for ComponentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentConfig")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What the stream layer offers and demands of TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsPolicy {
    /// STARTTLS is offered to conns in the clear (the server has a certificate).
    pub starttls: bool,
    /// Which conns must be under TLS before they may authenticate.
    pub required: TlsRequired,
}

impl TlsPolicy {
    /// No certificate: no STARTTLS, nothing required.
    pub const OFF: TlsPolicy = TlsPolicy {
        starttls: false,
        required: TlsRequired::Never,
    };
}

/// Conns that must negotiate TLS before SASL (`--require-tls`): RFC 6120 5.3.1's
/// mandatory-to-negotiate, announced with `<required/>` in the STARTTLS feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsRequired {
    Never,
    /// Every conn whose peer is not a loopback address (load tests and local tools on
    /// 127.0.0.1 or ::1 may stay in the clear).
    OffLoopback,
    /// Every conn.
    Always,
}

/// What a router of a cluster node knows of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `Placement::cluster` of this node (its `me()` is this node's id); its shard count for
    /// this node must equal `RouterConfig::shards`.
    pub placement: Placement,
    /// The address clients use for each node (the cluster file's `c2s`): a client that logs
    /// in on a node that is not its home gets `see-other-host` with its home node's address.
    pub nodes: Vec<(NodeId, String)>,
}

impl ClusterConfig {
    /// The client address of `node`, if listed.
    pub fn address_of(&self, node: NodeId) -> Option<&str> {
        self.nodes
            .iter()
            .find(|(id, _)| *id == node)
            .map(|(_, addr)| addr.as_str())
    }
}

/// A set of XEP-0045 roles (`muc#roomconfig_presencebroadcast`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BroadcastRoles {
    pub moderator: bool,
    pub participant: bool,
    pub visitor: bool,
}

impl BroadcastRoles {
    pub const ALL: BroadcastRoles = BroadcastRoles {
        moderator: true,
        participant: true,
        visitor: true,
    };

    /// `none`, `all`, or a comma-separated list of moderator, participant, visitor.
    pub fn parse(spec: &str) -> Option<BroadcastRoles> {
        let spec = spec.trim().to_ascii_lowercase();
        let mut roles = BroadcastRoles {
            moderator: false,
            participant: false,
            visitor: false,
        };
        match spec.as_str() {
            "none" => return Some(roles),
            "all" => return Some(BroadcastRoles::ALL),
            _ => {}
        }
        for role in spec.split(',').map(str::trim) {
            match role {
                "moderator" => roles.moderator = true,
                "participant" => roles.participant = true,
                "visitor" => roles.visitor = true,
                _ => return None,
            }
        }
        Some(roles)
    }
}

impl RouterConfig {
    pub const DEFAULT_MAX_STANZA_BYTES: usize = 65_536;
    pub const DEFAULT_AUTH_TIMEOUT_MS: u64 = 10_000;
    pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 300_000;
    pub const DEFAULT_RESUME_TIMEOUT_MS: u64 = 300_000;
    pub const DEFAULT_GROUP_MAX_MEMBERS: usize = 1024;
    pub const DEFAULT_ROSTER_MAX: usize = 10_000;
    pub const DEFAULT_PRESENCE_RATE_PER_S: u32 = 20;
    /// A client subscribing to a whole address book at once sends about two presence stanzas
    /// per contact; 400 lets a 200-contact setup through, and a flood still stops in seconds.
    pub const DEFAULT_PRESENCE_BURST: u32 = 400;
    /// The driver's default (`rookery_io::Limits::max_output_bytes`).
    pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 1 << 20;
    pub const DEFAULT_SM_WINDOW_BYTES: usize = crate::home::sm::SM_DEFAULT_WINDOW_BYTES;
    pub const DEFAULT_SM_MAX_UNACKED_BYTES: usize = crate::home::sm::SM_DEFAULT_MAX_UNACKED_BYTES;
    /// A phone, a desktop, a browser and a few more (WhatsApp links 4 devices to a phone).
    pub const DEFAULT_MAX_RESOURCES: usize = 16;
    /// Generous for NAT and for load generators behind one address; a flood still stops.
    pub const DEFAULT_MAX_UNAUTH_PER_ADDRESS: usize = 1_024;
    /// A user mistyping a password a few times is never slowed; a guesser is, at once.
    pub const DEFAULT_AUTH_FAIL_PER_ADDRESS: u32 = 5;
    /// Twice the address budget over ten times the window: an account guessed at from many
    /// addresses is slowed too, its owner (a few typos) is not.
    pub const DEFAULT_AUTH_FAIL_PER_ACCOUNT: u32 = 10;
    pub const DEFAULT_AUTH_FAIL_DELAY_MS: u64 = 2_000;
    /// 16,384 addresses and as many accounts: about 2.2 MB per shard when both are full.
    pub const DEFAULT_AUTH_THROTTLE_ENTRIES: usize = 16_384;
    pub const DEFAULT_MAX_ROOMS_PER_USER: usize = 100;
    pub const DEFAULT_MAX_ROOMS_PER_SHARD: usize = 1_000_000;
    /// Lanes inside a node never lose mail; this bounds the wait on a lost one.
    pub const DEFAULT_MAIL_TIMEOUT_MS: u64 = 30_000;
    /// At a sustained 1,000 stored messages per second per shard, 65,536 keys cover about a
    /// minute: the 30 s mail timeout plus a client's resend.
    pub const DEFAULT_DUP_WINDOW_ENTRIES: usize = 65_536;
    /// 65,536 keys of about 100 bytes plus their 64-byte overhead.
    pub const DEFAULT_DUP_WINDOW_BYTES: usize = 12 << 20;

    /// XEP-0357: one notification per registration per 10 s at most.
    pub const DEFAULT_PUSH_INTERVAL_MS: u64 = 10_000;

    /// A config with the documented defaults for one shard.
    pub fn new(domain: &str, auth: AuthBackend) -> RouterConfig {
        RouterConfig {
            domain: domain.to_owned(),
            auth,
            shards: 1,
            max_stanza_bytes: Self::DEFAULT_MAX_STANZA_BYTES,
            auth_timeout_ms: Self::DEFAULT_AUTH_TIMEOUT_MS,
            idle_timeout_ms: Self::DEFAULT_IDLE_TIMEOUT_MS,
            resume_timeout_ms: Self::DEFAULT_RESUME_TIMEOUT_MS,
            groups_domain: format!("groups.{domain}"),
            group_max_members: Self::DEFAULT_GROUP_MAX_MEMBERS,
            roster_max: Self::DEFAULT_ROSTER_MAX,
            presence_rate_per_s: Self::DEFAULT_PRESENCE_RATE_PER_S,
            presence_burst: Self::DEFAULT_PRESENCE_BURST,
            group_presence_broadcast: BroadcastRoles::ALL,
            max_output_bytes: Self::DEFAULT_MAX_OUTPUT_BYTES,
            sm_window_bytes: Self::DEFAULT_SM_WINDOW_BYTES,
            sm_max_unacked_bytes: Self::DEFAULT_SM_MAX_UNACKED_BYTES,
            mail_timeout_ms: Self::DEFAULT_MAIL_TIMEOUT_MS,
            dup_window_entries: Self::DEFAULT_DUP_WINDOW_ENTRIES,
            dup_window_bytes: Self::DEFAULT_DUP_WINDOW_BYTES,
            max_resources: Self::DEFAULT_MAX_RESOURCES,
            max_unauth_per_address: Self::DEFAULT_MAX_UNAUTH_PER_ADDRESS,
            auth_fail_per_address: Self::DEFAULT_AUTH_FAIL_PER_ADDRESS,
            auth_fail_per_account: Self::DEFAULT_AUTH_FAIL_PER_ACCOUNT,
            auth_fail_delay_ms: Self::DEFAULT_AUTH_FAIL_DELAY_MS,
            auth_throttle_entries: Self::DEFAULT_AUTH_THROTTLE_ENTRIES,
            allow_registration: false,
            max_rooms_per_user: Self::DEFAULT_MAX_ROOMS_PER_USER,
            max_rooms_per_shard: Self::DEFAULT_MAX_ROOMS_PER_SHARD,
            upload: None,
            cluster: None,
            archive: None,
            tls: TlsPolicy::OFF,
            components: Vec::new(),
            push_interval_ms: Self::DEFAULT_PUSH_INTERVAL_MS,
            push_include_body: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_values() {
        let config = RouterConfig::new("example.com", AuthBackend::Open);
        assert_eq!(config.domain, "example.com");
        assert_eq!(config.shards, 1);
        assert_eq!(config.max_stanza_bytes, 65_536);
        assert_eq!(config.auth_timeout_ms, 10_000);
        assert_eq!(config.idle_timeout_ms, 300_000);
        assert_eq!(config.resume_timeout_ms, 300_000);
        assert_eq!(config.groups_domain, "groups.example.com");
        assert_eq!(config.group_max_members, 1024);
        assert_eq!(config.roster_max, 10_000);
        assert_eq!(config.group_presence_broadcast, BroadcastRoles::ALL);
    }

    #[test]
    fn broadcast_roles_parse() {
        let moderators = BroadcastRoles::parse(" Moderator ").expect("valid");
        assert!(moderators.moderator && !moderators.participant && !moderators.visitor);
        let two = BroadcastRoles::parse("participant,visitor").expect("valid");
        assert!(!two.moderator && two.participant && two.visitor);
        assert_eq!(BroadcastRoles::parse("all"), Some(BroadcastRoles::ALL));
        assert!(BroadcastRoles::parse("none").is_some_and(|r| !r.moderator));
        assert_eq!(BroadcastRoles::parse("owners"), None);
    }
}
