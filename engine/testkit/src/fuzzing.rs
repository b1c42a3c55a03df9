//! Entry point shared by the router's cargo-fuzz target and its property test (hidden from
//! docs): one client's input, after a scripted login, through a two-shard cluster.
//!
//! What it does: alice (homed on shard 0) and bob (shard 1) log in, become contacts, send
//! initial presence, and bob joins a room; carol (shard 0) stays offline. Then alice's input is
//! fed (in two reads, split where the caller says), the clock moves on, the stores commit, and
//! carol logs in and sends initial presence (so what was stored for her is delivered). It
//! returns every document a client would parse: each client's stream since its login, and each
//! message the stores held before carol came, each wrapped in a stream element that declares
//! what every stream declares. Callers check them with a strict XML parser.
//!
//! What it does not do: check anything itself (the router crate has no XML parser; the fuzz
//! target and the test bring one), or anything on the production path.

use crate::cluster::{user_homed_on, ClientId, Cluster, TEST_DOMAIN};

/// The stream element a client's parser has around every stanza it receives.
const STREAM_OPEN: &str = "<stream:stream xmlns='jabber:client' \
                           xmlns:stream='http://etherx.jabber.org/streams'>";
const STREAM_CLOSE: &str = "</stream:stream>";

/// One document a client would parse, and where it came from.
#[derive(Debug)]
pub struct Delivered {
    /// `stream of <user>` or `stored for <owner>`.
    pub what: String,
    pub document: Vec<u8>,
}

/// The room bob is in (its home shard is whichever FNV says).
pub const ROOM: &str = "lounge@groups.example.com";

/// Runs the scenario of the module docs with `input` as alice's bytes, the first `split` of
/// them in one read and the rest in the next. Panics only on a router bug (a harness check).
pub fn client_session(input: &[u8], split: usize) -> Vec<Delivered> {
    let mut cluster = Cluster::new(2);
    let names = [
        user_homed_on("alice", 0, 2),
        user_homed_on("bob", 1, 2),
        user_homed_on("carol", 0, 2),
    ];
    let (alice, _) = cluster.login(0, &names[0], Some("a"));
    let (bob, _) = cluster.login(1, &names[1], Some("b"));
    befriend(&mut cluster, (alice, &names[0]), (bob, &names[1]));
    for client in [alice, bob] {
        cluster.send(client, "<presence/>");
    }
    cluster.send(
        bob,
        &format!(
            "<presence to='{ROOM}/bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ),
    );
    cluster.take_output(alice);
    cluster.take_output(bob);
    let split = split.min(input.len());
    cluster.send_bytes(alice, &input[..split], b"");
    cluster.send_bytes(alice, &input[split..], b"");
    cluster.advance(10);
    cluster.commit_all();
    let mut delivered = stored(&cluster);
    for (client, name) in [(alice, &names[0]), (bob, &names[1])] {
        delivered.push(stream_of(&mut cluster, client, name));
    }
    let (carol, _) = cluster.login(0, &names[2], Some("c"));
    cluster.send(carol, "<presence/>");
    delivered.push(stream_of(&mut cluster, carol, &names[2]));
    delivered
}

/// The fuzz target's body: `data[0]` is the split, `data[1..]` alice's input; every document
/// of [`client_session`] must be UTF-8 and pass `parse` (a strict XML parser the caller
/// brings: this crate has none). Panics naming the document otherwise, so the fuzzer reports
/// it.
pub fn check_session(data: &[u8], parse: impl Fn(&str) -> Result<(), String>) {
    let Some((&split, input)) = data.split_first() else {
        return;
    };
    for delivered in client_session(input, usize::from(split)) {
        let Ok(text) = std::str::from_utf8(&delivered.document) else {
            panic!("{} is not UTF-8", delivered.what);
        };
        if let Err(error) = parse(text) {
            panic!("{} is not well-formed: {error}\n{text}", delivered.what);
        }
    }
}

/// The mutual subscription handshake between two users.
fn befriend(cluster: &mut Cluster, a: (ClientId, &str), b: (ClientId, &str)) {
    for (from, to) in [(a, b), (b, a)] {
        let contact = format!("{}@{TEST_DOMAIN}", to.1);
        let user = format!("{}@{TEST_DOMAIN}", from.1);
        cluster.send(
            from.0,
            &format!("<presence to='{contact}' type='subscribe'/>"),
        );
        cluster.send(to.0, &format!("<presence to='{user}' type='subscribed'/>"));
    }
}

/// Every message the cluster's stores hold, as documents.
fn stored(cluster: &Cluster) -> Vec<Delivered> {
    let mut out = Vec::new();
    for router in &cluster.routers {
        let store = router.store();
        for owner in store.owners() {
            for message in store.queue(owner) {
                // The harness's stores keep stanzas in memory: readable at once.
                let stanza = store
                    .stanza_now(message)
                    .expect("the harness keeps stanzas in memory");
                out.push(Delivered {
                    what: format!("stored for {owner}"),
                    document: wrap(&stanza, false),
                });
            }
        }
    }
    out
}

/// What `client` received since its login (or the last call), as a document.
fn stream_of(cluster: &mut Cluster, client: ClientId, name: &str) -> Delivered {
    let bytes = cluster.take_bytes(client);
    let closed = bytes.ends_with(STREAM_CLOSE.as_bytes());
    Delivered {
        what: format!("stream of {name}"),
        document: wrap(&bytes, closed),
    }
}

/// `content` inside a stream element (`closed`: `content` already ends with the close tag).
fn wrap(content: &[u8], closed: bool) -> Vec<u8> {
    let mut doc = STREAM_OPEN.as_bytes().to_vec();
    doc.extend_from_slice(content);
    if !closed {
        doc.extend_from_slice(STREAM_CLOSE.as_bytes());
    }
    doc
}
