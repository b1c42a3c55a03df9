//! `--auth file`: stored SCRAM credentials in each user's home-shard store. Logins with
//! SCRAM-SHA-256 (what the client picks from the offer) succeed with the right password from
//! either shard (a login that starts away from the user's home is handed there before the
//! credentials are read), and fail with `not-authorized` for a wrong password or an unknown
//! user; PLAIN is checked against the same stored keys.

use rookery_proto::Jid;
use rookery_router::{accounts, AuthBackend};
use rookery_sasl::Credentials;
use rookery_store::{Durability, Store, StoreConfig};
use rookery_testkit::{client_header, plain_auth, user_homed_on, Cluster, TEST_DOMAIN};

const SHARDS: u16 = 2;
const ITERATIONS: u32 = 4096;

/// A cluster with the file backend where `users` (local part, password) have accounts.
fn cluster_with(users: &[(&str, &str)]) -> Cluster {
    Cluster::with_stores(
        SHARDS,
        |config| config.auth = AuthBackend::File,
        |shard| {
            let config = StoreConfig::new("", shard).with_durability(Durability::Memory);
            let mut store = Store::open(config).expect("a memory store");
            for (user, password) in users {
                let jid = Jid::new(Some(user), TEST_DOMAIN, None).unwrap();
                if rookery_router::Placement::local(SHARDS).home(&jid).shard.0 == shard {
                    let credentials = Credentials::derive(
                        password,
                        ITERATIONS,
                        b"salt-one-sixteen",
                        b"salt-two-sixteen",
                    )
                    .unwrap();
                    accounts::set_credentials(&mut store, &jid, &credentials).unwrap();
                }
            }
            store
        },
    )
}

#[test]
fn scram_logins_succeed_from_either_shard_and_fail_without_the_right_password() {
    let alice = user_homed_on("alice", 1, SHARDS);
    let mut cluster = cluster_with(&[(&alice, "correct horse")]);
    for shard in 0..SHARDS {
        let (_, jid) = cluster
            .try_login(shard, &alice, "correct horse")
            .unwrap_or_else(|failure| panic!("from shard {shard}: {failure}"));
        assert!(jid.starts_with(&format!("{alice}@{TEST_DOMAIN}/")), "{jid}");
        let wrong = cluster
            .try_login(shard, &alice, "battery staple")
            .unwrap_err();
        assert!(wrong.contains("not-authorized"), "{wrong}");
        let unknown = cluster
            .try_login(shard, "nobody", "correct horse")
            .unwrap_err();
        assert!(unknown.contains("not-authorized"), "{unknown}");
    }
}

#[test]
fn the_file_backend_offers_scram_then_plain_checked_against_stored_keys() {
    let bob = user_homed_on("bob", 0, SHARDS);
    let mut cluster = cluster_with(&[(&bob, "pw")]);
    let client = cluster.connect(0);
    cluster.send(client, &client_header());
    let features = cluster.take_output(client);
    assert!(
        features.contains(
            "<mechanism>SCRAM-SHA-256</mechanism><mechanism>SCRAM-SHA-1</mechanism>\
             <mechanism>PLAIN</mechanism>"
        ),
        "{features}"
    );
    cluster.send(client, &plain_auth(&bob, "pw"));
    assert!(cluster.take_output(client).contains("<success"));
    let other = cluster.connect(1);
    cluster.send(other, &client_header());
    cluster.take_output(other);
    cluster.send(other, &plain_auth(&bob, "nope"));
    assert!(cluster.take_output(other).contains("not-authorized"));
}

#[test]
fn a_logged_in_user_changes_their_password_in_band() {
    let alice = user_homed_on("alice", 1, SHARDS);
    let mut cluster = cluster_with(&[(&alice, "old one"), ("bob", "bob's")]);
    let (client, _) = cluster.try_login(0, &alice, "old one").unwrap();
    cluster.take_output(client);
    cluster.send(
        client,
        "<iq type='get' id='g'><query xmlns='jabber:iq:register'/></iq>",
    );
    let form = cluster.take_output(client);
    assert!(
        form.contains("<registered/>") && form.contains(&format!("<username>{alice}</username>")),
        "{form}"
    );
    cluster.send(
        client,
        "<iq type='set' id='x'><query xmlns='jabber:iq:register'><username>bob</username>\
         <password>mine now</password></query></iq>",
    );
    let refused = cluster.take_output(client);
    assert!(
        refused.contains("type='error'") && refused.contains("not-authorized"),
        "{refused}"
    );
    cluster.send(
        client,
        &format!(
            "<iq type='set' id='c'><query xmlns='jabber:iq:register'><username>{alice}</username>\
             <password>new one</password></query></iq>"
        ),
    );
    let changed = cluster.take_output(client);
    assert!(
        changed.contains("type='result'") && changed.contains("id='c'"),
        "{changed}"
    );
    assert!(cluster.try_login(1, &alice, "new one").is_ok());
    let old = cluster.try_login(0, &alice, "old one").unwrap_err();
    assert!(old.contains("not-authorized"), "{old}");
    assert!(
        cluster.try_login(0, "bob", "bob's").is_ok(),
        "bob's account is untouched"
    );
}

#[test]
fn other_backends_have_no_in_band_registration() {
    let mut cluster = Cluster::new(SHARDS);
    let (client, _) = cluster.login(0, "carol", None);
    cluster.take_output(client);
    cluster.send(
        client,
        "<iq type='set' id='c'><query xmlns='jabber:iq:register'><username>carol</username>\
         <password>x</password></query></iq>",
    );
    let answer = cluster.take_output(client);
    assert!(answer.contains("service-unavailable"), "{answer}");
}

#[test]
fn plain_is_not_offered_in_the_clear_off_loopback() {
    let bob = user_homed_on("bob", 0, SHARDS);
    let mut cluster = cluster_with(&[(&bob, "pw")]);
    let remote = cluster.connect_from(0, Some("192.0.2.7".parse().unwrap()));
    cluster.send(remote, &client_header());
    let features = cluster.take_output(remote);
    assert!(
        features.contains("SCRAM-SHA-256") && !features.contains("PLAIN"),
        "{features}"
    );
    cluster.send(remote, &plain_auth(&bob, "pw"));
    let refused = cluster.take_output(remote);
    assert!(refused.contains("invalid-mechanism"), "{refused}");
    let local = cluster.connect_from(0, Some("127.0.0.1".parse().unwrap()));
    cluster.send(local, &client_header());
    assert!(cluster
        .take_output(local)
        .contains("<mechanism>PLAIN</mechanism>"));
}
