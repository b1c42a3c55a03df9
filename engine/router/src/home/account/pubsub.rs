//! XEP-0163 Personal Eventing Protocol: the account's bare JID as a XEP-0060 pubsub service
//! (the subset PEP clients use: publish with auto-create and publish-options, retract, items,
//! node deletion, disco of the account), and the `<event/>` notifications of a publish.
//!
//! Who gets notified (a simplification of XEP-0163 4.3, which filters by the `+notify`
//! features of each resource's XEP-0115 caps): the owner's available sessions, and, unless the
//! node is whitelist, every available session of each contact subscribed to the owner's
//! presence (`from`/`both`). The last item is not resent when a contact comes online.
//!
//! What it does not do: subscriptions, node configuration forms, collections, or storing the
//! items (see `nodes`).
//!
//! Invariants: payloads are stored and served byte-identical (the element as the publisher
//! wrote it, which must declare its own namespace); only the owner publishes, retracts or
//! deletes; every read checks the node's access model; every store is bounded (item bytes,
//! items per node, nodes and bytes per account).

use rookery_proto::element::Element;
use rookery_proto::writer::escape_attr;
use rookery_proto::{Jid, StanzaKind, StanzaView};

use crate::effects::{Effects, StanzaType};
use crate::home::account::nodes::{self, Access, NodeConfig, MAX_ITEMS_PER_NODE};
use crate::home::presence::roster;
use crate::home::routing::Envelope;
use crate::home::Home;
use crate::replies::StanzaError;
use crate::stream::conn::ConnSlab;
use crate::tables;

pub(crate) const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
pub(crate) const PUBSUB_OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
const PUBSUB_EVENT: &str = "http://jabber.org/protocol/pubsub#event";
const DATA_FORMS: &str = "jabber:x:data";

/// Largest item payload, except on the avatar data node.
pub(crate) const MAX_ITEM_BYTES: usize = 64 * 1024;
/// Largest payload on `urn:xmpp:avatar:data` (XEP-0084: base64 image data).
pub(crate) const MAX_AVATAR_BYTES: usize = 256 * 1024;
const AVATAR_DATA_NODE: &str = "urn:xmpp:avatar:data";
/// Most nodes one account has.
pub(crate) const MAX_NODES: usize = 64;
/// Most bytes of items (keys and payloads) one account keeps.
pub(crate) const MAX_ACCOUNT_BYTES: usize = 1024 * 1024;
/// Longest node name or item id.
const MAX_NAME_BYTES: usize = 1024;

/// The account's disco#info features for PEP (only what works here).
pub(crate) const FEATURES: &[&str] = &[
    "http://jabber.org/protocol/pubsub",
    "http://jabber.org/protocol/pubsub#publish",
    "http://jabber.org/protocol/pubsub#auto-create",
    "http://jabber.org/protocol/pubsub#publish-options",
    "http://jabber.org/protocol/pubsub#persistent-items",
    "http://jabber.org/protocol/pubsub#retrieve-items",
    "http://jabber.org/protocol/pubsub#retract-items",
    "http://jabber.org/protocol/pubsub#delete-nodes",
    "http://jabber.org/protocol/pubsub#access-open",
    "http://jabber.org/protocol/pubsub#access-presence",
    "http://jabber.org/protocol/pubsub#access-whitelist",
    "http://jabber.org/protocol/pubsub#config-node-max",
];

/// Who asks, about whose account.
#[derive(Clone, Copy)]
pub(crate) struct Parties<'a> {
    /// The requester's full JID.
    pub from: &'a Jid,
    /// The account (bare JID) whose service is asked.
    pub owner: &'a Jid,
}

impl Parties<'_> {
    pub fn is_owner(&self) -> bool {
        self.from.bare_str() == self.owner.bare_str()
    }
}

impl Home {
    /// A `<pubsub/>` (`owner_ns`: the `#owner` namespace) request to the account; its result
    /// payload is appended to `out`.
    pub(crate) fn pubsub_iq(
        &mut self,
        conns: &ConnSlab,
        parties: Parties<'_>,
        (pubsub, owner_ns, ty): (&[u8], bool, StanzaType),
        out: &mut Vec<u8>,
        fx: &mut impl Effects,
    ) -> Result<(), StanzaError> {
        let view = StanzaView::parse(pubsub).map_err(|_| StanzaError::BadRequest)?;
        let mut children = view.children();
        let first = children.next().ok_or(StanzaError::BadRequest)?;
        let set = ty == StanzaType::Set;
        match (first.local_name, owner_ns, set) {
            ("publish", false, true) => {
                let options = children.find(|c| c.local_name == "publish-options");
                self.publish(
                    conns,
                    parties,
                    first.bytes,
                    options.map(|c| c.bytes),
                    out,
                    fx,
                )
            }
            ("items", false, false) => self.get_items(parties, first.bytes, out),
            ("retract", false, true) => self.retract(conns, parties, first.bytes, fx),
            ("delete", true, true) => self.delete_node(conns, parties, first.bytes, fx),
            _ => Err(StanzaError::FeatureNotImplemented),
        }
    }

    fn publish(
        &mut self,
        conns: &ConnSlab,
        parties: Parties<'_>,
        publish: &[u8],
        options: Option<&[u8]>,
        out: &mut Vec<u8>,
        fx: &mut impl Effects,
    ) -> Result<(), StanzaError> {
        if !parties.is_owner() {
            return Err(StanzaError::Forbidden);
        }
        let owner = parties.owner.bare_str();
        let publish = StanzaView::parse(publish).map_err(|_| StanzaError::BadRequest)?;
        let node_name = node_attr(&publish)?;
        let item = publish
            .children()
            .find(|c| c.local_name == "item")
            .ok_or(StanzaError::BadRequest)?;
        let item = StanzaView::parse(item.bytes).map_err(|_| StanzaError::BadRequest)?;
        let payload = item.children().next().ok_or(StanzaError::BadRequest)?;
        if payload.xmlns.is_none() {
            // Stored and served alone, the payload must carry its own namespace.
            return Err(StanzaError::BadRequest);
        }
        let limit = if node_name == AVATAR_DATA_NODE {
            MAX_AVATAR_BYTES
        } else {
            MAX_ITEM_BYTES
        };
        if payload.bytes.len() > limit {
            return Err(StanzaError::NotAcceptable);
        }
        let wanted = options.map(publish_options).transpose()?;
        let mut config = self.node_to_publish(owner, &node_name, wanted)?;
        let prefix = tables::prefix(owner);
        let adding = payload.bytes.len() + owner.len() + node_name.len() + 64;
        if config.persist && nodes::account_bytes(&self.store, &prefix) + adding > MAX_ACCOUNT_BYTES
        {
            return Err(StanzaError::ResourceConstraint);
        }
        let id = match item.attr("id") {
            Some(id) if id.len() > MAX_NAME_BYTES || id.contains('\0') => {
                return Err(StanzaError::NotAcceptable)
            }
            Some(id) if !id.is_empty() => id.into_owned(),
            _ => self.fresh_id(),
        };
        if config.persist {
            let names = (owner, node_name.as_str());
            nodes::put_item(&mut self.store, names, &mut config, &id, payload.bytes);
        } else {
            nodes::put_node(&mut self.store, owner, &node_name, &config);
        }
        out.extend_from_slice(b"<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='");
        escape_attr(&node_name, out);
        out.extend_from_slice(b"'><item id='");
        escape_attr(&id, out);
        out.extend_from_slice(b"'/></publish></pubsub>");

        let mut event = Vec::with_capacity(payload.bytes.len() + 128);
        event.extend_from_slice(b"<items node='");
        escape_attr(&node_name, &mut event);
        event.extend_from_slice(b"'><item id='");
        escape_attr(&id, &mut event);
        event.extend_from_slice(b"' publisher='");
        escape_attr(owner, &mut event);
        event.extend_from_slice(b"'>");
        event.extend_from_slice(payload.bytes);
        event.extend_from_slice(b"</item></items>");
        self.notify(conns, parties.owner, config.access, &event, fx);
        Ok(())
    }

    /// The configuration of the node a publish goes to: the existing node's (if `wanted`
    /// matches it), or a new node's, within the account's node limit.
    fn node_to_publish(
        &self,
        owner: &str,
        node_name: &str,
        wanted: Option<Wanted>,
    ) -> Result<NodeConfig, StanzaError> {
        match (nodes::node(&self.store, owner, node_name), wanted) {
            // XEP-0060 7.1.5: precondition-not-met.
            (Some(config), Some(wanted)) if !wanted.matches(&config) => Err(StanzaError::Conflict),
            (Some(config), _) => Ok(config),
            (None, wanted) => {
                let prefix = tables::prefix(owner);
                if nodes::nodes(&self.store, &prefix).count() >= MAX_NODES {
                    return Err(StanzaError::ResourceConstraint);
                }
                let mut config = NodeConfig::default();
                if let Some(wanted) = wanted {
                    wanted.apply(&mut config);
                }
                Ok(config)
            }
        }
    }

    fn get_items(
        &mut self,
        parties: Parties<'_>,
        items: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), StanzaError> {
        let owner = parties.owner.bare_str();
        let items = StanzaView::parse(items).map_err(|_| StanzaError::BadRequest)?;
        let node_name = node_attr(&items)?;
        let config =
            nodes::node(&self.store, owner, &node_name).ok_or(StanzaError::ItemNotFound)?;
        self.may_read(parties, config.access)?;
        let max = match items.attr("max_items") {
            Some(max) if !max.trim().is_empty() => {
                max.trim().parse().map_err(|_| StanzaError::BadRequest)?
            }
            _ => usize::MAX,
        };
        let wanted: Vec<String> = items
            .children()
            .filter(|c| c.local_name == "item")
            .filter_map(|c| {
                StanzaView::parse(c.bytes)
                    .ok()?
                    .attr("id")
                    .map(|id| id.into_owned())
            })
            .collect();
        let stored = nodes::items(&self.store, owner, &node_name);
        out.extend_from_slice(b"<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='");
        escape_attr(&node_name, out);
        out.extend_from_slice(b"'>");
        let newest = stored.len().saturating_sub(max);
        for item in &stored[newest..] {
            if !wanted.is_empty() && !wanted.contains(&item.id) {
                continue;
            }
            out.extend_from_slice(b"<item id='");
            escape_attr(&item.id, out);
            out.extend_from_slice(b"'>");
            out.extend_from_slice(item.payload);
            out.extend_from_slice(b"</item>");
        }
        out.extend_from_slice(b"</items></pubsub>");
        Ok(())
    }

    fn retract(
        &mut self,
        conns: &ConnSlab,
        parties: Parties<'_>,
        retract: &[u8],
        fx: &mut impl Effects,
    ) -> Result<(), StanzaError> {
        if !parties.is_owner() {
            return Err(StanzaError::Forbidden);
        }
        let owner = parties.owner.bare_str();
        let retract = StanzaView::parse(retract).map_err(|_| StanzaError::BadRequest)?;
        let node_name = node_attr(&retract)?;
        let config =
            nodes::node(&self.store, owner, &node_name).ok_or(StanzaError::ItemNotFound)?;
        let id = retract
            .children()
            .find(|c| c.local_name == "item")
            .and_then(|c| {
                StanzaView::parse(c.bytes)
                    .ok()?
                    .attr("id")
                    .map(|id| id.into_owned())
            })
            .ok_or(StanzaError::BadRequest)?;
        if !nodes::delete_item(&mut self.store, owner, &node_name, &id) {
            return Err(StanzaError::ItemNotFound);
        }
        let notify = retract.attr("notify");
        if matches!(notify.as_deref(), Some("true" | "1")) {
            let mut event = Vec::with_capacity(64);
            event.extend_from_slice(b"<items node='");
            escape_attr(&node_name, &mut event);
            event.extend_from_slice(b"'><retract id='");
            escape_attr(&id, &mut event);
            event.extend_from_slice(b"'/></items>");
            self.notify(conns, parties.owner, config.access, &event, fx);
        }
        Ok(())
    }

    fn delete_node(
        &mut self,
        conns: &ConnSlab,
        parties: Parties<'_>,
        delete: &[u8],
        fx: &mut impl Effects,
    ) -> Result<(), StanzaError> {
        if !parties.is_owner() {
            return Err(StanzaError::Forbidden);
        }
        let owner = parties.owner.bare_str();
        let delete = StanzaView::parse(delete).map_err(|_| StanzaError::BadRequest)?;
        let node_name = node_attr(&delete)?;
        let config =
            nodes::node(&self.store, owner, &node_name).ok_or(StanzaError::ItemNotFound)?;
        nodes::delete_node(&mut self.store, owner, &node_name);
        let mut event = Vec::with_capacity(64);
        event.extend_from_slice(b"<delete node='");
        escape_attr(&node_name, &mut event);
        event.extend_from_slice(b"'/>");
        self.notify(conns, parties.owner, config.access, &event, fx);
        Ok(())
    }

    /// XEP-0030 on the account's bare JID: the account and its PEP service, or one node.
    pub(crate) fn account_disco_info(
        &self,
        parties: Parties<'_>,
        node: Option<&str>,
        extra_features: &[&str],
        out: &mut Vec<u8>,
    ) -> Result<(), StanzaError> {
        out.extend_from_slice(b"<query xmlns='http://jabber.org/protocol/disco#info'");
        if let Some(node_name) = node {
            let owner = parties.owner.bare_str();
            let config =
                nodes::node(&self.store, owner, node_name).ok_or(StanzaError::ItemNotFound)?;
            self.may_read(parties, config.access)?;
            out.extend_from_slice(b" node='");
            escape_attr(node_name, out);
            out.extend_from_slice(b"'><identity category='pubsub' type='leaf'/>");
            feature(out, "http://jabber.org/protocol/disco#info");
            feature(out, PUBSUB);
        } else {
            out.extend_from_slice(b"><identity category='account' type='registered'/>");
            out.extend_from_slice(b"<identity category='pubsub' type='pep'/>");
            feature(out, "http://jabber.org/protocol/disco#info");
            feature(out, "http://jabber.org/protocol/disco#items");
            for var in FEATURES.iter().chain(extra_features) {
                feature(out, var);
            }
            self.other_account_features(out);
        }
        out.extend_from_slice(b"</query>");
        Ok(())
    }

    /// XEP-0030 items of the account: the nodes the requester may read.
    pub(crate) fn account_disco_items(
        &self,
        parties: Parties<'_>,
        node: Option<&str>,
        out: &mut Vec<u8>,
    ) -> Result<(), StanzaError> {
        out.extend_from_slice(b"<query xmlns='http://jabber.org/protocol/disco#items'");
        if let Some(node_name) = node {
            // A node's items are not listed here (its items are read with pubsub).
            out.extend_from_slice(b" node='");
            escape_attr(node_name, out);
            out.extend_from_slice(b"'/>");
            return Ok(());
        }
        out.push(b'>');
        let owner = parties.owner.bare_str();
        let prefix = tables::prefix(owner);
        for (node_name, config) in nodes::nodes(&self.store, &prefix) {
            if self.may_read(parties, config.access).is_err() {
                continue;
            }
            out.extend_from_slice(b"<item jid='");
            escape_attr(owner, out);
            out.extend_from_slice(b"' node='");
            escape_attr(node_name, out);
            out.extend_from_slice(b"'/>");
        }
        out.extend_from_slice(b"</query>");
        Ok(())
    }

    /// XEP-0060 6.1.3 access checks for a reader of a node with `access`.
    fn may_read(&self, parties: Parties<'_>, access: Access) -> Result<(), StanzaError> {
        if parties.is_owner() || access == Access::Open {
            return Ok(());
        }
        if access == Access::Whitelist {
            return Err(StanzaError::NotAllowed);
        }
        let owner = parties.owner.bare_str();
        match roster::get(&self.store, owner, parties.from.bare_str()) {
            Some(item) if item.from => Ok(()),
            // XEP-0060 6.5.9.2: presence-subscription-required.
            _ => Err(StanzaError::NotAuthorized),
        }
    }

    /// Sends `<event>INNER</event>` as a headline from `owner` to its own available sessions
    /// and, unless `access` is whitelist, to those of every contact subscribed to its presence.
    fn notify(
        &mut self,
        conns: &ConnSlab,
        owner: &Jid,
        access: Access,
        inner: &[u8],
        fx: &mut impl Effects,
    ) {
        let mut recipients = vec![owner.clone()];
        if access != Access::Whitelist {
            let prefix = tables::prefix(owner.bare_str());
            // Bounded by the roster limit (`--roster-max`).
            recipients.extend(
                roster::items(&self.store, &prefix)
                    .filter(|(_, item)| item.from)
                    .filter_map(|(contact, _)| Jid::parse(contact).ok()),
            );
        }
        let id = self.fresh_id();
        let mut message = Vec::with_capacity(inner.len() + 256);
        for to in &recipients {
            message.clear();
            message.extend_from_slice(b"<message type='headline' from='");
            escape_attr(owner.bare_str(), &mut message);
            message.extend_from_slice(b"' to='");
            escape_attr(to.as_str(), &mut message);
            message.extend_from_slice(b"' id='");
            escape_attr(&id, &mut message);
            message.extend_from_slice(b"'><event xmlns='");
            message.extend_from_slice(PUBSUB_EVENT.as_bytes());
            message.extend_from_slice(b"'>");
            message.extend_from_slice(inner);
            message.extend_from_slice(b"</event></message>");
            let envelope = Envelope {
                to,
                from: owner,
                kind: StanzaKind::Message,
                ty: StanzaType::Headline,
                stanza: &message,
            };
            self.route(conns, &envelope, None, fx);
        }
    }

    /// An unpredictable id (16 hex digits) for items and notifications.
    fn fresh_id(&mut self) -> String {
        let mut bytes = [0u8; 8];
        self.random.fill(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn feature(out: &mut Vec<u8>, var: &str) {
    out.extend_from_slice(b"<feature var='");
    escape_attr(var, out);
    out.extend_from_slice(b"'/>");
}

/// The `node` attribute of a pubsub request element: present, bounded, no NUL.
fn node_attr(view: &StanzaView<'_>) -> Result<String, StanzaError> {
    let node = view.attr("node").ok_or(StanzaError::BadRequest)?;
    if node.is_empty() || node.len() > MAX_NAME_BYTES || node.contains('\0') {
        return Err(StanzaError::NotAcceptable);
    }
    Ok(node.into_owned())
}

/// What `<publish-options/>` asks of the node (XEP-0060 7.1.5); unknown fields are ignored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Wanted {
    access: Option<Access>,
    persist: Option<bool>,
    max_items: Option<u32>,
}

impl Wanted {
    fn matches(&self, config: &NodeConfig) -> bool {
        self.access.is_none_or(|a| a == config.access)
            && self.persist.is_none_or(|p| p == config.persist)
            && self.max_items.is_none_or(|m| m == config.max_items)
    }

    fn apply(&self, config: &mut NodeConfig) {
        config.access = self.access.unwrap_or(config.access);
        config.persist = self.persist.unwrap_or(config.persist);
        config.max_items = self.max_items.unwrap_or(config.max_items);
    }
}

/// Parses the data form of `<publish-options/>`; a value this server cannot honour is
/// `conflict` (precondition-not-met).
fn publish_options(bytes: &[u8]) -> Result<Wanted, StanzaError> {
    let element = Element::parse(bytes).map_err(|_| StanzaError::BadRequest)?;
    let mut wanted = Wanted::default();
    let Some(form) = element.child("x", DATA_FORMS) else {
        return Ok(wanted);
    };
    for field in form.children().filter(|f| f.local_name() == "field") {
        let value = field
            .child("value", DATA_FORMS)
            .map(|v| v.text())
            .unwrap_or_default();
        let value = value.trim();
        match field.attr("var") {
            Some("pubsub#access_model") => {
                wanted.access = Some(Access::parse(value).ok_or(StanzaError::Conflict)?);
            }
            Some("pubsub#persist_items") => {
                wanted.persist = Some(match value {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => return Err(StanzaError::BadRequest),
                });
            }
            Some("pubsub#max_items") => {
                let max = match value {
                    "max" => MAX_ITEMS_PER_NODE,
                    number => number.parse::<u32>().map_err(|_| StanzaError::BadRequest)?,
                };
                if max == 0 {
                    return Err(StanzaError::Conflict);
                }
                wanted.max_items = Some(max.min(MAX_ITEMS_PER_NODE));
            }
            _ => {}
        }
    }
    Ok(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_options_are_read_from_the_form() {
        let form = b"<publish-options><x xmlns='jabber:x:data' type='submit'>\
<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
<field var='pubsub#access_model'><value>whitelist</value></field>\
<field var='pubsub#persist_items'><value>true</value></field>\
<field var='pubsub#max_items'><value>max</value></field>\
<field var='pubsub#send_last_published_item'><value>never</value></field>\
</x></publish-options>";
        let wanted = publish_options(form).expect("a valid form");
        assert_eq!(
            wanted,
            Wanted {
                access: Some(Access::Whitelist),
                persist: Some(true),
                max_items: Some(MAX_ITEMS_PER_NODE),
            }
        );
        let odd = b"<publish-options><x xmlns='jabber:x:data'>\
<field var='pubsub#access_model'><value>roster</value></field></x></publish-options>";
        assert_eq!(publish_options(odd), Err(StanzaError::Conflict));
    }
}
