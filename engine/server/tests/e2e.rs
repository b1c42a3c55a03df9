//! End to end: the real `rookery` binary on loopback, real sockets, under every backend and
//! with one and two shards. Raw-XMPP clients check the wire; `interop.rs` uses slixmpp.

mod support;

use std::time::{Duration, Instant};

use support::{backends, subscribe_both_ways, user_on_shard, RawClient, Server, DOMAIN};

#[test]
fn startup_log_names_backend_shards_and_ceiling() {
    for backend in backends() {
        let server = Server::start(backend, 2, &[]);
        let log = server.startup_log.join("\n");
        assert!(log.contains(&format!("backend: {}", backend)), "{log}");
        assert!(log.contains("shards: 2, pinned to cores"), "{log}");
        assert!(log.contains("conn ceiling: "), "{log}");
        assert!(log.contains("RLIMIT_NOFILE"), "{log}");
    }
}

#[test]
fn chat_and_receipts_within_and_across_shards() {
    for backend in backends() {
        for shards in [1u16, 2] {
            let server = Server::start(backend, shards as usize, &[]);
            let alice = user_on_shard("alice", 0, shards);
            let bob = user_on_shard("bob", shards - 1, shards);
            let (mut a, alice_jid) = RawClient::login(server.addr, &alice, "phone");
            let (mut b, bob_jid) = RawClient::login(server.addr, &bob, "laptop");
            assert_eq!(alice_jid, format!("{alice}@{DOMAIN}/phone"));

            // alice -> bob (bare JID), with a receipt request and a spoofed from.
            a.send(&format!(
                "<message to='{bob}@{DOMAIN}' from='mallory@{DOMAIN}' type='chat' id='m1'><body>hi bob</body><request xmlns='urn:xmpp:receipts'/></message>"
            ));
            let got = b.expect("</message>");
            assert!(
                got.contains(&format!("from='{alice_jid}'"))
                    || got.contains(&format!("from=\"{alice_jid}\"")),
                "{backend}/{shards}: {got}"
            );
            assert!(
                !got.contains("mallory"),
                "from must be stamped by the server: {got}"
            );
            assert!(
                got.contains("<body>hi bob</body><request xmlns='urn:xmpp:receipts'/>"),
                "{got}"
            );

            // bob -> alice: the receipt, to her full JID, passes through untouched.
            b.send(&format!("<message to='{alice_jid}' id='r1'><received xmlns='urn:xmpp:receipts' id='m1'/></message>"));
            let receipt = a.expect("</message>");
            assert!(
                receipt.contains("<received xmlns='urn:xmpp:receipts' id='m1'/>"),
                "{receipt}"
            );
            assert!(receipt.contains(&bob_jid), "{receipt}");

            if shards == 2 {
                assert!(
                    server.metric("rookery_mail_out_total") >= 2,
                    "messages crossed shards by mail"
                );
            }
            assert_eq!(server.wait_metric("rookery_sessions", 2), 2);
        }
    }
}

#[test]
fn server_answers_ping_disco_and_roster() {
    for backend in backends() {
        let server = Server::start(backend, 2, &[]);
        let (mut c, _) = RawClient::login(server.addr, "carol", "r");
        c.send(&format!(
            "<iq type='get' id='p1' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>"
        ));
        let pong = c.expect("'p1'");
        let pong = (pong + &c.expect(">")).replace('"', "'");
        assert!(
            pong.contains("type='result'") && pong.contains("id='p1'"),
            "{pong}"
        );
        c.send(&format!("<iq type='get' id='d1' to='{DOMAIN}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"));
        let disco = c.expect("</iq>").replace('"', "'");
        assert!(
            disco.contains("category='server'") && disco.contains("urn:xmpp:ping"),
            "{disco}"
        );
        c.send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>");
        let roster = c.expect("</iq>").replace('"', "'");
        assert!(
            roster.contains("id='r1'") && roster.contains("jabber:iq:roster"),
            "{roster}"
        );
    }
}

#[test]
fn message_to_offline_user_is_stored_and_delivered_at_login_with_delay() {
    for backend in backends() {
        let server = Server::start(backend, 2, &[]);
        let (mut c, dave) = RawClient::login(server.addr, "dave", "r");
        c.send(&format!(
            "<message to='olga@{DOMAIN}' type='chat' id='x1'><body>hello?</body></message>"
        ));
        c.send(&format!(
            "<message to='olga@{DOMAIN}' type='chat' id='x2'><body>still there?</body></message>"
        ));
        // No bounce: the message waits in olga's offline queue.
        assert!(c
            .try_expect("service-unavailable", Duration::from_millis(300))
            .is_none());
        let (mut olga, _) = RawClient::login_without_sync(server.addr, "olga", "phone");
        let first = olga.expect("</message>").replace('"', "'");
        let second = olga.expect("</message>").replace('"', "'");
        assert!(
            first.contains("id='x1'") && second.contains("id='x2'"),
            "in order: {first} {second}"
        );
        assert!(first.contains(&format!("from='{dave}'")), "{first}");
        assert!(
            first.contains("urn:xmpp:delay") && first.contains("stamp='"),
            "XEP-0203: {first}"
        );
    }
}

/// The delivery guarantee: every message the server acknowledged (XEP-0198 `<a h>`) survives a
/// SIGKILL and reaches its recipient after the restart.
#[test]
fn sigkill_loses_no_acknowledged_message() {
    // io_uring also with inline file writes and batched waits: a write the shard made itself
    // (pwrite) counts as committed exactly like a ring write.
    const INLINE: &[&str] = &["--file-writes", "inline", "--batch-wait-us", "500"];
    let mut configs: Vec<(&str, &[&str])> = backends().into_iter().map(|b| (b, &[][..])).collect();
    if configs.iter().any(|(b, _)| *b == "uring") {
        configs.push(("uring", INLINE));
    }
    for (backend, extra) in configs {
        let mut server = Server::start(backend, 2, extra);
        let data_dir = server.keep_data_dir();
        let (mut alice, _) = RawClient::login(server.addr, "alice", "r");
        alice.send("<enable xmlns='urn:xmpp:sm:3'/>");
        alice.expect("<enabled");
        let mut acked = 0;
        for n in 0..300 {
            alice.send(&format!(
                "<message to='bob@{DOMAIN}' type='chat' id='k{n}'><body>m{n}</body></message>"
            ));
            if n % 25 == 24 && n < 200 {
                alice.send("<r xmlns='urn:xmpp:sm:3'/>");
                acked = acked.max(alice.expect_ack());
            }
        }
        // The last 100 are in flight: kill mid-stream, then take the last ack seen.
        server.signal("KILL");
        server.wait_exit(Duration::from_secs(5)).expect("killed");
        acked = acked.max(alice.drain_acks());
        assert!(
            acked >= 200,
            "{backend}: the first 200 were acknowledged before the kill ({acked})"
        );
        drop(server);

        let server = Server::start_on(backend, 2, extra, &data_dir);
        let (mut bob, _) = RawClient::login_without_sync(server.addr, "bob", "r");
        let mut got = std::collections::BTreeSet::new();
        while let Some(stanza) = bob.try_expect("</message>", Duration::from_secs(2)) {
            let id = stanza
                .replace('"', "'")
                .split("id='k")
                .nth(1)
                .and_then(|r| r.split('\'').next())
                .map(str::to_string);
            got.insert(id.expect("message id").parse::<u32>().unwrap());
        }
        let missing: Vec<u32> = (0..acked).filter(|n| !got.contains(n)).collect();
        assert!(
            missing.is_empty(),
            "{backend}: acknowledged but lost after SIGKILL: {missing:?}"
        );
        let _ = std::fs::remove_dir_all(&data_dir);
    }
}

/// `--commit-delay-ms`: what a sender's XEP-0198 ack waits for is written at once, however
/// long the delay; a message nobody is acknowledged for (a sender without XEP-0198) waits for
/// the delay, then reaches the log with nothing else happening, and survives a SIGKILL. The
/// delay is long (3 s) so that an ack held by it is told apart from a slow machine.
#[test]
fn commit_delay_holds_only_what_nobody_waits_for() {
    const DELAY_MS: u64 = 3000;
    for backend in backends() {
        let delay = DELAY_MS.to_string();
        let mut server = Server::start(backend, 1, &["--commit-delay-ms", &delay]);
        let data_dir = server.keep_data_dir();
        let (mut alice, _) = RawClient::login(server.addr, "alice", "r");
        alice.send("<enable xmlns='urn:xmpp:sm:3'/>");
        alice.expect("<enabled");
        let sent = Instant::now();
        alice.send(&format!(
            "<message to='bob@{DOMAIN}' type='chat' id='a1'><body>acked</body></message><r xmlns='urn:xmpp:sm:3'/>"
        ));
        assert_eq!(alice.expect_ack(), 1, "{backend}: the message is handled");
        let waited = sent.elapsed();
        assert!(
            waited < Duration::from_millis(DELAY_MS * 2 / 3),
            "{backend}: an acknowledged message waited for the commit delay ({waited:?})"
        );

        // The writes metric is published once a second: wait until it shows alice's write.
        let writes_before = server.wait_metric_above("rookery_log_writes_total", 0);
        assert!(writes_before > 0, "{backend}: alice's write never showed");

        // carol has no XEP-0198: nothing waits for her message's record but the delay.
        let (mut carol, _) = RawClient::login(server.addr, "carol", "r");
        carol.send(&format!(
            "<message to='dave@{DOMAIN}' type='chat' id='c1'><body>held</body></message>"
        ));
        // Held: half the delay later (a metric publish later) nothing was written yet.
        std::thread::sleep(Duration::from_millis(DELAY_MS / 2));
        assert_eq!(
            server.metric("rookery_log_writes_total"),
            writes_before,
            "{backend}: the record nobody waits for was written before the delay"
        );
        let writes = server.wait_metric_above("rookery_log_writes_total", writes_before);
        assert!(
            writes > writes_before,
            "{backend}: the held record was never written ({writes} writes)"
        );
        server.signal("KILL");
        server.wait_exit(Duration::from_secs(5)).expect("killed");
        drop(server);

        let server = Server::start_on(backend, 1, &[], &data_dir);
        for (user, body) in [("bob", "acked"), ("dave", "held")] {
            let (mut client, _) = RawClient::login_without_sync(server.addr, user, "r");
            let got = client.expect("</message>");
            assert!(got.contains(body), "{backend}: {user} got {got}");
        }
        let _ = std::fs::remove_dir_all(&data_dir);
    }
}

#[test]
fn a_data_dir_written_with_other_shard_count_is_refused() {
    let mut first = Server::start("poll", 2, &[]);
    let dir = first.keep_data_dir();
    drop(first);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rookery"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "off",
            "--token-secret",
            "s",
            "--shards",
            "1",
        ])
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("shards = 2"), "{stderr}");
}

#[test]
fn wrong_password_is_refused() {
    for backend in backends() {
        let server = Server::start(backend, 1, &[]);
        let refused = RawClient::try_login(server.addr, "erin", "not-the-token", "r");
        let error = refused.err().expect("a wrong password is refused");
        assert!(error.contains("not-authorized"), "{error}");
        assert_eq!(server.wait_metric("rookery_auth_failures_total", 1), 1);
    }
}

/// Failed logins from one address: answered at once within the budget, after the delay past
/// it, refused (not-authorized and a closed stream, even for the right password) past twice it.
#[test]
fn failed_logins_are_slowed_then_refused() {
    for backend in backends() {
        let extra = [
            "--auth-fail-per-address",
            "1",
            "--auth-fail-delay-ms",
            "1500",
        ];
        let server = Server::start(backend, 1, &extra);
        let started = Instant::now();
        let first = RawClient::try_login(server.addr, "erin", "wrong", "r");
        assert!(first.err().expect("refused").contains("not-authorized"));
        assert!(
            started.elapsed() < Duration::from_millis(1_000),
            "the first is not slowed"
        );

        let started = Instant::now();
        let second = RawClient::try_login(server.addr, "erin", "wrong", "r");
        assert!(second.err().expect("refused").contains("not-authorized"));
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(1_400),
            "answered after {waited:?}"
        );
        assert_eq!(server.wait_metric("rookery_auth_delayed_total", 1), 1);

        let third = RawClient::try_login(server.addr, "erin", &support::token("erin"), "r");
        assert!(third
            .err()
            .expect("refused unchecked")
            .contains("not-authorized"));
        assert_eq!(server.wait_metric("rookery_auth_refused_total", 1), 1);
        assert!(server.metric("rookery_auth_throttle_entries") >= 1);
    }
}

/// Each bad input closes only its own stream, with the right stream error; a bystander session
/// keeps working throughout.
#[test]
fn bad_input_closes_only_that_stream() {
    let cases: &[(&str, &str)] = &[
        (
            "<message><body>unclosed</bogus></message>",
            "not-well-formed",
        ),
        ("<!-- comments are not allowed -->", "restricted-xml"),
        (
            "<message to='x@example.test'><body>before auth</body></message>",
            "not-authorized",
        ),
    ];
    for backend in backends() {
        let server = Server::start(backend, 2, &["--max-stanza-bytes", "2048"]);
        let (mut bystander, by_jid) = RawClient::login(server.addr, "frank", "r");
        let (mut peer, _) = RawClient::login(server.addr, "grace", "r");
        for (input, condition) in cases {
            let mut bad = RawClient::connect(server.addr);
            bad.open_stream();
            bad.send(input);
            let err = bad.expect("</stream:stream>");
            assert!(err.contains(condition), "{backend}: {input:?} gave {err}");
            assert!(
                bad.closed_within(Duration::from_secs(5)),
                "conn closed after {condition}"
            );
        }
        // Oversized stanza from an authenticated session: policy-violation.
        let (mut big, _) = RawClient::login(server.addr, "heidi", "r");
        big.send(&format!(
            "<message to='frank@{DOMAIN}'><body>{}</body></message>",
            "x".repeat(4096)
        ));
        let err = big.expect("</stream:stream>");
        assert!(err.contains("policy-violation"), "{err}");
        assert!(big.closed_within(Duration::from_secs(5)));

        peer.send(&format!(
            "<message to='{by_jid}' type='chat'><body>still here?</body></message>"
        ));
        assert!(bystander.expect("</message>").contains("still here?"));
    }
}

#[test]
fn auth_and_idle_timeouts_close_with_connection_timeout() {
    for backend in backends() {
        let server = Server::start(backend, 1, &["--auth-timeout", "1", "--idle-timeout", "2"]);
        let mut slow = RawClient::connect(server.addr);
        slow.open_stream();
        let err = slow.expect("</stream:stream>");
        assert!(err.contains("connection-timeout"), "{err}");

        let (mut idle, _) = RawClient::login(server.addr, "ivan", "r");
        // Whitespace keepalives count as traffic: 3 s of keepalives outlive a 2 s idle timeout.
        for _ in 0..6 {
            std::thread::sleep(Duration::from_millis(500));
            idle.send(" ");
        }
        assert!(idle
            .try_expect("connection-timeout", Duration::from_millis(100))
            .is_none());
        let err = idle.expect("</stream:stream>");
        assert!(err.contains("connection-timeout"), "{err}");
    }
}

#[test]
fn conn_ceiling_refuses_and_counts() {
    for backend in backends() {
        // 100 fds: 64 reserve + 4 per shard leave a ceiling of 32 conns.
        let server = Server::start_with_prefix(backend, 1, &[], Some("ulimit -n 100;"));
        assert!(
            server.startup_log.join("\n").contains("conn ceiling: 32"),
            "{:?}",
            server.startup_log
        );
        let mut clients: Vec<RawClient> =
            (0..40).map(|_| RawClient::connect(server.addr)).collect();
        std::thread::sleep(Duration::from_millis(500));
        let closed = clients
            .iter_mut()
            .map(|c| c.closed_within(Duration::from_millis(50)))
            .filter(|&gone| gone)
            .count();
        assert_eq!(closed, 8, "{backend}: 40 conns against a ceiling of 32");
        assert_eq!(server.wait_metric("rookery_refused_conns_total", 8), 8);
        // The ones inside the ceiling still work.
        clients[0].open_stream();
    }
}

#[test]
fn sigterm_closes_streams_with_system_shutdown_and_exits_zero() {
    for backend in backends() {
        let mut server = Server::start(backend, 2, &[]);
        let (mut a, _) = RawClient::login(server.addr, "judy", "r");
        let (mut b, _) = RawClient::login(server.addr, "ken", "r");
        server.signal("TERM");
        for c in [&mut a, &mut b] {
            let err = c.expect("</stream:stream>");
            assert!(err.contains("system-shutdown"), "{err}");
        }
        let status = server
            .wait_exit(Duration::from_secs(10))
            .expect("exited within 10 s");
        assert!(status.success(), "{status:?}");
    }
}

/// Rosters and subscriptions live in the home shards' logs: a roster set is answered only
/// once stored, and after a SIGKILL and a restart both users find each other with 'both'.
#[test]
fn rosters_survive_sigkill() {
    for backend in backends() {
        let mut server = Server::start(backend, 2, &[]);
        let data_dir = server.keep_data_dir();
        let alice = user_on_shard("alice", 0, 2);
        let bob = user_on_shard("bob", 1, 2);
        let (mut a, _) = RawClient::login(server.addr, &alice, "r");
        let (mut b, _) = RawClient::login(server.addr, &bob, "r");
        a.send(&format!(
            "<iq type='set' id='set1'><query xmlns='jabber:iq:roster'>\
             <item jid='{bob}@{DOMAIN}' name='Bob'/></query></iq>"
        ));
        a.expect("id='set1'");
        a.send("<presence/>");
        b.send("<presence/>");
        subscribe_both_ways(&mut a, &alice, &mut b, &bob);
        // A roster set is answered once committed, and commits are in order: its answer on
        // each user's shard proves the subscription changes before it are in the log.
        for (client, id) in [(&mut a, "fence-a"), (&mut b, "fence-b")] {
            client.send(&format!(
                "<iq type='set' id='{id}'><query xmlns='jabber:iq:roster'>\
                 <item jid='fence@{DOMAIN}'/></query></iq>"
            ));
            client.expect(&format!("id='{id}'"));
        }
        server.signal("KILL");
        server.wait_exit(Duration::from_secs(5)).expect("killed");
        drop(server);

        let server = Server::start_on(backend, 2, &[], &data_dir);
        let (mut a, _) = RawClient::login(server.addr, &alice, "r2");
        a.send("<iq type='get' id='get1'><query xmlns='jabber:iq:roster'/></iq>");
        let roster = a.expect("</iq>");
        assert!(
            roster.contains(&format!(
                "<item jid='{bob}@{DOMAIN}' name='Bob' subscription='both'/>"
            )),
            "{backend}: {roster}"
        );
        let (mut b, _) = RawClient::login(server.addr, &bob, "r2");
        b.send("<iq type='get' id='get2'><query xmlns='jabber:iq:roster'/></iq>");
        let roster = b.expect("</iq>");
        assert!(
            roster.contains(&format!(
                "<item jid='{alice}@{DOMAIN}' subscription='both'/>"
            )),
            "{backend}: {roster}"
        );
        let _ = std::fs::remove_dir_all(&data_dir);
    }
}

/// Group memberships live in the room's home-shard log: after a SIGKILL and a restart, a
/// member who is offline still gets the group's messages at its next login.
#[test]
fn group_memberships_survive_sigkill() {
    for backend in backends() {
        let mut server = Server::start(backend, 2, &[]);
        let data_dir = server.keep_data_dir();
        let room = format!("crew@groups.{DOMAIN}");
        let (alice, bob) = (user_on_shard("alice", 0, 2), user_on_shard("bob", 1, 2));
        let (mut a, _) = RawClient::login(server.addr, &alice, "r");
        a.send(&format!(
            "<presence to='{room}/alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ));
        a.expect("status code='110'");
        // An owner-form round trip on the room's shard: its answer comes after the join's
        // affiliation record was appended; a roster-set fence is not available for rooms, so
        // leave time for the shard's next group commit.
        a.send(&format!(
            "<iq type='get' id='cfg' to='{room}'><query xmlns='http://jabber.org/protocol/muc#owner'/></iq>"
        ));
        a.expect("id='cfg'");
        std::thread::sleep(Duration::from_millis(300));
        server.signal("KILL");
        server.wait_exit(Duration::from_secs(5)).expect("killed");
        drop(server);

        let server = Server::start_on(backend, 2, &[], &data_dir);
        let (mut b, _) = RawClient::login(server.addr, &bob, "r");
        b.send(&format!(
            "<presence to='{room}/bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ));
        let joined = b.expect("status code='110'");
        assert!(
            !joined.contains("code='201'"),
            "{backend}: the room was restored, not created again: {joined}"
        );
        b.send(&format!(
            "<message to='{room}' type='groupchat' id='g1'><body>while you were out</body></message>"
        ));
        b.expect("while you were out");
        // Initial presence flushes the offline queue.
        let (mut a, _) = RawClient::login_without_sync(server.addr, &alice, "r2");
        let got = a.expect("</message>");
        assert!(
            got.contains("while you were out") && got.contains(&format!("from='{room}/bob'")),
            "{backend}: {got}"
        );
        let _ = std::fs::remove_dir_all(&data_dir);
    }
}

/// `rookery accounts --admin ADDR ...` against the running server (password on stdin);
/// success when it exits 0, else its standard error.
fn accounts_via_admin(server: &Server, args: &[&str], password: &str) -> Result<String, String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let admin = server.admin.expect("the admin endpoint").to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rookery"))
        .args(["accounts", "--admin", &admin])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rookery accounts spawns");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(format!("{password}\n").as_bytes())
        .expect("password written");
    drop(stdin);
    let output = child.wait_with_output().expect("rookery accounts runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if output.status.success() {
        Ok(stdout + &stderr)
    } else {
        Err(stderr)
    }
}

/// Accounts made, changed and deleted through a running server's admin endpoint take effect
/// at the next login, on both shards.
#[test]
fn accounts_change_through_the_running_server() {
    for backend in backends() {
        let server = Server::start(backend, 2, &["--auth", "file"]);
        for shard in 0..2u16 {
            let user = user_on_shard("live", shard, 2);
            let added = accounts_via_admin(&server, &["add", &user], "first secret");
            assert!(
                added.as_ref().is_ok_and(|out| out.contains("added")),
                "{added:?}"
            );
            let (client, _) = RawClient::try_login(server.addr, &user, "first secret", "r")
                .expect("logs in with the new account");
            drop(client);
            let again = accounts_via_admin(&server, &["add", &user], "other");
            assert!(
                again.as_ref().is_err_and(|err| err.contains("exists")),
                "{again:?}"
            );

            accounts_via_admin(&server, &["passwd", &user], "second secret").expect("passwd");
            assert!(RawClient::try_login(server.addr, &user, "first secret", "r").is_err());
            let (client, _) = RawClient::try_login(server.addr, &user, "second secret", "r")
                .expect("logs in with the new password");
            drop(client);

            let listed = accounts_via_admin(&server, &["list"], "").expect("list");
            assert!(listed.contains(&format!("{user}@{DOMAIN}")), "{listed}");
            accounts_via_admin(&server, &["del", &user], "").expect("del");
            assert!(RawClient::try_login(server.addr, &user, "second secret", "r").is_err());
            let gone = accounts_via_admin(&server, &["del", &user], "");
            assert!(
                gone.as_ref().is_err_and(|err| err.contains("no account")),
                "{gone:?}"
            );
        }
    }
}
