//! XEP-0077 in-band registration before authentication (`stream::register`): advertised only
//! when on and on loopback or under TLS, the form, creation on the user's home shard (here or
//! after a hand-off), then a login with the new password; conflict, not-acceptable,
//! not-allowed; and registrations counted by the failed-login throttle.

use std::net::IpAddr;

use rookery_router::{AuthBackend, RouterConfig};
use rookery_store::{Durability, Store, StoreConfig};
use rookery_testkit::{client_header, plain_auth, user_homed_on, ClientId, Cluster};

const SHARDS: u16 = 2;
const FEATURE: &str = "<register xmlns='http://jabber.org/features/iq-register'/>";
const SUCCESS: &str = "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";

fn cluster(adjust: impl FnOnce(&mut RouterConfig)) -> Cluster {
    Cluster::with_stores(
        SHARDS,
        |config| {
            config.auth = AuthBackend::File;
            config.allow_registration = true;
            adjust(config);
        },
        |shard| {
            let config = StoreConfig::new("", shard).with_durability(Durability::Memory);
            Store::open(config).expect("a memory store")
        },
    )
}

fn loopback(last: u8) -> Option<IpAddr> {
    Some(IpAddr::from([127, 0, 0, last]))
}

/// A conn on shard 0 from `peer` with its stream open; returns it and the features.
fn opened(cluster: &mut Cluster, peer: Option<IpAddr>) -> (ClientId, String) {
    let client = cluster.connect_from(0, peer);
    cluster.send(client, &client_header());
    let features = cluster.take_output(client);
    (client, features)
}

fn register_set(id: &str, user: &str, password: &str) -> String {
    format!(
        "<iq type='set' id='{id}'><query xmlns='jabber:iq:register'><username>{user}</username>\
         <password>{password}</password></query></iq>"
    )
}

fn result(id: &str) -> String {
    format!("<iq type='result' id='{id}'/>")
}

fn error_of(output: &str) -> &str {
    let start = output.find("<error ").expect("an error") + "<error ".len();
    let after = &output[start..];
    let name = after
        .find("><")
        .map(|i| &after[i + 2..])
        .expect("a condition");
    &name[..name.find(' ').expect("a namespace")]
}

#[test]
fn the_feature_is_offered_only_when_on_and_on_loopback() {
    let mut on = cluster(|_| {});
    assert!(opened(&mut on, loopback(1)).1.contains(FEATURE));
    let (exposed, features) = opened(&mut on, Some(IpAddr::from([192, 0, 2, 1])));
    assert!(
        !features.contains(FEATURE),
        "in the clear off loopback: {features}"
    );
    on.send(
        exposed,
        "<iq type='get' id='g'><query xmlns='jabber:iq:register'/></iq>",
    );
    assert_eq!(error_of(&on.take_output(exposed)), "not-allowed");

    let mut off = cluster(|config| config.allow_registration = false);
    let (client, features) = opened(&mut off, loopback(1));
    assert!(!features.contains(FEATURE), "{features}");
    off.send(client, &register_set("r", "dave", "secret"));
    assert_eq!(error_of(&off.take_output(client)), "not-allowed");
    assert!(!off.is_closed(client), "an answer, not a closed stream");
}

#[test]
fn the_form_then_an_account_here_and_one_handed_to_its_home_shard_then_logins() {
    let mut cluster = cluster(|_| {});
    for home in 0..SHARDS {
        let user = user_homed_on("new", home, SHARDS);
        let (client, _) = opened(&mut cluster, loopback(1));
        cluster.send(
            client,
            "<iq type='get' id='g1'><query xmlns='jabber:iq:register'/></iq>",
        );
        let form = cluster.take_output(client);
        assert!(form.starts_with("<iq type='result' id='g1'><query xmlns='jabber:iq:register'>"));
        assert!(form.contains("<username/><password/>"), "{form}");

        cluster.send(client, &register_set("r1", &user, "pass word"));
        assert_eq!(cluster.take_output(client), result("r1"), "{user}");
        assert_eq!(cluster.shard_of(client), home, "created on its home shard");
        // XEP-0077 3.1: the client authenticates next, on the same stream.
        cluster.send(client, &plain_auth(&user, "pass word"));
        assert_eq!(cluster.take_output(client), SUCCESS);

        let (again, _) = opened(&mut cluster, loopback(2));
        cluster.send(again, &register_set("r2", &user, "other"));
        assert_eq!(error_of(&cluster.take_output(again)), "conflict");
        let (login, _) = opened(&mut cluster, loopback(3));
        cluster.send(login, &plain_auth(&user, "pass word"));
        assert_eq!(
            cluster.take_output(login),
            SUCCESS,
            "the first password stays"
        );
    }
    let created: u64 = (0..SHARDS)
        .map(|s| cluster.router(s).stats().registrations)
        .sum();
    assert_eq!(created, 2);
}

#[test]
fn bad_usernames_and_passwords_are_not_acceptable() {
    let mut cluster = cluster(|_| {});
    let (client, _) = opened(&mut cluster, loopback(1));
    for (user, password) in [("a@b", "pw"), ("", "pw"), ("erin", ""), ("a b/c", "pw")] {
        cluster.send(client, &register_set("r", user, password));
        let out = cluster.take_output(client);
        assert_eq!(
            error_of(&out),
            "not-acceptable",
            "{user:?} {password:?}: {out}"
        );
    }
    cluster.send(
        client,
        "<iq type='set' id='x'><query xmlns='jabber:iq:register'><remove/></query></iq>",
    );
    assert_eq!(error_of(&cluster.take_output(client)), "not-allowed");
}

#[test]
fn registrations_count_against_the_address_budget() {
    let mut cluster = cluster(|config| config.auth_fail_per_address = 1);
    let (client, _) = opened(&mut cluster, loopback(1));
    let user = user_homed_on("first", 0, SHARDS);
    cluster.send(client, &register_set("r1", &user, "pw"));
    assert_eq!(cluster.take_output(client), result("r1"));
    let user = user_homed_on("second", 0, SHARDS);
    cluster.send(client, &register_set("r2", &user, "pw"));
    assert_eq!(
        error_of(&cluster.take_output(client)),
        "resource-constraint"
    );
    cluster.send(client, &register_set("r3", &user, "pw"));
    assert!(cluster.take_output(client).contains("<policy-violation "));
    assert!(cluster.is_closed(client));
    let (other, _) = opened(&mut cluster, loopback(2));
    cluster.send(other, &register_set("r4", &user, "pw"));
    assert_eq!(cluster.take_output(other), result("r4"), "another address");
}
