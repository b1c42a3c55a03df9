//! Mail between routers (`Mail`) and its wire form.
//!
//! What it does: the values one router sends another (a stanza for a user homed there, the
//! news that a stanza was handled, a fan-out and its answer) and a versioned byte encoding of
//! every one of them (`Mail::encode`, `Mail::decode`), for the cluster's transport between
//! nodes. Inside a node mail moves as values through the mailbox lanes (no encoding).
//!
//! What it does not do: carry a conn (`Handoff` holds a framer and travels with a socket fd,
//! so it stays in-process: see `effects`), or transport anything.
//!
//! Invariants: `Mail` is `Send`. A `Fanout` carrying a `GatherRef` is answered by exactly one
//! `Gathered` to its origin, a `Deliver` carrying an `AckRef` by exactly one `Committed` (at
//! once when nothing had to be stored, else once the home shard's store committed it). The
//! origin stops waiting for either after `RouterConfig::mail_timeout_ms` (the sender gets a
//! `remote-server-timeout` error, see `mail_timeouts`) and ignores a later answer.
//! `decode(encode(m)) == m` for every mail; decoding any bytes returns a value or an error,
//! never panics, and never allocates more than the input's length.
//!
//! Format, version 1 (integers little-endian): `version:u8 tag:u8 body`. Tags: 1 Deliver
//! (`to from kind ty stanza ack?`), 2 Committed (`ack`), 3 Fanout (`from kind ty stanza
//! count:u32 (rtag:u8 jid)* gather?`), 4 Gathered (`gather refused:u32`), 5 NodeFanout
//! (`from kind ty stanza parts:u16 (shard:u16 count:u32 (rtag:u8 jid)*)* gather?`; added
//! without a version bump: a node of an older release counts it as a bad mail). A JID is `len:u16`
//! then UTF-8, bytes are `len:u32` then the bytes, an option is a flag byte (0/1) then the
//! value, a location `node:u16 shard:u16`, an `AckRef` `location session:u64 stanza:u64`, a
//! `GatherRef` `location id:u64`. Nothing may follow the body.

use std::fmt;
use std::sync::Arc;

use rookery_proto::{Jid, StanzaKind};

use crate::effects::StanzaType;
use crate::home::sm::SessionRef;
use crate::location::{Location, NodeId, ShardId};

/// The wire format version `encode` writes and `decode` reads.
pub const MAIL_VERSION: u8 = 1;

/// A message between the routers of two shards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mail {
    /// A stanza for a JID whose home shard is the receiver, already stamped with `from`.
    Deliver {
        /// The recipient as addressed (bare or full), parsed.
        to: Jid,
        /// The sender's full JID (the stamped `from`).
        from: Jid,
        kind: StanzaKind,
        /// The `type` attribute, classified by the sender's shard.
        ty: StanzaType,
        /// The stanza bytes, exactly as they go on the recipient's wire.
        stanza: Box<[u8]>,
        /// Set when the sender counts stanzas (XEP-0198): whom to tell once it is handled.
        ack: Option<AckRef>,
    },
    /// A stanza carrying `ack` was handled on its recipient's home shard (stored and
    /// committed, or not needing storage): the sender's handled count may advance over it.
    Committed(AckRef),
    /// One stanza for many recipients homed on the receiver (presence broadcast to contacts,
    /// a group's message to its members): one mail per destination shard, not per recipient.
    Fanout(Box<Fanout>),
    /// One stanza for recipients on several shards of the receiving node (a fan-out toward
    /// another node crosses the bus once, not once per shard): the receiving node's bridge,
    /// or the router it reaches, splits it into one `Fanout` per shard (`NodeFanout::split`).
    /// A gather counts each part as one location, so each part answers one `Gathered`.
    NodeFanout(Box<NodeFanout>),
    /// The receiver's part of fan-out `gather` is handled (copies stored and committed);
    /// `refused` copies could not be stored (offline quota, store unavailable).
    Gathered { gather: GatherRef, refused: u32 },
}

/// A stanza fanned out to the recipients of one destination shard. The stanza and the
/// recipient list are shared (`Arc`) by every shard's mail and, for a group, by every message
/// until its membership changes: a fan-out copies neither per shard nor per recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fanout {
    /// The stamped `from`: the user's full JID, or the group's `room@groups/nick`.
    pub from: Jid,
    pub kind: StanzaKind,
    pub ty: StanzaType,
    /// The stanza with `from` stamped and no `to`: the destination stamps `to` per recipient.
    pub stanza: Arc<[u8]>,
    /// Recipients homed on the destination shard.
    pub recipients: Arc<[Recipient]>,
    /// Set for a group message, whose sender must learn when every shard stored its copies
    /// (its XEP-0198 ack) and whether any was refused (an error): answered by exactly one
    /// `Gathered` once this shard has handled it.
    pub gather: Option<GatherRef>,
}

/// A fan-out's parts for several shards of one node, sharing the stanza (see
/// `Mail::NodeFanout`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFanout {
    pub from: Jid,
    pub kind: StanzaKind,
    pub ty: StanzaType,
    pub stanza: Arc<[u8]>,
    /// Each destination shard of the receiving node with its recipients, shards distinct.
    pub parts: Vec<(ShardId, Arc<[Recipient]>)>,
    pub gather: Option<GatherRef>,
}

impl NodeFanout {
    /// One `Fanout` per part, for its shard (the stanza is shared, not copied).
    pub fn split(&self) -> impl Iterator<Item = (ShardId, Fanout)> + '_ {
        self.parts.iter().map(|(shard, recipients)| {
            let fanout = Fanout {
                from: self.from.clone(),
                kind: self.kind,
                ty: self.ty,
                stanza: Arc::clone(&self.stanza),
                recipients: Arc::clone(recipients),
                gather: self.gather,
            };
            (*shard, fanout)
        })
    }
}

/// One recipient of a fan-out, and how it is delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipient {
    /// Every available resource of this bare JID (presence broadcast to a contact).
    Available(Jid),
    /// The session of this full JID (a group occupant). A message whose session is gone is
    /// stored for the bare JID instead, like a member's.
    Session(Jid),
    /// A group member who is not in the room: a message is stored and forwarded (written now
    /// to available resources, else flushed at the next login); presence is not sent.
    Member(Jid),
}

impl Recipient {
    /// The JID the recipient is addressed by (`to` of its copy).
    pub fn jid(&self) -> &Jid {
        match self {
            Recipient::Available(jid) | Recipient::Session(jid) | Recipient::Member(jid) => jid,
        }
    }
}

/// Names one pending fan-out at the location that started it. Opaque outside the router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatherRef {
    pub(crate) origin: Location,
    pub(crate) id: u64,
}

/// Names one inbound stanza of a stream-managed session: its location, session and number.
/// Opaque outside the router.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AckRef {
    pub(crate) origin: Location,
    pub(crate) session: SessionRef,
    pub(crate) stanza: u64,
}

/// Why bytes are not a mail of this version. Each names what the operator can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// The bytes end inside a field.
    Truncated,
    /// A version this build does not read.
    Version(u8),
    /// An unknown value in a field of `what` (`tag`, `kind`, `type`, `recipient`, `flag`).
    Unknown { what: &'static str, value: u8 },
    /// A JID that is not UTF-8 or not a valid JID.
    Jid,
    /// Bytes left after the mail's last field.
    Trailing(usize),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str(
                "mail ends inside a field: the transport cut it (check the link's framing)",
            ),
            WireError::Version(v) => write!(
                f,
                "mail of wire version {v}, this node reads {MAIL_VERSION}: run one release on \
                 every node"
            ),
            WireError::Unknown { what, value } => write!(
                f,
                "mail with unknown {what} {value}: sent by a newer release or damaged in \
                 transit (run one release on every node)"
            ),
            WireError::Jid => f.write_str(
                "mail carries an invalid JID: damaged in transit or sent by a faulty node",
            ),
            WireError::Trailing(n) => write!(
                f,
                "{n} bytes after the end of a mail: the transport merged two frames"
            ),
        }
    }
}

impl std::error::Error for WireError {}

const DELIVER: u8 = 1;
const COMMITTED: u8 = 2;
const FANOUT: u8 = 3;
const GATHERED: u8 = 4;
const NODE_FANOUT: u8 = 5;

impl Mail {
    /// Appends the wire form of this mail to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(MAIL_VERSION);
        match self {
            Mail::Deliver {
                to,
                from,
                kind,
                ty,
                stanza,
                ack,
            } => {
                out.push(DELIVER);
                put_jid(out, to);
                put_jid(out, from);
                out.extend_from_slice(&[kind_code(*kind), type_code(*ty)]);
                put_bytes(out, stanza);
                out.push(u8::from(ack.is_some()));
                if let Some(ack) = ack {
                    put_ack(out, ack);
                }
            }
            Mail::Committed(ack) => {
                out.push(COMMITTED);
                put_ack(out, ack);
            }
            Mail::Fanout(fanout) => {
                out.push(FANOUT);
                put_fanout(out, fanout);
            }
            Mail::NodeFanout(fanout) => {
                out.push(NODE_FANOUT);
                put_node_fanout(out, fanout);
            }
            Mail::Gathered { gather, refused } => {
                out.push(GATHERED);
                put_gather(out, gather);
                out.extend_from_slice(&refused.to_le_bytes());
            }
        }
    }

    /// Reads one mail that fills `bytes` exactly.
    pub fn decode(bytes: &[u8]) -> Result<Mail, WireError> {
        let mut r = Reader { rest: bytes };
        let version = r.u8()?;
        if version != MAIL_VERSION {
            return Err(WireError::Version(version));
        }
        let mail = match r.u8()? {
            DELIVER => Mail::Deliver {
                to: r.jid()?,
                from: r.jid()?,
                kind: r.kind()?,
                ty: r.ty()?,
                stanza: r.bytes()?.into(),
                ack: if r.flag()? { Some(r.ack()?) } else { None },
            },
            COMMITTED => Mail::Committed(r.ack()?),
            FANOUT => Mail::Fanout(Box::new(r.fanout()?)),
            NODE_FANOUT => Mail::NodeFanout(Box::new(r.node_fanout()?)),
            GATHERED => Mail::Gathered {
                gather: r.gather()?,
                refused: r.u32()?,
            },
            value => return Err(WireError::Unknown { what: "tag", value }),
        };
        match r.rest.len() {
            0 => Ok(mail),
            n => Err(WireError::Trailing(n)),
        }
    }
}

fn put_fanout(out: &mut Vec<u8>, fanout: &Fanout) {
    put_jid(out, &fanout.from);
    out.extend_from_slice(&[kind_code(fanout.kind), type_code(fanout.ty)]);
    put_bytes(out, &fanout.stanza);
    put_recipients(out, &fanout.recipients);
    put_gather_option(out, fanout.gather.as_ref());
}

fn put_node_fanout(out: &mut Vec<u8>, fanout: &NodeFanout) {
    put_jid(out, &fanout.from);
    out.extend_from_slice(&[kind_code(fanout.kind), type_code(fanout.ty)]);
    put_bytes(out, &fanout.stanza);
    // One part per shard of a node: shard ids are u16, so the count fits.
    let count = u16::try_from(fanout.parts.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&count.to_le_bytes());
    for (shard, recipients) in fanout.parts.iter().take(usize::from(count)) {
        out.extend_from_slice(&shard.0.to_le_bytes());
        put_recipients(out, recipients);
    }
    put_gather_option(out, fanout.gather.as_ref());
}

fn put_recipients(out: &mut Vec<u8>, recipients: &[Recipient]) {
    // A fan-out's recipients are bounded by a roster or a group (far below 2^32).
    let count = u32::try_from(recipients.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_le_bytes());
    for recipient in recipients.iter().take(count as usize) {
        let tag = match recipient {
            Recipient::Available(_) => 1,
            Recipient::Session(_) => 2,
            Recipient::Member(_) => 3,
        };
        out.push(tag);
        put_jid(out, recipient.jid());
    }
}

fn put_gather_option(out: &mut Vec<u8>, gather: Option<&GatherRef>) {
    out.push(u8::from(gather.is_some()));
    if let Some(gather) = gather {
        put_gather(out, gather);
    }
}

fn put_jid(out: &mut Vec<u8>, jid: &Jid) {
    // A JID is at most 3 x 1023 bytes (RFC 7622), so its length fits u16.
    let text = jid.as_str().as_bytes();
    let len = u16::try_from(text.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&text[..usize::from(len)]);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Stanzas are bounded by `max_stanza_bytes` (far below 4 GiB).
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&bytes[..len as usize]);
}

fn put_location(out: &mut Vec<u8>, location: &Location) {
    out.extend_from_slice(&location.node.0.to_le_bytes());
    out.extend_from_slice(&location.shard.0.to_le_bytes());
}

fn put_ack(out: &mut Vec<u8>, ack: &AckRef) {
    put_location(out, &ack.origin);
    out.extend_from_slice(&ack.session.0.to_le_bytes());
    out.extend_from_slice(&ack.stanza.to_le_bytes());
}

fn put_gather(out: &mut Vec<u8>, gather: &GatherRef) {
    put_location(out, &gather.origin);
    out.extend_from_slice(&gather.id.to_le_bytes());
}

/// Every stanza kind with its wire code.
const KINDS: [(StanzaKind, u8); 4] = [
    (StanzaKind::Message, 1),
    (StanzaKind::Presence, 2),
    (StanzaKind::Iq, 3),
    (StanzaKind::Other, 4),
];

/// Every stanza type with its wire code.
const TYPES: [(StanzaType, u8); 16] = [
    (StanzaType::Normal, 1),
    (StanzaType::Chat, 2),
    (StanzaType::Groupchat, 3),
    (StanzaType::Headline, 4),
    (StanzaType::Error, 5),
    (StanzaType::Get, 6),
    (StanzaType::Set, 7),
    (StanzaType::Result, 8),
    (StanzaType::Available, 9),
    (StanzaType::Unavailable, 10),
    (StanzaType::Subscribe, 11),
    (StanzaType::Subscribed, 12),
    (StanzaType::Unsubscribe, 13),
    (StanzaType::Unsubscribed, 14),
    (StanzaType::Probe, 15),
    (StanzaType::Invalid, 16),
];

fn kind_code(kind: StanzaKind) -> u8 {
    KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(0, |&(_, c)| c)
}

fn type_code(ty: StanzaType) -> u8 {
    TYPES.iter().find(|(t, _)| *t == ty).map_or(0, |&(_, c)| c)
}

/// A cursor over the bytes being decoded.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.rest.len() < n {
            return Err(WireError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn flag(&mut self) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(WireError::Unknown {
                what: "flag",
                value,
            }),
        }
    }

    fn jid(&mut self) -> Result<Jid, WireError> {
        let len = usize::from(self.u16()?);
        let text = std::str::from_utf8(self.take(len)?).map_err(|_| WireError::Jid)?;
        Jid::parse(text).map_err(|_| WireError::Jid)
    }

    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn kind(&mut self) -> Result<StanzaKind, WireError> {
        let value = self.u8()?;
        let found = KINDS.iter().find(|&&(_, c)| c == value);
        found.map(|&(kind, _)| kind).ok_or(WireError::Unknown {
            what: "kind",
            value,
        })
    }

    fn ty(&mut self) -> Result<StanzaType, WireError> {
        let value = self.u8()?;
        let found = TYPES.iter().find(|&&(_, c)| c == value);
        found.map(|&(ty, _)| ty).ok_or(WireError::Unknown {
            what: "type",
            value,
        })
    }

    fn location(&mut self) -> Result<Location, WireError> {
        Ok(Location {
            node: NodeId(self.u16()?),
            shard: ShardId(self.u16()?),
        })
    }

    fn ack(&mut self) -> Result<AckRef, WireError> {
        Ok(AckRef {
            origin: self.location()?,
            session: SessionRef(self.u64()?),
            stanza: self.u64()?,
        })
    }

    fn gather(&mut self) -> Result<GatherRef, WireError> {
        Ok(GatherRef {
            origin: self.location()?,
            id: self.u64()?,
        })
    }

    fn fanout(&mut self) -> Result<Fanout, WireError> {
        let from = self.jid()?;
        let kind = self.kind()?;
        let ty = self.ty()?;
        let stanza: Arc<[u8]> = Arc::from(self.bytes()?);
        let recipients = self.recipients()?;
        Ok(Fanout {
            from,
            kind,
            ty,
            stanza,
            recipients,
            gather: self.gather_option()?,
        })
    }

    fn node_fanout(&mut self) -> Result<NodeFanout, WireError> {
        let from = self.jid()?;
        let kind = self.kind()?;
        let ty = self.ty()?;
        let stanza: Arc<[u8]> = Arc::from(self.bytes()?);
        let count = usize::from(self.u16()?);
        // Each part takes at least 6 bytes: a count past that reserves nothing.
        let mut parts = Vec::with_capacity(count.min(self.rest.len() / 6));
        for _ in 0..count {
            let shard = ShardId(self.u16()?);
            parts.push((shard, self.recipients()?));
        }
        Ok(NodeFanout {
            from,
            kind,
            ty,
            stanza,
            parts,
            gather: self.gather_option()?,
        })
    }

    fn gather_option(&mut self) -> Result<Option<GatherRef>, WireError> {
        if self.flag()? {
            Ok(Some(self.gather()?))
        } else {
            Ok(None)
        }
    }

    fn recipients(&mut self) -> Result<Arc<[Recipient]>, WireError> {
        let count = self.u32()? as usize;
        // Each recipient takes at least 3 bytes: a count past that is a lie, not a reason
        // to reserve memory.
        let mut recipients = Vec::with_capacity(count.min(self.rest.len() / 3));
        for _ in 0..count {
            let tag = self.u8()?;
            let jid = self.jid()?;
            recipients.push(match tag {
                1 => Recipient::Available(jid),
                2 => Recipient::Session(jid),
                3 => Recipient::Member(jid),
                value => {
                    return Err(WireError::Unknown {
                        what: "recipient",
                        value,
                    })
                }
            });
        }
        Ok(Arc::from(recipients))
    }
}

#[cfg(test)]
mod tests;
