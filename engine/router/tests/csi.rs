//! XEP-0352 Client State Indication through the router harness: what an inactive session
//! gets at once, what waits (coalesced), the order of the flush, the byte budget, XEP-0198
//! counting, and that nothing is kept for an active session.

mod common;

use common::{acks, enable, resume, resume_id, R};
use rookery_testkit::{ClientId, Cluster};

const INACTIVE: &str = "<inactive xmlns='urn:xmpp:csi:0'/>";
const ACTIVE: &str = "<active xmlns='urn:xmpp:csi:0'/>";

fn presence(to: &str, show: &str) -> String {
    format!("<presence to='{to}'><show>{show}</show></presence>")
}

fn composing(to: &str, state: &str) -> String {
    format!(
        "<message to='{to}' type='chat'><{state} \
         xmlns='http://jabber.org/protocol/chatstates'/></message>"
    )
}

/// What `client` receives as `from` sent it.
fn stamped(stanza: &str, from: &str) -> String {
    let end = stanza.find('>').expect("a tag");
    let (tag, rest) = stanza.split_at(end);
    format!("{tag} from='{from}'{rest}")
}

fn pair() -> (Cluster, (ClientId, String), (ClientId, String)) {
    let mut cluster = Cluster::new(1);
    let alice = cluster.login(0, "alice", Some("phone"));
    let bob = cluster.login(0, "bob", Some("x"));
    (cluster, alice, bob)
}

#[test]
fn presence_and_chat_states_wait_coalesced_until_something_urgent() {
    let (mut cluster, (a, a_jid), (b, b_jid)) = pair();
    cluster.send(a, INACTIVE);
    assert_eq!(cluster.take_output(a), "", "no answer to a nonza");
    let away = presence(&a_jid, "away");
    let dnd = presence(&a_jid, "dnd");
    let typing = composing(&a_jid, "composing");
    let paused = composing(&a_jid, "paused");
    for stanza in [&away, &typing, &dnd, &paused] {
        cluster.send(b, stanza);
    }
    assert_eq!(cluster.take_output(a), "", "all held");
    assert_eq!(cluster.router(0).stats().csi_coalesced, 2);

    let body = format!("<message to='{a_jid}' type='chat' id='u'><body>now</body></message>");
    cluster.send(b, &body);
    // Latest presence and latest chat state, in the order of their latest arrival, then
    // the message.
    assert_eq!(
        cluster.take_output(a),
        [&dnd, &paused, &body].map(|s| stamped(s, &b_jid)).concat()
    );
    // Still inactive: the next presence waits again, and `<active/>` writes it.
    let chat = presence(&a_jid, "chat");
    cluster.send(b, &chat);
    assert_eq!(cluster.take_output(a), "");
    cluster.send(a, ACTIVE);
    assert_eq!(cluster.take_output(a), stamped(&chat, &b_jid));
    // Active: nothing waits.
    cluster.send(b, &away);
    assert_eq!(cluster.take_output(a), stamped(&away, &b_jid));
}

#[test]
fn iq_and_errors_are_urgent_and_flush_first() {
    let (mut cluster, (a, a_jid), (b, b_jid)) = pair();
    cluster.send(a, INACTIVE);
    let away = presence(&a_jid, "away");
    cluster.send(b, &away);
    let ping = format!("<iq to='{a_jid}' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>");
    cluster.send(b, &ping);
    assert_eq!(
        cluster.take_output(a),
        [stamped(&away, &b_jid), stamped(&ping, &b_jid)].concat()
    );
    // The session's own requests are answered at once too.
    cluster.send(b, &away);
    cluster.send(
        a,
        "<iq type='get' id='own'><ping xmlns='urn:xmpp:ping'/></iq>",
    );
    let out = cluster.take_output(a);
    assert!(out.starts_with("<presence"), "{out}");
    assert!(
        out.ends_with(&format!("<iq type='result' id='own' to='{a_jid}'/>")),
        "{out}"
    );
    // A presence with a store hint is urgent.
    let hinted = format!("<presence to='{a_jid}'><store xmlns='urn:xmpp:hints'/></presence>");
    cluster.send(b, &hinted);
    assert_eq!(cluster.take_output(a), stamped(&hinted, &b_jid));
}

#[test]
fn overflowing_the_budget_flushes_everything() {
    let mut cluster = Cluster::new(1);
    let (a, a_jid) = cluster.login(0, "alice", Some("phone"));
    let senders: Vec<_> = (0..3)
        .map(|i| cluster.login(0, "bob", Some(&format!("r{i}"))))
        .collect();
    cluster.send(a, INACTIVE);
    let status = "s".repeat(7 * 1024);
    let big = format!("<presence to='{a_jid}'><status>{status}</status></presence>");
    cluster.send(senders[0].0, &big);
    cluster.send(senders[1].0, &big);
    assert_eq!(cluster.take_output(a), "", "14 KiB held");
    cluster.send(senders[2].0, &big);
    let out = cluster.take_output(a);
    assert_eq!(out.matches("<presence").count(), 3, "all three, in order");
    let froms: Vec<_> = senders
        .iter()
        .map(|(_, jid)| out.find(jid.as_str()))
        .collect();
    assert!(froms.windows(2).all(|w| w[0] < w[1]), "{froms:?}");
}

#[test]
fn nonzas_are_not_counted_and_held_stanzas_are_counted_when_written() {
    let (mut cluster, (a, a_jid), (b, _)) = pair();
    enable(&mut cluster, a, false);
    cluster.send(a, INACTIVE);
    cluster.send(b, &presence(&a_jid, "away"));
    cluster.send(a, R);
    // Nothing counted inbound (the nonza), nothing sent yet (h of the server's <r/> aside).
    assert_eq!(acks(&cluster.take_output(a)), [0]);
    cluster.send(a, ACTIVE);
    cluster.send(a, R);
    let out = cluster.take_output(a);
    assert!(out.starts_with("<presence"), "{out}");
    assert_eq!(acks(&out), [0]);
    // The presence was the first stanza the server counted for this stream: h=1 settles it.
    cluster.send(a, &common::ack(1));
    assert!(!cluster.is_closed(a));
}

#[test]
fn nothing_is_kept_for_active_sessions_and_little_for_inactive_ones() {
    let (mut cluster, (a, a_jid), (b, _)) = pair();
    let before = cluster.router(0).heap_bytes();
    cluster.send(a, ACTIVE);
    assert_eq!(
        cluster.router(0).heap_bytes(),
        before,
        "active costs nothing"
    );
    cluster.send(a, INACTIVE);
    let inactive = cluster.router(0).heap_bytes();
    cluster.send(b, &presence(&a_jid, "away"));
    let holding = cluster.router(0).heap_bytes();
    assert!(holding > inactive, "{holding} > {inactive}");
    cluster.send(a, ACTIVE);
    cluster.take_output(a);
    // The held stanza is gone (the side map keeps its table's capacity for the next one).
    assert!(cluster.router(0).heap_bytes() < holding);
}

#[test]
fn an_unknown_csi_element_is_a_stream_error() {
    let (mut cluster, (a, _), _) = pair();
    cluster.send(a, "<sleepy xmlns='urn:xmpp:csi:0'/>");
    let out = cluster.take_output(a);
    assert!(out.contains("unsupported-stanza-type"), "{out}");
    assert!(cluster.is_closed(a));
}

/// The idle cost of XEP-0352: bytes per session that went inactive with nothing held (the
/// side map's entry; an active session costs nothing). Printed for the record
/// (`cargo test --release -p rookery-router --test csi -- --nocapture idle`).
#[test]
fn idle_bytes_per_inactive_session() {
    const SESSIONS: usize = 1000;
    let mut cluster = Cluster::new(1);
    let clients: Vec<_> = (0..SESSIONS)
        .map(|n| cluster.login(0, &format!("u{n}"), Some("r")).0)
        .collect();
    let before = cluster.router(0).heap_bytes();
    for &client in &clients {
        cluster.send(client, INACTIVE);
    }
    let after = cluster.router(0).heap_bytes();
    let per_session = (after - before) as f64 / SESSIONS as f64;
    println!("idle bytes per inactive session: {per_session:.1} B ({SESSIONS} sessions)");
    // One 32 B entry (+1 control byte) in a hash table at most 7/8 full, grown by doubling.
    assert!(per_session <= 64.0, "{per_session} B per inactive session");
}

#[test]
fn what_was_held_survives_a_xep_0198_detach_and_comes_after_resumed() {
    let (mut cluster, (a, a_jid), (b, b_jid)) = pair();
    let previd = resume_id(&enable(&mut cluster, a, true));
    cluster.send(a, INACTIVE);
    let away = presence(&a_jid, "away");
    cluster.send(b, &away);
    assert_eq!(cluster.take_output(a), "");
    cluster.disconnect(a);
    let again = cluster.authenticate(0, "alice");
    cluster.send(again, &resume(&previd, 0));
    let out = cluster.take_output(again);
    let resumed = format!("<resumed xmlns='urn:xmpp:sm:3' h='0' previd='{previd}'/>");
    assert!(out.starts_with(&resumed), "{out}");
    assert!(out.contains(&stamped(&away, &b_jid)), "{out}");
    // The new stream is active: nothing waits.
    cluster.send(b, &presence(&a_jid, "dnd"));
    assert!(cluster.take_output(again).contains("<show>dnd</show>"));
}
