//! The routing side of the thread-per-core peers (monoio, glommio): one registry per thread,
//! each session's handle an [`Outbox`] that the sender stamps into directly.
//!
//! What it does not do: I/O (the binaries' reader and writer tasks do), or cross-thread
//! routing: one executor thread serves every conn, so a registry per thread is the whole map.
//!
//! Invariant: a conn registers only its own outbox, and unbinds it before closing it.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use rookery_proto::{Jid, StanzaView};

use crate::conn::Router;
use crate::outbox::{Outbox, PushError};
use crate::registry::{ConnId, Registry};
use crate::stats::Stats;

/// What every conn task of one executor shares.
pub struct LocalEnv {
    pub registry: RefCell<Registry<Rc<Outbox>>>,
    pub domain: Arc<str>,
    pub stats: Arc<Stats>,
}

impl LocalEnv {
    pub fn new(domain: Arc<str>, stats: Arc<Stats>) -> LocalEnv {
        LocalEnv {
            registry: RefCell::new(Registry::default()),
            domain,
            stats,
        }
    }

    /// The conn `id` is closing: its session (if it still holds the route) goes away.
    pub fn unbind(&self, jid: &Jid, id: ConnId) {
        self.registry.borrow_mut().unbind(jid, id);
    }
}

/// [`Router`] for one conn on a thread-per-core executor.
pub struct LocalRouter<'a> {
    pub env: &'a LocalEnv,
    pub id: ConnId,
    /// This conn's own outbox, registered when it binds.
    pub outbox: &'a Rc<Outbox>,
}

impl Router for LocalRouter<'_> {
    fn bind(&mut self, jid: &Jid) {
        self.env
            .registry
            .borrow_mut()
            .bind(jid, self.id, self.outbox.clone());
        self.env.stats.session_bound();
    }

    fn route(&mut self, to: &Jid, from: &Jid, stanza: &StanzaView<'_>) {
        let registry = self.env.registry.borrow();
        let Some(outbox) = registry.find(to) else {
            return self.env.stats.dropped_unknown();
        };
        match outbox.push(|buf| stanza.stamp(from.as_str(), None, buf)) {
            Ok(()) => self.env.stats.relayed(),
            Err(PushError::Full) => self.env.stats.dropped_full(),
            Err(PushError::Closed) => self.env.stats.dropped_unknown(),
        }
    }

    fn unroutable(&mut self) {
        self.env.stats.dropped_unknown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STANZA: &[u8] = b"<message to='b@x/r'><body>hi</body></message>";

    fn jid(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    #[test]
    fn a_routed_stanza_lands_stamped_in_the_destinations_outbox() {
        let env = LocalEnv::new("x".into(), Arc::default());
        let (a_box, b_box) = (Rc::new(Outbox::default()), Rc::new(Outbox::default()));
        LocalRouter {
            env: &env,
            id: 2,
            outbox: &b_box,
        }
        .bind(&jid("b@x/r"));
        let mut a = LocalRouter {
            env: &env,
            id: 1,
            outbox: &a_box,
        };
        a.bind(&jid("a@x/r"));
        let view = StanzaView::parse(STANZA).unwrap();
        a.route(&jid("b@x/r"), &jid("a@x/r"), &view);
        a.route(&jid("nobody@x"), &jid("a@x/r"), &view);
        let got = futures_lite::future::block_on(b_box.take(Vec::new())).unwrap();
        assert_eq!(
            got,
            b"<message to='b@x/r' from='a@x/r'><body>hi</body></message>"
        );
        b_box.close();
        a.route(&jid("b@x"), &jid("a@x/r"), &view);
        assert_eq!(
            env.stats.to_string(),
            "stats: conns_accepted=0 sessions_bound=2 messages_relayed=1 \
             dropped_unknown_destination=2 dropped_queue_full=0 accept_errors=0"
        );
    }
}
