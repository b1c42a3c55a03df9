//! Client placement in a cluster: a client authenticated on a node that is not its user's
//! home is sent there with the RFC 6120 `see-other-host` stream error (4.9.3.19), whose text
//! is the home node's client address from the cluster file.
//!
//! When: on the restarted stream's header after SASL success (the first point the user is
//! known and nothing of a session exists yet), so no resource is bound, no presence sent and
//! nothing stored on the wrong node. Bind and resumption check again (a conn can only be
//! handed to a shard of this node).
//!
//! What it does not do: follow the redirect (the client does), or decide placement (see
//! `location`). On a single node (no cluster config) nothing is ever redirected.
//!
//! Invariants: a redirected conn is closed (`Cause::Shard`, session end `Terminate`) and
//! counted in `rookery_redirects_total`; its address comes only from the cluster file.

use rookery_proto::Jid;

use crate::effects::Effects;
use crate::errors::StreamError;
use crate::location::NodeId;
use crate::replies;
use crate::router::Router;

impl Router {
    /// The home node of `bare` and its client address when that node is not this one.
    pub(crate) fn home_elsewhere(&self, bare: &Jid) -> Option<(NodeId, &str)> {
        let cluster = self.config.cluster.as_ref()?;
        let home = self.home.placement.home(bare).node;
        if home == self.home.location.node {
            return None;
        }
        // The cluster file lists every node the table names; a missing one is a wiring bug,
        // and an empty text still tells the client to look elsewhere.
        Some((home, cluster.address_of(home).unwrap_or("")))
    }

    /// Sends `see-other-host` naming the home node of the conn's user and closes the conn, if
    /// that node is not this one; returns whether it did. `header` is whether this stream's
    /// header must be written first (the restarted stream's, not yet answered).
    pub(crate) fn redirect_if_elsewhere(
        &mut self,
        slot: u32,
        header: bool,
        fx: &mut impl Effects,
    ) -> bool {
        let Some(bare) = self.conns.get(slot).and_then(|c| c.jid.as_ref()) else {
            return false;
        };
        let Some((_, address)) = self.home_elsewhere(bare) else {
            return false;
        };
        let address = address.to_owned();
        let dialect = self
            .conns
            .get(slot)
            .map_or_else(Default::default, |c| c.dialect);
        self.reply.clear();
        if header {
            let id = self.ids.stream_id();
            dialect.open(&mut self.reply, &id, self.home.domain.as_str());
        }
        replies::see_other_host(&mut self.reply, dialect, &address);
        self.home.stats.redirects += 1;
        self.stream_error_raw(slot, StreamError::SeeOtherHost.into(), fx);
        true
    }
}
