//! Helpers shared by the integration tests: temporary log directories, store constructors,
//! XEP-0198 client steps and the stanza error every bounce carries. Only test scaffolding:
//! no assertion here is weaker than the inline one it replaced.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::Path;

use rookery_proto::Jid;
use rookery_router::Placement;
use rookery_store::{Durability, Store, StoreConfig};
use rookery_testkit::{ClientId, Cluster, TEST_DOMAIN};

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let prefix = format!("rookery-router-{tag}-");
        TempDir(
            tempfile::Builder::new()
                .prefix(&prefix)
                .tempdir()
                .expect("create temp dir"),
        )
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

/// Shard `shard`'s store with `Log` durability in `dir`.
pub fn log_store(dir: &Path, shard: u16) -> Store {
    let config = StoreConfig::new(dir, shard).with_durability(Durability::Log);
    Store::open(config).expect("open log store")
}

/// An in-memory store with an offline quota of `offline_max`.
pub fn memory_store(shard: u16, offline_max: usize) -> Store {
    let mut config = StoreConfig::new("", shard).with_durability(Durability::Memory);
    config.offline_max = offline_max;
    Store::open(config).expect("open memory store")
}

/// A cluster whose shards log to `dir` (commits are the test's to run).
pub fn log_cluster(shards: u16, dir: &Path) -> Cluster {
    Cluster::with_stores(shards, |_| {}, |shard| log_store(dir, shard))
}

/// Sends `<enable/>` (with resume if asked); returns the whole answer.
pub fn enable(cluster: &mut Cluster, client: ClientId, resume: bool) -> String {
    let attr = if resume { " resume='true'" } else { "" };
    cluster.send(client, &format!("<enable xmlns='urn:xmpp:sm:3'{attr}/>"));
    let out = cluster.take_output(client);
    assert!(out.starts_with("<enabled xmlns='urn:xmpp:sm:3'"), "{out}");
    out
}

/// The resumption id in an `<enabled/>` answer.
pub fn resume_id(enabled: &str) -> String {
    let start = enabled.find(" id='").expect("an id") + " id='".len();
    let end = enabled[start..].find('\'').expect("quoted") + start;
    enabled[start..end].to_owned()
}

/// Every `h` of the `<a/>` elements in `text`, in order.
pub fn acks(text: &str) -> Vec<u32> {
    text.split("<a xmlns='urn:xmpp:sm:3' h='")
        .skip(1)
        .map(|rest| {
            rest[..rest.find('\'').expect("quoted")]
                .parse()
                .expect("a number")
        })
        .collect()
}

/// The ids of the messages in `text`, in order.
pub fn message_ids(text: &str) -> Vec<String> {
    text.split("<message ")
        .skip(1)
        .filter_map(|rest| {
            let tag = &rest[..rest.find('>')?];
            let start = tag.find("id='")? + 4;
            let end = tag[start..].find('\'')? + start;
            Some(tag[start..end].to_owned())
        })
        .collect()
}

/// A chat message with id `id` and body `body`.
pub fn chat(to: &str, id: &str, body: &str) -> String {
    format!("<message to='{to}' type='chat' id='{id}'><body>{body}</body></message>")
}

pub const R: &str = "<r xmlns='urn:xmpp:sm:3'/>";

pub fn ack(h: u32) -> String {
    format!("<a xmlns='urn:xmpp:sm:3' h='{h}'/>")
}

pub fn resume(previd: &str, h: u32) -> String {
    format!("<resume xmlns='urn:xmpp:sm:3' previd='{previd}' h='{h}'/>")
}

/// The OS error of a full disk.
pub fn enospc() -> std::io::Error {
    std::io::Error::from_raw_os_error(28)
}

pub const STANZA_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// Asserts `out` is exactly a `<kind/>` error answering `id`, from `from` to `to`, with
/// condition service-unavailable (type cancel).
pub fn assert_service_unavailable(out: &str, kind: &str, id: &str, from: &str, to: &str) {
    assert_eq!(
        out,
        format!(
            "<{kind} type='error' id='{id}' from='{from}' to='{to}'><error type='cancel'>\
             <service-unavailable xmlns='{STANZA_ERRORS}'/></error></{kind}>"
        )
    );
}

/// The first `room<n>@groups.<domain>` homed on `shard` of `shards`.
pub fn room_homed_on(shard: u16, shards: u16) -> String {
    (0..1_000)
        .map(|n| format!("room{n}@groups.{TEST_DOMAIN}"))
        .find(|room| {
            let jid = Jid::parse(room).expect("valid room JID");
            Placement::local(shards).home(&jid).shard.0 == shard
        })
        .expect("some room is homed on every shard")
}

/// `client` joins `room` as `nick` (XEP-0045 7.2); its output since.
pub fn join(cluster: &mut Cluster, client: ClientId, room: &str, nick: &str) -> String {
    cluster.send(
        client,
        &format!(
            "<presence to='{room}/{nick}'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ),
    );
    cluster.take_output(client)
}

/// Runs the mutual subscription handshake between two users, draining their output.
pub fn befriend(cluster: &mut Cluster, a: (ClientId, &str), b: (ClientId, &str)) {
    for (from, to) in [(a, b), (b, a)] {
        cluster.send(
            from.0,
            &format!("<presence to='{}' type='subscribe'/>", to.1),
        );
        cluster.send(
            to.0,
            &format!("<presence to='{}' type='subscribed'/>", from.1),
        );
    }
    cluster.take_output(a.0);
    cluster.take_output(b.0);
}
