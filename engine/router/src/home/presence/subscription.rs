//! Subscription state changes (RFC 6121 3 and Appendix A), as pure functions on one roster
//! item: what an outbound subscription stanza does to the sender's item for the contact, and
//! what an inbound one does to the recipient's item for the sender.
//!
//! What it does not do: store, push or route (see `presence`), or pre-approval (RFC 6121
//! 3.4, optional: a `subscribed` with no request pending is ignored).
//!
//! Invariants: every function returns whether the item changed, so callers store and push
//! only real changes; a stanza the RFC says to ignore changes nothing and is neither routed
//! nor delivered.

use crate::effects::StanzaType;
use crate::home::presence::roster::RosterItem;

/// What the user's server does with an outbound subscription stanza.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Outbound {
    pub changed: bool,
    /// Route it to the contact.
    pub route: bool,
}

/// What the contact's server does with an inbound subscription stanza.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Inbound {
    pub changed: bool,
    /// Deliver it to the recipient's available resources.
    pub deliver: bool,
    /// Answer `subscribed` on the recipient's behalf (it approved the sender already).
    pub auto_subscribed: bool,
}

/// The sender's item for the contact, after the sender sent `ty` (RFC 6121 3.1.2, 3.1.5,
/// 3.2.2, 3.3.2).
pub(crate) fn outbound(item: &mut RosterItem, ty: StanzaType) -> Outbound {
    let before = item.clone();
    let route = match ty {
        StanzaType::Subscribe => {
            item.in_roster = true;
            if !item.to {
                item.ask_out = true;
            }
            true
        }
        StanzaType::Subscribed => {
            if item.pending_in && !item.from {
                item.from = true;
                item.pending_in = false;
                item.in_roster = true;
                true
            } else {
                // Already approved (nothing to route), or no request: pre-approval, ignored.
                item.pending_in = false;
                false
            }
        }
        StanzaType::Unsubscribe => {
            item.to = false;
            item.ask_out = false;
            true
        }
        StanzaType::Unsubscribed => {
            let route = item.from || item.pending_in;
            item.from = false;
            item.pending_in = false;
            route
        }
        _ => false,
    };
    Outbound {
        changed: *item != before,
        route,
    }
}

/// The recipient's item for the sender, after the sender's `ty` arrived (RFC 6121 3.1.3,
/// 3.1.6, 3.2.3, 3.3.3).
pub(crate) fn inbound(item: &mut RosterItem, ty: StanzaType) -> Inbound {
    let before = item.clone();
    let mut deliver = false;
    let mut auto_subscribed = false;
    match ty {
        StanzaType::Subscribe => {
            if item.from {
                auto_subscribed = true;
            } else if !item.pending_in {
                item.pending_in = true;
                deliver = true;
            }
        }
        StanzaType::Subscribed if item.ask_out => {
            item.to = true;
            item.ask_out = false;
            deliver = true;
        }
        StanzaType::Unsubscribe if item.from || item.pending_in => {
            item.from = false;
            item.pending_in = false;
            deliver = true;
        }
        StanzaType::Unsubscribed if item.to || item.ask_out => {
            item.to = false;
            item.ask_out = false;
            deliver = true;
        }
        _ => {}
    }
    Inbound {
        changed: *item != before,
        deliver,
        auto_subscribed,
    }
}

/// Whether a presence type is a subscription stanza.
pub(crate) fn is_subscription(ty: StanzaType) -> bool {
    matches!(
        ty,
        StanzaType::Subscribe
            | StanzaType::Subscribed
            | StanzaType::Unsubscribe
            | StanzaType::Unsubscribed
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use StanzaType::*;

    /// Runs the four-step handshake that ends in `both` on two items: alice's item for bob
    /// and bob's item for alice.
    #[test]
    fn mutual_subscription_reaches_both() {
        let (mut alice, mut bob) = (RosterItem::default(), RosterItem::default());
        assert!(outbound(&mut alice, Subscribe).route);
        assert!(alice.ask_out && alice.in_roster && !alice.to);
        let inb = inbound(&mut bob, Subscribe);
        assert!(inb.deliver && bob.pending_in && !bob.in_roster);
        assert!(outbound(&mut bob, Subscribed).route);
        assert!(bob.from && !bob.pending_in && bob.in_roster);
        assert!(inbound(&mut alice, Subscribed).deliver);
        assert_eq!((alice.subscription(), alice.ask_out), ("to", false));
        // And back.
        assert!(outbound(&mut bob, Subscribe).route);
        assert!(inbound(&mut alice, Subscribe).deliver);
        assert!(outbound(&mut alice, Subscribed).route);
        assert!(inbound(&mut bob, Subscribed).deliver);
        assert_eq!(alice.subscription(), "both");
        assert_eq!(bob.subscription(), "both");
    }

    #[test]
    fn repeated_and_unsolicited_stanzas_are_ignored() {
        let mut item = RosterItem::default();
        // A subscribed with no request pending is a pre-approval: ignored, not routed.
        assert_eq!(
            outbound(&mut item, Subscribed),
            Outbound {
                changed: false,
                route: false
            }
        );
        // An inbound subscribed we never asked for changes nothing.
        let inb = inbound(&mut item, Subscribed);
        assert!(!inb.changed && !inb.deliver);
        // A second request while one is pending is not delivered again.
        assert!(inbound(&mut item, Subscribe).deliver);
        assert!(!inbound(&mut item, Subscribe).deliver);
        // Once approved, a new request is answered by the server.
        outbound(&mut item, Subscribed);
        let again = inbound(&mut item, Subscribe);
        assert!(again.auto_subscribed && !again.deliver && !again.changed);
        // Unsubscribed with nothing to cancel is not routed.
        let mut empty = RosterItem::default();
        assert!(!outbound(&mut empty, Unsubscribed).route);
    }

    #[test]
    fn cancellations_remove_the_right_direction() {
        let mut item = RosterItem {
            to: true,
            from: true,
            in_roster: true,
            ..RosterItem::default()
        };
        assert!(outbound(&mut item, Unsubscribe).route);
        assert_eq!(item.subscription(), "from");
        assert!(outbound(&mut item, Unsubscribed).route);
        assert_eq!(item.subscription(), "none");
        assert!(item.in_roster, "cancelling keeps the contact in the roster");
        let mut theirs = RosterItem {
            to: true,
            from: true,
            ..RosterItem::default()
        };
        assert!(inbound(&mut theirs, Unsubscribe).deliver);
        assert_eq!(theirs.subscription(), "to");
        assert!(inbound(&mut theirs, Unsubscribed).deliver);
        assert!(theirs.is_void());
        assert!(!inbound(&mut theirs, Unsubscribed).deliver);
    }
}
