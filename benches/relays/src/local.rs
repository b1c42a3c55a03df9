//! The routing side of the thread-per-core peers (monoio, glommio): one registry per thread,
//! each session's handle an [`Outbox`] that the sender stamps into directly.
//!
//! What it does not do: I/O (each binary's [`ChunkRead`] reads, its writer drains), or
//! cross-thread routing: one executor thread serves every conn, so a registry per thread is the
//! whole map.
//!
//! Invariant: a conn registers only its own outbox, and unbinds it before closing it.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::rc::Rc;
use std::sync::Arc;

use rookery_proto::{Jid, StanzaView};

use crate::conn::{Conn, Flow, Router};
use crate::outbox::{Outbox, PushError};
use crate::registry::{ConnId, Registry};
use crate::stats::Stats;

/// What every conn task of one executor shares.
pub struct LocalEnv {
    pub registry: RefCell<Registry<Rc<Outbox>>>,
    pub domain: Arc<str>,
    pub stats: Arc<Stats>,
    /// The last conn id handed out by [`LocalEnv::accepted`].
    last_id: Cell<ConnId>,
}

impl LocalEnv {
    pub fn new(domain: Arc<str>, stats: Arc<Stats>) -> LocalEnv {
        LocalEnv {
            registry: RefCell::new(Registry::default()),
            domain,
            stats,
            last_id: Cell::new(0),
        }
    }

    /// A conn was accepted: counted, and given the next id (from 1).
    pub fn accepted(&self) -> ConnId {
        self.stats.conn_accepted();
        self.last_id.set(self.last_id.get() + 1);
        self.last_id.get()
    }

    /// The conn `id` is closing: its session (if it still holds the route) goes away.
    pub fn unbind(&self, jid: &Jid, id: ConnId) {
        self.registry.borrow_mut().unbind(jid, id);
    }
}

/// A conn's read half as [`LocalConn::serve`] drives it: each runtime's socket reader.
pub trait ChunkRead {
    /// Reads once into `buf` (owned: an io_uring runtime holds it while the read is in flight),
    /// handing it back with the count read; 0 is the end of the stream.
    fn read_chunk(&mut self, buf: Vec<u8>) -> impl Future<Output = (io::Result<usize>, Vec<u8>)>;
}

/// One conn's reading side on a thread-per-core executor, the same on every such runtime:
/// the binaries only supply a [`ChunkRead`] to [`LocalConn::serve`].
pub struct LocalConn {
    conn: Conn,
    id: ConnId,
    /// This conn's own outbox: its replies and the stanzas routed to it.
    outbox: Rc<Outbox>,
    /// Replies of one read, reused across reads.
    out: Vec<u8>,
}

impl LocalConn {
    pub fn new(env: &LocalEnv, id: ConnId, outbox: Rc<Outbox>) -> LocalConn {
        LocalConn {
            conn: Conn::new(env.domain.clone(), id),
            id,
            outbox,
            out: Vec::new(),
        }
    }

    /// The conn's reader task: reads into `buf` until the peer closes (or a read fails) or the
    /// conn is done, then [`LocalConn::close`]s.
    pub async fn serve(mut self, env: &LocalEnv, mut reader: impl ChunkRead, mut buf: Vec<u8>) {
        loop {
            let (read, filled) = reader.read_chunk(buf).await;
            buf = filled;
            let n = match read {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if !self.on_read(env, &buf[..n]) {
                break;
            }
        }
        self.close(env);
    }

    /// Parses and routes one read's `bytes` and queues the conn's replies on its own outbox.
    /// Returns false when the conn is done: it closed its stream, or its outbox is closed or
    /// full.
    fn on_read(&mut self, env: &LocalEnv, bytes: &[u8]) -> bool {
        let mut router = LocalRouter {
            env,
            id: self.id,
            outbox: &self.outbox,
        };
        let flow = self.conn.on_data(bytes, &mut self.out, &mut router);
        let out = &self.out;
        let queued = out.is_empty() || self.outbox.push(|q| q.extend_from_slice(out)).is_ok();
        self.out.clear();
        queued && flow != Flow::Close
    }

    /// The reading stopped: the route goes away first, then the outbox closes (the module
    /// invariant: no sender finds a closed outbox through the registry).
    fn close(self, env: &LocalEnv) {
        if let Some(jid) = self.conn.jid() {
            env.unbind(jid, self.id);
        }
        self.outbox.close();
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

    /// Hands out scripted chunks, then the end of the stream; records how many routes were
    /// bound when the end came.
    struct Script<'a> {
        chunks: std::vec::IntoIter<Vec<u8>>,
        env: &'a LocalEnv,
        routes_at_end: Rc<Cell<Option<usize>>>,
    }

    impl ChunkRead for Script<'_> {
        async fn read_chunk(&mut self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
            let Some(chunk) = self.chunks.next() else {
                self.routes_at_end
                    .set(Some(self.env.registry.borrow().len()));
                return (Ok(0), buf);
            };
            buf[..chunk.len()].copy_from_slice(&chunk);
            (Ok(chunk.len()), buf)
        }
    }

    #[test]
    fn serve_queues_the_replies_and_unbinds_then_closes_at_the_end_of_the_stream() {
        use base64::Engine as _;
        const HEADER: &[u8] = b"<?xml version='1.0'?><stream:stream to='x' \
xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";
        let env = LocalEnv::new("x".into(), Arc::default());
        let creds = base64::engine::general_purpose::STANDARD.encode("\0u\0pw");
        let auth = format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>"
        );
        let bind = b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
<resource>r</resource></bind></iq>";
        let routes_at_end = Rc::new(Cell::new(None));
        let script = Script {
            chunks: vec![
                HEADER.to_vec(),
                auth.into_bytes(),
                HEADER.to_vec(),
                bind.to_vec(),
            ]
            .into_iter(),
            env: &env,
            routes_at_end: routes_at_end.clone(),
        };
        let outbox = Rc::new(Outbox::default());
        let id = env.accepted();
        let conn = LocalConn::new(&env, id, outbox.clone());
        futures_lite::future::block_on(conn.serve(&env, script, vec![0; 4096]));
        assert_eq!(routes_at_end.get(), Some(1), "bound while reading");
        assert_eq!(env.registry.borrow().len(), 0, "unbound at the end");
        let replies = futures_lite::future::block_on(outbox.take(Vec::new())).unwrap();
        let replies = String::from_utf8(replies).unwrap();
        assert!(replies.contains("<success "), "{replies}");
        assert!(
            replies.ends_with("<jid>u@x/r</jid></bind></iq>"),
            "{replies}"
        );
        assert_eq!(outbox.push(|b| b.push(b'!')), Err(PushError::Closed));
        assert_eq!((id, env.accepted()), (1, 2), "ids count up from 1");
    }
}
