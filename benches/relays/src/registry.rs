//! Bound sessions by bare JID, each with its runtime's conn handle (a channel sender for
//! tokio, a shared outbox for monoio and glommio).
//!
//! What it does: bind (the last bind of a full JID wins: a second conn binding the same
//! resource takes the route over, the first stays open but unreachable), unbind (only by the
//! conn that holds the entry, so a replaced conn closing does not remove its successor), and
//! look-up: a full JID finds that resource, a bare JID one session of that user (the first of
//! its list; no priorities: there is no presence here).
//!
//! What it does not do: locking or sharing (the runtime wraps it: `Rc<RefCell<_>>` on one
//! thread, `Arc<Mutex<_>>` for tokio), delivery, or counting.
//!
//! Invariant: no user key maps to an empty list.

use std::collections::HashMap;

use rookery_proto::Jid;

/// A conn's identity, unique for the process's life (so a replaced conn is told apart).
pub type ConnId = u64;

struct Session<H> {
    resource: Box<str>,
    conn: ConnId,
    handle: H,
}

/// Bare JID -> bound sessions of that user.
pub struct Registry<H> {
    users: HashMap<Box<str>, Vec<Session<H>>>,
    sessions: usize,
}

impl<H> Default for Registry<H> {
    fn default() -> Registry<H> {
        Registry {
            users: HashMap::new(),
            sessions: 0,
        }
    }
}

impl<H> Registry<H> {
    /// Routes `jid` (a full JID) to `conn` from now on, replacing any other conn's binding of
    /// the same full JID. A JID without resource is ignored (binding always yields one).
    pub fn bind(&mut self, jid: &Jid, conn: ConnId, handle: H) {
        let Some(resource) = jid.resource() else {
            return;
        };
        let sessions = self.users.entry(jid.bare_str().into()).or_default();
        let session = Session {
            resource: resource.into(),
            conn,
            handle,
        };
        match sessions.iter_mut().find(|s| *s.resource == *resource) {
            Some(slot) => *slot = session,
            None => {
                sessions.push(session);
                self.sessions += 1;
            }
        }
    }

    /// Removes `jid`'s route if `conn` still holds it. Returns whether it did.
    pub fn unbind(&mut self, jid: &Jid, conn: ConnId) -> bool {
        let (Some(resource), Some(sessions)) = (jid.resource(), self.users.get_mut(jid.bare_str()))
        else {
            return false;
        };
        let Some(at) = sessions
            .iter()
            .position(|s| s.conn == conn && *s.resource == *resource)
        else {
            return false;
        };
        sessions.swap_remove(at);
        self.sessions -= 1;
        if sessions.is_empty() {
            self.users.remove(jid.bare_str());
        }
        true
    }

    /// The handle of the session `to` names: that resource for a full JID, the user's first
    /// registered session for a bare one.
    pub fn find(&self, to: &Jid) -> Option<&H> {
        let sessions = self.users.get(to.bare_str())?;
        let session = match to.resource() {
            Some(resource) => sessions.iter().find(|s| *s.resource == *resource)?,
            None => sessions.first()?,
        };
        Some(&session.handle)
    }

    /// Sessions registered.
    pub fn len(&self) -> usize {
        self.sessions
    }

    pub fn is_empty(&self) -> bool {
        self.sessions == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(s: &str) -> Jid {
        Jid::parse(s).unwrap()
    }

    #[test]
    fn full_and_bare_lookups_find_the_bound_session() {
        let mut reg = Registry::default();
        reg.bind(&jid("a@x/one"), 1, "one");
        reg.bind(&jid("a@x/two"), 2, "two");
        assert_eq!(reg.find(&jid("a@x/two")), Some(&"two"));
        assert_eq!(reg.find(&jid("a@x/one")), Some(&"one"));
        assert_eq!(reg.find(&jid("a@x")), Some(&"one"));
        assert_eq!(reg.find(&jid("a@x/three")), None);
        assert_eq!(reg.find(&jid("b@x")), None);
        assert_eq!(reg.len(), 2);
    }

    #[test]
    fn lookups_fold_case_like_jids_do() {
        let mut reg = Registry::default();
        reg.bind(&jid("Alice@X/r"), 1, ());
        assert!(reg.find(&jid("alice@x/r")).is_some());
        assert!(
            reg.find(&jid("alice@x/R")).is_none(),
            "resources keep their case"
        );
    }

    #[test]
    fn a_rebind_takes_over_and_the_replaced_conn_cannot_unbind_it() {
        let mut reg = Registry::default();
        reg.bind(&jid("a@x/r"), 1, "old");
        reg.bind(&jid("a@x/r"), 2, "new");
        assert_eq!(reg.len(), 1);
        assert!(!reg.unbind(&jid("a@x/r"), 1));
        assert_eq!(reg.find(&jid("a@x/r")), Some(&"new"));
        assert!(reg.unbind(&jid("a@x/r"), 2));
        assert_eq!(reg.find(&jid("a@x")), None);
        assert!(reg.is_empty());
        assert!(
            reg.users.is_empty(),
            "no user key is left with an empty list"
        );
    }

    #[test]
    fn unbinding_one_resource_keeps_the_others() {
        let mut reg = Registry::default();
        reg.bind(&jid("a@x/one"), 1, "one");
        reg.bind(&jid("a@x/two"), 2, "two");
        assert!(reg.unbind(&jid("a@x/one"), 1));
        assert_eq!(reg.find(&jid("a@x")), Some(&"two"));
        assert!(!reg.unbind(&jid("a@x/one"), 1), "already gone");
    }
}
