//! One room's state: configuration, subject, affiliations (who belongs to the group) and
//! occupants (which sessions are in it now), with the cached fan-out plans built from them.
//!
//! What it does not do: answer stanzas (see `occupants`, `messages`, `admin`, `owner`) or
//! persist anything (see `persist`).
//!
//! Invariants: `affiliations` holds only owner/admin/member entries (none is absence), keyed
//! by bare JID; banned users (outcast) are in `outcasts` only, never in `affiliations` (they
//! are not members: no message reaches them) and never occupants; every occupant's sessions are listed in `sessions` and no session belongs to
//! two occupants; an occupant's sessions all share its bare JID; the plans are `None`
//! whenever occupants or affiliations changed since they were built, and are rebuilt only on
//! first use (so a message reuses them: one `Arc` clone, no rebuild).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rookery_proto::Jid;

use crate::home::groups::fanout::FanoutPlan;
use crate::location::Placement;
use crate::mail::Recipient;

/// Longest room name kept (bytes); a longer one in a configuration form is refused.
pub(crate) const MAX_NAME_BYTES: usize = 256;
/// Longest subject kept (bytes); a longer subject change is refused.
pub(crate) const MAX_SUBJECT_BYTES: usize = 1024;
/// Most banned users one room keeps; a ban past it is refused (`not-allowed`).
pub(crate) const MAX_OUTCASTS: usize = 1000;
/// Largest presence payload (`<show/>`, `<status/>`, caps ...) kept per occupant and repeated
/// to every later joiner; a larger one is dropped (the occupant's presence is sent bare).
pub(crate) const MAX_PRESENCE_PAYLOAD_BYTES: usize = 4096;

/// A user's long-term standing in a room (XEP-0045 5.2). `None` is never stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Affiliation {
    Owner,
    Admin,
    Member,
    /// Banned (XEP-0045 9.1): may not join; kept apart from the members (`Room::outcasts`).
    Outcast,
    None,
}

impl Affiliation {
    pub fn as_str(self) -> &'static str {
        match self {
            Affiliation::Owner => "owner",
            Affiliation::Admin => "admin",
            Affiliation::Member => "member",
            Affiliation::Outcast => "outcast",
            Affiliation::None => "none",
        }
    }

    /// The affiliations of XEP-0045 5.2.
    pub fn parse(value: &str) -> Option<Affiliation> {
        match value {
            "owner" => Some(Affiliation::Owner),
            "admin" => Some(Affiliation::Admin),
            "member" => Some(Affiliation::Member),
            "outcast" => Some(Affiliation::Outcast),
            "none" => Some(Affiliation::None),
            _ => None,
        }
    }

    /// The role an occupant with this affiliation gets (no moderated rooms, so no visitors).
    pub fn role(self) -> Role {
        match self {
            Affiliation::Owner | Affiliation::Admin => Role::Moderator,
            Affiliation::Member | Affiliation::None => Role::Participant,
            Affiliation::Outcast => Role::None,
        }
    }

    /// Owner, admin or member: belongs to the group (counted by `max_members`).
    pub fn is_member(self) -> bool {
        matches!(
            self,
            Affiliation::Owner | Affiliation::Admin | Affiliation::Member
        )
    }
}

/// An occupant's privileges while in the room (XEP-0045 5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Moderator,
    Participant,
    Visitor,
    /// Out of the room (the role of a leaver's last presence).
    None,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Moderator => "moderator",
            Role::Participant => "participant",
            Role::Visitor => "visitor",
            Role::None => "none",
        }
    }

    pub fn parse(value: &str) -> Option<Role> {
        match value {
            "moderator" => Some(Role::Moderator),
            "participant" => Some(Role::Participant),
            "visitor" => Some(Role::Visitor),
            _ => None,
        }
    }

    fn bit(self) -> u8 {
        match self {
            Role::Moderator => 1,
            Role::Participant => 2,
            Role::Visitor => 4,
            Role::None => 0,
        }
    }
}

/// The roles whose presence is broadcast (`muc#roomconfig_presencebroadcast`), as bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RoleSet(pub u8);

impl RoleSet {
    pub const ALL: RoleSet = RoleSet(1 | 2 | 4);

    pub fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    pub fn insert(&mut self, role: Role) {
        self.0 |= role.bit();
    }

    pub fn roles(self) -> impl Iterator<Item = Role> {
        [Role::Moderator, Role::Participant, Role::Visitor]
            .into_iter()
            .filter(move |&role| self.contains(role))
    }
}

/// What the owner configures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RoomConfig {
    /// Natural-language name; empty when unset.
    pub name: Box<str>,
    pub members_only: bool,
    /// Most occupants (distinct nicks) at once; clamped to the service's member cap on use.
    pub max_users: u32,
    pub broadcast: RoleSet,
}

impl RoomConfig {
    pub fn new(max_members: usize) -> RoomConfig {
        RoomConfig {
            name: "".into(),
            members_only: false,
            max_users: u32::try_from(max_members).unwrap_or(u32::MAX),
            broadcast: RoleSet::ALL,
        }
    }

    /// The configuration of a room the service creates: `new`, broadcasting `roles`.
    pub fn created(max_members: usize, roles: crate::config::BroadcastRoles) -> RoomConfig {
        let mut broadcast = RoleSet(0);
        for (wanted, role) in [
            (roles.moderator, Role::Moderator),
            (roles.participant, Role::Participant),
            (roles.visitor, Role::Visitor),
        ] {
            if wanted {
                broadcast.insert(role);
            }
        }
        RoomConfig {
            broadcast,
            ..RoomConfig::new(max_members)
        }
    }
}

/// The room's subject and the nick that set it (both empty when never set).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Subject {
    pub text: Box<str>,
    pub nick: Box<str>,
}

/// A user with an affiliation.
#[derive(Clone, Debug)]
pub(crate) struct Affiliated {
    pub jid: Jid,
    pub affiliation: Affiliation,
}

/// One nick in the room, held by one or more sessions of one user (XEP-0045 multi-session).
#[derive(Clone, Debug)]
pub(crate) struct Occupant {
    /// `room@service/nick`.
    pub jid: Jid,
    pub bare: Jid,
    /// Real full JIDs, in join order; the first is the one shown in `jid='...'`.
    pub sessions: Vec<Jid>,
    pub role: Role,
    /// Children of the occupant's last available presence, the MUC join element removed.
    pub payload: Box<[u8]>,
}

impl Occupant {
    pub fn nick(&self) -> &str {
        self.jid.resource().unwrap_or_default()
    }
}

/// One room.
#[derive(Debug)]
pub(crate) struct Room {
    /// `room@service`.
    pub jid: Jid,
    pub config: RoomConfig,
    pub subject: Subject,
    pub affiliations: BTreeMap<Box<str>, Affiliated>,
    /// Banned users by bare JID (at most `MAX_OUTCASTS`).
    pub outcasts: BTreeMap<Box<str>, Jid>,
    /// By nick.
    pub occupants: BTreeMap<Box<str>, Occupant>,
    /// Real full JID -> nick (a B-tree: no hash state per room, and a room has at most
    /// `group_max_members` occupants).
    pub sessions: BTreeMap<Box<str>, Box<str>>,
    message_plan: Option<Arc<FanoutPlan>>,
    presence_plan: Option<Arc<FanoutPlan>>,
    /// Set by its destruction; the shard's room table drops it after the stanza.
    pub destroyed: bool,
}

impl Room {
    pub fn new(jid: Jid, config: RoomConfig) -> Room {
        Room {
            jid,
            config,
            subject: Subject::default(),
            affiliations: BTreeMap::new(),
            outcasts: BTreeMap::new(),
            occupants: BTreeMap::new(),
            sessions: BTreeMap::new(),
            message_plan: None,
            presence_plan: None,
            destroyed: false,
        }
    }

    pub fn affiliation(&self, bare: &str) -> Affiliation {
        if self.outcasts.contains_key(bare) {
            return Affiliation::Outcast;
        }
        self.affiliations
            .get(bare)
            .map_or(Affiliation::None, |a| a.affiliation)
    }

    /// Members of any affiliation (the number capped by `max_members`).
    /// Whether `bare` may see what the room holds (its name, subject, occupants): anyone in
    /// an open room, only affiliated users in a members-only one.
    pub fn visible_to(&self, bare: &str) -> bool {
        !self.config.members_only || self.affiliation(bare).is_member()
    }

    pub fn member_count(&self) -> usize {
        self.affiliations.len()
    }

    pub fn owner_count(&self) -> usize {
        let owners = self.affiliations.values();
        owners
            .filter(|a| a.affiliation == Affiliation::Owner)
            .count()
    }

    /// Sets (or, with `None`, removes) a user's affiliation in memory.
    pub fn set_affiliation(&mut self, user: &Jid, affiliation: Affiliation) {
        let bare = user.to_bare();
        self.outcasts.remove(bare.as_str());
        if affiliation == Affiliation::Outcast {
            self.affiliations.remove(bare.as_str());
            self.outcasts.insert(bare.as_str().into(), bare);
        } else if affiliation == Affiliation::None {
            self.affiliations.remove(bare.as_str());
        } else {
            let key: Box<str> = bare.as_str().into();
            let entry = Affiliated {
                jid: bare,
                affiliation,
            };
            self.affiliations.insert(key, entry);
        }
        self.invalidate();
    }

    /// The nick of the occupant a session belongs to.
    pub fn nick_of_session(&self, full: &str) -> Option<&str> {
        self.sessions.get(full).map(|nick| &**nick)
    }

    /// The occupant a user (any session) holds.
    pub fn occupant_of_user(&self, bare: &str) -> Option<&Occupant> {
        self.occupants.values().find(|o| o.bare.as_str() == bare)
    }

    /// Adds `session` to the occupant `jid` (`room/nick`), creating it if needed.
    pub fn add_session(&mut self, jid: &Jid, session: &Jid, role: Role, payload: Box<[u8]>) {
        let nick: Box<str> = jid.resource().unwrap_or_default().into();
        let occupant = self
            .occupants
            .entry(nick.clone())
            .or_insert_with(|| Occupant {
                jid: jid.clone(),
                bare: session.to_bare(),
                sessions: Vec::new(),
                role,
                payload: Box::default(),
            });
        occupant.sessions.push(session.clone());
        occupant.payload = payload;
        self.sessions.insert(session.as_str().into(), nick);
        self.invalidate();
    }

    /// Removes one session; returns the occupant if it was its last session.
    pub fn remove_session(&mut self, session: &str) -> Option<Occupant> {
        let nick = self.sessions.remove(session)?;
        self.invalidate();
        let occupant = self.occupants.get_mut(&nick)?;
        occupant.sessions.retain(|s| s.as_str() != session);
        if occupant.sessions.is_empty() {
            return self.occupants.remove(&nick);
        }
        None
    }

    /// Removes an occupant and all its sessions.
    pub fn remove_occupant(&mut self, nick: &str) -> Option<Occupant> {
        let occupant = self.occupants.remove(nick)?;
        for session in &occupant.sessions {
            self.sessions.remove(session.as_str());
        }
        self.invalidate();
        Some(occupant)
    }

    /// Occupants and members changed: the plans are rebuilt on next use.
    pub fn invalidate(&mut self) {
        self.message_plan = None;
        self.presence_plan = None;
    }

    /// Every occupant session, each occupant's followed by its `Member` entry when it is a
    /// member (its other online devices get the message too: `Router::deliver_fanout` reads a
    /// `Member` right after sessions of the same user as "present"), then every member with no
    /// occupant in the room (stored for it).
    pub fn message_recipients(&self) -> Vec<Recipient> {
        let mut present: BTreeSet<&str> = BTreeSet::new();
        let capacity = 2 * self.affiliations.len() + self.sessions.len();
        let mut recipients = Vec::with_capacity(capacity);
        for occupant in self.occupants.values() {
            present.insert(occupant.bare.as_str());
            let sessions = occupant.sessions.iter().cloned();
            recipients.extend(sessions.map(Recipient::Session));
            if let Some(member) = self.affiliations.get(occupant.bare.as_str()) {
                recipients.push(Recipient::Member(member.jid.clone()));
            }
        }
        for (bare, affiliated) in &self.affiliations {
            if !present.contains(&**bare) {
                recipients.push(Recipient::Member(affiliated.jid.clone()));
            }
        }
        recipients
    }

    /// Every occupant session.
    pub fn presence_recipients(&self) -> Vec<Recipient> {
        let sessions = self.occupants.values().flat_map(|o| o.sessions.iter());
        sessions.cloned().map(Recipient::Session).collect()
    }

    /// The plan of a groupchat message, built once per membership change.
    pub fn message_plan(&mut self, placement: &Placement) -> Arc<FanoutPlan> {
        if let Some(plan) = &self.message_plan {
            return Arc::clone(plan);
        }
        let plan = Arc::new(FanoutPlan::build(self.message_recipients(), placement));
        self.message_plan = Some(Arc::clone(&plan));
        plan
    }

    /// The plan of an occupant's presence (every occupant session).
    pub fn presence_plan(&mut self, placement: &Placement) -> Arc<FanoutPlan> {
        if let Some(plan) = &self.presence_plan {
            return Arc::clone(plan);
        }
        let plan = Arc::new(FanoutPlan::build(self.presence_recipients(), placement));
        self.presence_plan = Some(Arc::clone(&plan));
        plan
    }
}
