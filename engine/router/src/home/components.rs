//! XEP-0114 external components, home side: which domains components serve, which of them is
//! connected on this shard, and delivering a stanza addressed to one.
//!
//! A component is homed like a user: on `Placement::home(NAME)` (its domain as a bare JID),
//! whose shard adopts the component's conn after the handshake (see `stream::component`).
//! Every shard knows the configured names, so `Home::route` sends a stanza for any address at
//! NAME (the domain exactly, not its subdomains) there as one `Mail::Deliver`, like a stanza
//! for a user; the home shard writes it to the component's conn, or bounces it with
//! `service-unavailable` while no component is connected.
//!
//! What it does not do: the component's stream (header, handshake, its stanzas: see
//! `stream::component`), or any store-and-forward (a component that is away misses what is
//! sent to it: XEP-0114 has no offline storage).
//!
//! Invariants: at most one conn per name is attached (a second handshake for a connected name
//! is refused with `conflict`); an attached conn is detached when its stream ends
//! (`Router::leave_directory_quietly`). Memory: one entry per configured name, one per
//! connected component on its home shard; nothing per user.

use rookery_proto::Jid;

use crate::config::ComponentConfig;
use crate::effects::{ConnKey, Effects};
use crate::home::routing::{Envelope, Target};
use crate::home::Home;
use crate::maps::{HashState, Map};
use crate::replies::StanzaError;
use crate::stream::conn::ConnSlab;

/// The configured components and those connected on this shard.
#[derive(Debug)]
pub(crate) struct Components {
    /// Configured names as bare JIDs (their placement key), with their secrets.
    names: Box<[(Jid, Box<str>)]>,
    /// Name -> the conn of the component connected here (its home shard).
    attached: Map<Box<str>, ConnKey>,
}

impl Components {
    pub fn new(config: &[ComponentConfig], hash: HashState) -> Components {
        let names = config
            .iter()
            .filter_map(|c| {
                Some((
                    Jid::new(None, &c.name, None).ok()?,
                    c.secret.as_str().into(),
                ))
            })
            .collect();
        Components {
            names,
            attached: hash.map(),
        }
    }

    /// The configured component serving `domain` (exactly), as a bare JID.
    pub fn serving(&self, domain: &str) -> Option<&Jid> {
        let mut names = self.names.iter();
        names
            .find(|(jid, _)| jid.domain() == domain)
            .map(|(jid, _)| jid)
    }

    /// A session's stanza to `to` at a component's domain: routed like one to a user.
    pub fn target(&self, to: &str) -> Option<Target> {
        let to = Jid::parse(to).ok()?;
        self.serving(to.domain())?;
        Some(Target::User(to))
    }

    /// The secret of the component named `name`, if configured.
    pub fn secret(&self, name: &str) -> Option<&str> {
        let mut names = self.names.iter();
        names
            .find(|(jid, _)| jid.domain() == name)
            .map(|(_, s)| &**s)
    }

    /// Attaches the conn `key` as component `name`; false if one is attached already.
    pub fn attach(&mut self, name: &str, key: ConnKey) -> bool {
        if self.attached.contains_key(name) {
            return false;
        }
        self.attached.insert(name.into(), key);
        true
    }

    /// Detaches `key` from `name` (only if it is the attached conn).
    pub fn detach(&mut self, name: &str, key: ConnKey) {
        if self.attached.get(name) == Some(&key) {
            self.attached.remove(name);
        }
    }

    /// The conn of component `name` if it is connected on this shard.
    pub fn conn_of(&self, name: &str) -> Option<ConnKey> {
        self.attached.get(name).copied()
    }
}

impl Home {
    /// Writes a stanza for component domain `envelope.to.domain()` to its conn (this is its
    /// home shard), or bounces it while none is connected.
    pub fn deliver_component(
        &mut self,
        conns: &ConnSlab,
        envelope: &Envelope<'_>,
        fx: &mut impl Effects,
    ) {
        match self.components.conn_of(envelope.to.domain()) {
            Some(key) => {
                fx.send(key, envelope.stanza);
                self.stats.stanzas_out += 1;
            }
            None => self.bounce(conns, envelope, StanzaError::ServiceUnavailable, fx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_exactly_and_attach_once() {
        let config = [ComponentConfig {
            name: "push.example.com".into(),
            secret: "s3cret".into(),
        }];
        let mut components = Components::new(&config, HashState::from_seed(1));
        assert!(components.serving("push.example.com").is_some());
        assert!(components.serving("sub.push.example.com").is_none());
        assert!(components.serving("example.com").is_none());
        assert_eq!(components.secret("push.example.com"), Some("s3cret"));
        assert!(components.attach("push.example.com", ConnKey(1)));
        assert!(!components.attach("push.example.com", ConnKey(2)));
        components.detach("push.example.com", ConnKey(2));
        assert_eq!(components.conn_of("push.example.com"), Some(ConnKey(1)));
        components.detach("push.example.com", ConnKey(1));
        assert_eq!(components.conn_of("push.example.com"), None);
    }
}
