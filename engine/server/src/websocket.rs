//! XMPP over WebSocket (RFC 7395) in the server: upgraded conns from the HTTP server's threads
//! to the shards, which then speak WebSocket themselves.
//!
//! The path of a WebSocket conn: rookery-http answers the upgrade at `/xmpp-websocket` and
//! hands the socket (plain HTTP), or one end of a socketpair it relays TLS into (HTTPS), with
//! the bytes it read past the request, to [`WsRouter::hand_over`] (its `WebSocketSink`). That
//! picks a shard round-robin and pushes the conn into the shard's [`WsInbox`], a bounded
//! lock-free queue (crossbeam `ArrayQueue`, many producers, one consumer), then wakes the
//! shard. At the top of its turn the shard adopts each socket into its driver, gives it a
//! WebSocket layer (`transport`: rookery-ws's `ServerLayer`, below TLS if any), tells the
//! router it connected (the router asks `Effects::transport` and picks its RFC 7395 dialect),
//! and feeds the bytes read early. From there the conn is like any other: same limits,
//! SASL, bind, hand-off to its user's home shard (the layer travels with the socket),
//! XEP-0198 resumption.
//!
//! What it does not do: HTTP (rookery-http), frames (rookery-ws), or balance by load (round
//! robin; a user's conn moves to its home shard at bind anyway).
//!
//! Invariants: a full inbox refuses the conn (the HTTP side closes it and counts
//! `rookery_http_refusals_total{reason="websocket_handover"}`); a shard never waits on this
//! queue; conns taken per turn are bounded ([`MAX_WS_ADOPTS_PER_TURN`]).

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use crossbeam_queue::ArrayQueue;
use rookery_http::WebSocketConn;
use rookery_io::WakeHandle;

/// Upgraded conns a shard adopts per turn; the rest wait for the next turn.
pub const MAX_WS_ADOPTS_PER_TURN: usize = 256;

/// One shard's upgraded conns waiting to be adopted.
pub struct WsInbox {
    queue: ArrayQueue<WebSocketConn>,
    /// Set once the shard's driver exists (the HTTP server starts before the shards).
    waker: OnceLock<WakeHandle>,
}

impl std::fmt::Debug for WsInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsInbox")
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

impl WsInbox {
    /// Conns held at most: upgrades arrive at the HTTP server's pace and are drained every
    /// turn, so this fills only if a shard stops turning.
    pub const CAPACITY: usize = 1024;

    pub fn new(capacity: usize) -> WsInbox {
        WsInbox {
            queue: ArrayQueue::new(capacity.max(1)),
            waker: OnceLock::new(),
        }
    }

    /// The shard's waker (called once, by the shard at start).
    pub fn set_waker(&self, waker: WakeHandle) {
        let _ = self.waker.set(waker);
    }

    /// Queues `conn` and wakes the shard; gives it back if the inbox is full.
    pub fn push(&self, conn: WebSocketConn) -> Result<(), WebSocketConn> {
        self.queue.push(conn)?;
        // A shard that has no waker yet has not started its loop: it drains at its first turn.
        if let Some(waker) = self.waker.get() {
            waker.wake();
        }
        Ok(())
    }

    /// Hands at most `max` queued conns to `adopt`, oldest first (the owning shard only).
    pub fn drain(&self, max: usize, mut adopt: impl FnMut(WebSocketConn)) {
        for _ in 0..max {
            let Some(conn) = self.queue.pop() else {
                return;
            };
            adopt(conn);
        }
    }
}

/// Spreads upgraded conns over the shards' inboxes.
#[derive(Debug)]
pub struct WsRouter {
    inboxes: Vec<Arc<WsInbox>>,
    next: AtomicUsize,
}

impl WsRouter {
    pub fn new(shards: usize, capacity: usize) -> WsRouter {
        WsRouter {
            inboxes: (0..shards.max(1))
                .map(|_| Arc::new(WsInbox::new(capacity)))
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Shard `index`'s inbox.
    pub fn inbox(&self, index: usize) -> Arc<WsInbox> {
        Arc::clone(&self.inboxes[index])
    }

    /// The next shard's inbox takes `conn` (the HTTP server's sink, on its threads).
    pub fn hand_over(&self, conn: WebSocketConn) -> Result<(), WebSocketConn> {
        let shard = self.next.fetch_add(1, Relaxed) % self.inboxes.len();
        self.inboxes[shard].push(conn)
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::OwnedFd;

    use super::*;

    fn conn() -> WebSocketConn {
        let (socket, _) = std::os::unix::net::UnixStream::pair().unwrap();
        WebSocketConn {
            socket: OwnedFd::from(socket),
            leftover: Vec::new(),
            peer: "127.0.0.1:1".parse().unwrap(),
            tls_relayed: false,
        }
    }

    #[test]
    fn conns_go_round_robin_and_a_full_inbox_gives_them_back() {
        let router = WsRouter::new(2, 1);
        assert!(router.hand_over(conn()).is_ok());
        assert!(router.hand_over(conn()).is_ok());
        assert!(router.hand_over(conn()).is_err(), "shard 0's inbox is full");
        for shard in 0..2 {
            let mut count = 0;
            router.inbox(shard).drain(10, |_| count += 1);
            assert_eq!(count, 1);
        }
    }
}
