//! Failed logins slowed per source address and per account (`stream::throttle`), through the
//! public API: the delayed answer, the refusal and close past the hard budget, counting
//! across addresses, recovery after the window, the table bound, and a login handed to the
//! user's home shard.

use std::net::IpAddr;

use rookery_router::{token_password, RouterConfig};
use rookery_testkit::{client_header, plain_auth, ClientId, Cluster, TEST_SECRET};

const FAILURE: &str =
    "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>";
const SUCCESS: &str = "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";

fn ip(last: u8) -> Option<IpAddr> {
    // Loopback addresses: PLAIN is offered in the clear, and each is its own address.
    Some(IpAddr::from([127, 0, 0, last]))
}

fn throttled(per_address: u32, per_account: u32) -> Cluster {
    throttled_shards(1, per_address, per_account, |_| {})
}

fn throttled_shards(
    shards: u16,
    per_address: u32,
    per_account: u32,
    adjust: impl FnOnce(&mut RouterConfig),
) -> Cluster {
    Cluster::with_config(shards, |config| {
        config.auth_fail_per_address = per_address;
        config.auth_fail_per_account = per_account;
        config.auth_fail_delay_ms = 2_000;
        adjust(config);
    })
}

/// A conn from `peer` on shard 0 that has opened its stream (the features are taken).
fn opened(cluster: &mut Cluster, peer: Option<IpAddr>) -> ClientId {
    let client = cluster.connect_from(0, peer);
    cluster.send(client, &client_header());
    cluster.take_output(client);
    client
}

fn wrong(user: &str) -> String {
    plain_auth(user, "wrong password")
}

fn right(user: &str) -> String {
    plain_auth(user, &token_password(TEST_SECRET, user))
}

/// One wrong login on a fresh conn from `peer`, answered at once.
fn fail_once(cluster: &mut Cluster, peer: Option<IpAddr>, user: &str) {
    let client = opened(cluster, peer);
    cluster.send(client, &wrong(user));
    assert_eq!(cluster.take_output(client), FAILURE, "answered at once");
}

fn stat(cluster: &Cluster, pick: impl Fn(&rookery_router::RouterStats) -> u64) -> u64 {
    pick(&cluster.router(0).stats())
}

#[test]
fn past_the_address_budget_the_answer_waits_and_nothing_is_read_meanwhile() {
    let mut cluster = throttled(2, 0);
    fail_once(&mut cluster, ip(1), "alice");
    fail_once(&mut cluster, ip(1), "alice");

    let client = opened(&mut cluster, ip(1));
    cluster.send(client, &wrong("alice"));
    assert_eq!(cluster.take_output(client), "", "the third failure waits");
    // The right password meanwhile is not even parsed until the answer went out.
    cluster.send(client, &right("alice"));
    cluster.advance(1_000);
    assert_eq!(cluster.take_output(client), "", "still waiting after 1 s");
    let next = cluster.router(0).next_deadline_ms();
    let due = cluster.now_ms + 1_000;
    assert!(next.is_some_and(|d| d <= due), "{next:?}, due at {due}");
    cluster.advance(1_000);
    assert_eq!(
        cluster.take_output(client),
        format!("{FAILURE}{SUCCESS}"),
        "the failure after 2 s, then the held login (a success is never delayed)"
    );
    assert_eq!(stat(&cluster, |s| s.auth_delayed), 1);
    assert_eq!(stat(&cluster, |s| s.auth_refused), 0);
    assert!(!cluster.is_closed(client));
}

#[test]
fn past_twice_the_budget_logins_are_refused_unchecked_and_closed() {
    let mut cluster = throttled(1, 0);
    fail_once(&mut cluster, ip(1), "alice");
    let client = opened(&mut cluster, ip(1));
    cluster.send(client, &wrong("alice"));
    cluster.advance(2_000);
    assert_eq!(cluster.take_output(client), FAILURE, "the second, delayed");
    // The third failure of the address is past the hard budget (2 x 1).
    cluster.send(client, &wrong("alice"));
    let out = cluster.take_output(client);
    assert!(out.starts_with(FAILURE), "{out}");
    assert!(out.contains("<policy-violation "), "{out}");
    assert!(cluster.is_closed(client));

    // A new conn from there is refused even with the right password: nothing is checked.
    let client = opened(&mut cluster, ip(1));
    cluster.send(client, &right("alice"));
    let out = cluster.take_output(client);
    assert!(
        out.starts_with(FAILURE) && out.contains("<policy-violation "),
        "{out}"
    );
    assert!(cluster.is_closed(client));
    assert_eq!(stat(&cluster, |s| s.auth_refused), 2);

    // Another address is not affected.
    let other = opened(&mut cluster, ip(2));
    cluster.send(other, &right("alice"));
    assert_eq!(cluster.take_output(other), SUCCESS);
}

#[test]
fn an_account_is_counted_across_addresses() {
    let mut cluster = throttled(0, 2);
    fail_once(&mut cluster, ip(1), "alice");
    fail_once(&mut cluster, ip(2), "alice");
    let third = opened(&mut cluster, ip(3));
    cluster.send(third, &wrong("alice"));
    assert_eq!(
        cluster.take_output(third),
        "",
        "the account's third failure waits"
    );
    // Another account from the same address is not slowed.
    fail_once(&mut cluster, ip(3), "bob");
    cluster.advance(2_000);
    assert_eq!(cluster.take_output(third), FAILURE);
    cluster.send(third, &wrong("alice"));
    cluster.advance(2_000);
    assert_eq!(cluster.take_output(third), FAILURE, "the fourth waits too");

    // Past 2 x 2 failures the account is refused from anywhere, right password or not.
    let fifth = opened(&mut cluster, ip(5));
    cluster.send(fifth, &right("alice"));
    let out = cluster.take_output(fifth);
    assert!(
        out.starts_with(FAILURE) && out.contains("<policy-violation "),
        "{out}"
    );
    let bob = opened(&mut cluster, ip(5));
    cluster.send(bob, &right("bob"));
    assert_eq!(cluster.take_output(bob), SUCCESS);
}

#[test]
fn the_budget_comes_back_after_the_window() {
    let mut cluster = throttled(1, 0);
    fail_once(&mut cluster, ip(1), "alice");
    for _ in 0..2 {
        let client = opened(&mut cluster, ip(1));
        cluster.send(client, &wrong("alice"));
        cluster.advance(2_000);
    }
    let refused = opened(&mut cluster, ip(1));
    cluster.send(refused, &right("alice"));
    assert!(cluster.is_closed(refused), "past the hard budget");

    cluster.advance(60_000);
    fail_once(&mut cluster, ip(1), "alice");
    let client = opened(&mut cluster, ip(1));
    cluster.send(client, &right("alice"));
    assert_eq!(cluster.take_output(client), SUCCESS, "a new window");
}

#[test]
fn the_tables_stay_within_their_bound() {
    let mut cluster = throttled_shards(1, 5, 5, |config| config.auth_throttle_entries = 3);
    for n in 1..=10 {
        fail_once(&mut cluster, ip(n), &format!("user{n}"));
    }
    assert_eq!(
        stat(&cluster, |s| s.auth_throttle_entries),
        6,
        "3 addresses and 3 accounts"
    );
    assert_eq!(stat(&cluster, |s| s.auth_throttle_evictions), 14);
    cluster.advance(600_000);
    fail_once(&mut cluster, ip(1), "user1");
    assert_eq!(
        stat(&cluster, |s| s.auth_throttle_entries),
        2,
        "windows that are over are dropped"
    );
}

#[test]
fn a_conn_that_keeps_sending_while_it_waits_is_closed_past_a_stanza() {
    let mut cluster = throttled_shards(1, 1, 0, |config| config.max_stanza_bytes = 1_024);
    fail_once(&mut cluster, ip(1), "alice");
    let client = opened(&mut cluster, ip(1));
    cluster.send(client, &wrong("alice"));
    let junk = " ".repeat(2_000);
    cluster.send(client, &junk);
    assert!(cluster.take_output(client).contains("<policy-violation "));
    assert!(cluster.is_closed(client));
}

#[test]
fn a_login_handed_to_the_home_shard_is_counted_there_under_its_address() {
    use rookery_proto::Jid;
    use rookery_router::{accounts, AuthBackend, Placement};
    use rookery_sasl::Credentials;
    use rookery_store::{Durability, Store, StoreConfig};
    use rookery_testkit::{user_homed_on, TEST_DOMAIN};

    let alice = user_homed_on("alice", 1, 2);
    let jid = Jid::new(Some(&alice), TEST_DOMAIN, None).unwrap();
    let mut cluster = Cluster::with_stores(
        2,
        |config| {
            config.auth = AuthBackend::File;
            config.auth_fail_per_address = 1;
            config.auth_fail_per_account = 0;
        },
        |shard| {
            let config = StoreConfig::new("", shard).with_durability(Durability::Memory);
            let mut store = Store::open(config).expect("a memory store");
            if Placement::local(2).home(&jid).shard.0 == shard {
                let credentials =
                    Credentials::derive("right", 4096, b"salt-one-sixteen", b"salt-two-sixteen")
                        .unwrap();
                accounts::set_credentials(&mut store, &jid, &credentials).unwrap();
            }
            store
        },
    );
    let mut outputs = Vec::new();
    for _ in 0..2 {
        let client = opened(&mut cluster, ip(9));
        cluster.send(client, &plain_auth(&alice, "wrong"));
        outputs.push(cluster.take_output(client));
    }
    assert_eq!(
        outputs,
        [FAILURE, ""],
        "the second failure of 127.0.0.9 waits"
    );
    let home = cluster.router(1).stats();
    assert_eq!((home.auth_failures, home.auth_delayed), (2, 1));
    assert_eq!(cluster.router(0).stats().auth_failures, 0);
}
