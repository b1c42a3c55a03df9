//! Interop with a real XMPP client library: slixmpp (Python) logs in two users and checks chat,
//! XEP-0184 receipts, XEP-0199 ping, disco#info, roster get and a refused wrong password
//! (`slix_chat.py`), the subscription handshake, presence and rosters (`slix_presence.py`),
//! group chat (`slix_groups.py`), SCRAM logins to `--auth file` accounts made with
//! `rookery accounts` (`slix_accounts.py`), and XEP-0363 file upload with slixmpp's xep_0363
//! (upload, download and Range over HTTP, the XEP's refusals, an expired slot, the quota, a
//! restart: `slix_upload.py`), XEP-0077 in-band registration then login (`slix_register.py`),
//! a XEP-0114 component (slixmpp ComponentXMPP) talking with a user (`slix_component.py`),
//! XEP-0357 push to such a component for a detached and an offline user (`slix_push.py`),
//! XEP-0280 carbons between two devices of one user (`slix_carbons.py`), XEP-0352 client
//! state indication: held, coalesced presence and chats at once (`slix_csi.py`),
//! XEP-0191 blocking (`slix_block.py`), XEP-0045 kick, ban and nick change with XEP-0410
//! self-ping (`slix_moderation.py`),
//! PEP nicknames, OMEMO-style device lists and bundles, vCards, private storage, bookmarks and
//! last activity (`slix_pep.py`),
//! under every backend (chat also with one and two shards).
//! `scripts/test.sh` installs slixmpp (and aiohttp, which its xep_0363 needs) when missing; a
//! missing one fails these tests (they are never skipped silently).

mod support;

use std::process::Command;

use support::{add_account, backends, token, user_on_shard, Server, DOMAIN};

/// Runs `tests/interop/<script>` with `args` against `server` (host and port first, then
/// `args`, then each user's JID and token password) and returns its JSON line; panics with
/// what it printed unless it exited 0.
fn run_script(script: &str, server: &Server, args: &[&str], users: &[&str], what: &str) -> String {
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    for user in users {
        all.extend([format!("{user}@{DOMAIN}"), token(user)]);
    }
    run_script_args(script, server, &all, what)
}

/// Runs `tests/interop/<script>` with the server's host and port, then `args` as given;
/// returns its output, panicking with it unless the script exited 0.
fn run_script_args(script: &str, server: &Server, args: &[String], what: &str) -> String {
    let path = format!("{}/tests/interop/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("python3")
        .arg(path)
        .args(["127.0.0.1", &server.addr.port().to_string()])
        .args(args)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{what}: {stdout}\n{stderr}");
    stdout
}

#[test]
fn slixmpp_clients_chat_with_receipts_ping_disco_roster() {
    for backend in backends() {
        for shards in [1u16, 2] {
            let server = Server::start(backend, shards as usize, &[]);
            let alice = user_on_shard("alice", 0, shards);
            let bob = user_on_shard("bob", shards - 1, shards);
            let what = format!("{backend}/{shards} shards");
            let stdout = run_script("slix_chat.py", &server, &[DOMAIN], &[&alice, &bob], &what);
            assert!(stdout.contains("\"ok\": true"), "{stdout}");
            assert!(stdout.contains("\"body\": \"hello bob\""), "{stdout}");
            assert!(stdout.contains("\"requests_receipt\": true"), "{stdout}");
            assert!(stdout.contains("\"receipt_for\": \"m1\""), "{stdout}");
            assert!(stdout.contains("\"ping_ok\": true"), "{stdout}");
            assert!(
                stdout.contains("\"wrong_password_refused\": true"),
                "{stdout}"
            );
            assert!(stdout.contains("urn:xmpp:ping"), "{stdout}");
            assert!(
                stdout.contains(&format!("\"from\": \"{alice}@{DOMAIN}/")),
                "{stdout}"
            );
        }
    }
}

#[test]
fn slixmpp_clients_subscribe_see_presence_and_keep_their_rosters() {
    for backend in backends() {
        let shards = 2u16;
        let server = Server::start(backend, shards as usize, &[]);
        let alice = user_on_shard("alice", 0, shards);
        let bob = user_on_shard("bob", 1, shards);
        let stdout = run_script("slix_presence.py", &server, &[], &[&alice, &bob], backend);
        assert!(stdout.contains("\"alice_sees_bob\": \"both\""), "{stdout}");
        assert!(stdout.contains("\"bob_sees_alice\": \"both\""), "{stdout}");
        assert!(stdout.contains("\"show\": \"away\""), "{stdout}");
        assert!(
            stdout.contains(&format!("\"unavailable_from\": \"{bob}@{DOMAIN}/")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("\"{bob}@{DOMAIN}\": \"both\"")),
            "{stdout}"
        );
    }
}

#[test]
fn slixmpp_clients_join_a_group_chat_leave_and_offline_members_catch_up() {
    for backend in backends() {
        let shards = 2u16;
        let server = Server::start(backend, shards as usize, &[]);
        let users: Vec<String> = [("alice", 0), ("bob", 1), ("carol", 1)]
            .iter()
            .map(|(name, shard)| user_on_shard(name, *shard, shards))
            .collect();
        let room = format!("team@groups.{DOMAIN}");
        let users: Vec<&str> = users.iter().map(String::as_str).collect();
        let stdout = run_script("slix_groups.py", &server, &[&room], &users, backend);
        assert!(
            stdout.contains("\"occupants_seen_by_alice\": [\"alice\", \"bob\"]"),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("\"bob_got_from\": \"{room}/alice\"")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("\"alice_reflection_from\": \"{room}/alice\"")),
            "{stdout}"
        );
        assert!(stdout.contains("\"bob_left_seen\": true"), "{stdout}");
        assert!(
            stdout.contains(&format!(
                "\"carol_offline_delivery\": {{\"from\": \"{room}/alice\", \"type\": \"groupchat\", \"delayed\": true}}"
            )),
            "{stdout}"
        );
    }
}

#[test]
fn slixmpp_second_device_fetches_the_archive_and_a_joiner_gets_room_history() {
    let shards = 2u16;
    let server = Server::start("poll", shards as usize, &[]);
    let alice = user_on_shard("alice", 0, shards);
    let bob = user_on_shard("bob", 1, shards);
    let room = format!("archive@groups.{DOMAIN}");
    let stdout = run_script("slix_mam.py", &server, &[&room], &[&alice, &bob], "mam");
    assert!(stdout.contains("\"ok\": true"), "{stdout}");
    let bob_bare = format!("{bob}@{DOMAIN}");
    assert!(
        stdout.contains(&format!("\"stanza_id_by\": [\"{bob_bare}\"]")),
        "{stdout}"
    );
    assert!(
        stdout.contains("\"laptop_archive\": [\"a1\", \"b1\", \"a2\", \"b2\", \"a3\"]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\"join_history\": [\"g2\", \"g3\"]"),
        "{stdout}"
    );
    assert!(stdout.contains("\"history_delayed\": true"), "{stdout}");
    assert!(
        stdout.contains("\"room_archive\": [\"g1\", \"g2\", \"g3\"]"),
        "{stdout}"
    );
}

#[test]
fn slixmpp_blocks_a_contact_whose_messages_bounce_and_unblocks_it() {
    let shards = 2u16;
    let server = Server::start(backends()[0], shards as usize, &[]);
    let alice = user_on_shard("alice", 0, shards);
    let bob = user_on_shard("bob", 1, shards);
    let stdout = run_script("slix_block.py", &server, &[], &[&alice, &bob], "blocking");
    assert!(stdout.contains("\"blocklist_before\": []"), "{stdout}");
    let bob_bare = format!("{bob}@{DOMAIN}");
    assert!(
        stdout.contains(&format!("\"pushed\": [\"{bob_bare}\"]")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("\"blocklist_after\": [\"{bob_bare}\"]")),
        "{stdout}"
    );
    assert!(
        stdout.contains("\"bob_error\": \"service-unavailable\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("\"alice_error\": {\"condition\": \"not-acceptable\", \"blocked\": true}"),
        "{stdout}"
    );
    assert!(stdout.contains("\"unblock_pushed\": true"), "{stdout}");
    assert!(
        stdout.contains("\"alice_bodies\": [\"after unblock\"]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\"bob_bodies\": [\"hello again\"]"),
        "{stdout}"
    );
}

#[test]
fn slixmpp_devices_of_one_user_see_both_sides_with_carbons() {
    for backend in backends() {
        let shards = 2u16;
        let server = Server::start(backend, shards as usize, &[]);
        let alice = user_on_shard("alice", 0, shards);
        let bob = user_on_shard("bob", 1, shards);
        let stdout = run_script("slix_carbons.py", &server, &[], &[&alice, &bob], backend);
        let (alice, bob) = (format!("{alice}@{DOMAIN}"), format!("{bob}@{DOMAIN}"));
        assert!(stdout.contains("\"carbons_advertised\": true"), "{stdout}");
        let received = format!(
            "\"b_received_carbon\": {{\"from\": \"{bob}/phone\", \"to\": \"{alice}/A\", \
             \"body\": \"hello A\", \"wrapper_from\": \"{alice}\"}}"
        );
        assert!(stdout.contains(&received), "{stdout}");
        let sent = format!(
            "\"b_sent_carbon\": {{\"from\": \"{alice}/A\", \"to\": \"{bob}/phone\", \
             \"body\": \"hi bob\", \"wrapper_from\": \"{alice}\"}}"
        );
        assert!(stdout.contains(&sent), "{stdout}");
        assert!(stdout.contains("\"b_plain_messages\": []"), "{stdout}");
    }
}

#[test]
fn slixmpp_inactive_client_gets_chats_at_once_and_only_the_latest_presence() {
    for backend in backends() {
        // Both on one shard: bob's ping answer then shows his presences reached alice's
        // session (the script's barrier before <active/>).
        let shards = 2u16;
        let server = Server::start(backend, shards as usize, &[]);
        let alice = user_on_shard("alice", 0, shards);
        let bob = user_on_shard("bob", 0, shards);
        let stdout = run_script("slix_csi.py", &server, &[], &[&alice, &bob], backend);
        assert!(stdout.contains("\"csi_feature_seen\": true"), "{stdout}");
        assert!(
            stdout.contains("\"log_at_chat\": [\"presence two\", \"chat wake\"]"),
            "{stdout}"
        );
        assert!(stdout.contains("\"log_while_inactive\": []"), "{stdout}");
        assert!(
            stdout.contains("\"log_after_active\": [\"presence four\"]"),
            "{stdout}"
        );
    }
}

#[test]
fn slixmpp_moderator_kicks_and_bans_an_occupant_who_renames_and_self_pings() {
    let shards = 2u16;
    let server = Server::start(backends()[0], shards as usize, &[]);
    let users: Vec<String> = [("alice", 0), ("bob", 1), ("carol", 1)]
        .iter()
        .map(|(name, shard)| user_on_shard(name, *shard, shards))
        .collect();
    let room = format!("mods@groups.{DOMAIN}");
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    let stdout = run_script(
        "slix_moderation.py",
        &server,
        &[&room],
        &users,
        "moderation",
    );
    assert!(
        stdout.contains("\"self_ping_joined\": \"JOINED\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("\"carol_new_nick\": \"caroline\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("\"alice_saw_rename_to\": \"caroline\""),
        "{stdout}"
    );
    assert!(stdout.contains("\"kick_codes\": [110, 307]"), "{stdout}");
    assert!(
        stdout.contains("\"self_ping_after_kick\": \"DISCONNECTED\""),
        "{stdout}"
    );
    assert!(stdout.contains("\"rejoined_after_kick\": true"), "{stdout}");
    assert!(stdout.contains("\"ban_codes\": [110, 301]"), "{stdout}");
    assert!(
        stdout.contains("\"rejoin_after_ban\": \"forbidden\""),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("\"outcasts\": [\"{}@{DOMAIN}\"]", users[1])),
        "{stdout}"
    );
}

/// Spawns with stdout and stderr captured.
trait OutputOnWait {
    fn output_on_wait(&mut self) -> std::process::Child;
}

impl OutputOnWait for Command {
    fn output_on_wait(&mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("rookery spawns")
    }
}

#[test]
fn slixmpp_logs_in_with_scram_to_accounts_made_by_rookery_accounts() {
    for backend in backends() {
        let shards = 2u16;
        let data_dir = Server::temp_data_dir();
        add_account(&data_dir, shards, "alice", "alice's secret");
        add_account(&data_dir, shards, "bob", "bob's secret");
        let server = Server::start_on(backend, usize::from(shards), &["--auth", "file"], &data_dir);
        let args = [
            format!("alice@{DOMAIN}"),
            "alice's secret".into(),
            format!("bob@{DOMAIN}"),
            "bob's secret".into(),
        ];
        let stdout = run_script_args("slix_accounts.py", &server, &args, backend);
        assert!(
            stdout.contains("\"alice_mechanism\": \"SCRAM-SHA-256\""),
            "{stdout}"
        );
        assert!(
            stdout.contains("\"bob_mechanism\": \"SCRAM-SHA-1\""),
            "{stdout}"
        );
        assert!(
            stdout.contains("\"bob_received\": \"hello over SCRAM\""),
            "{stdout}"
        );
        assert!(
            stdout.contains("\"wrong_password_refused\": true"),
            "{stdout}"
        );
        drop(server);
        let _ = std::fs::remove_dir_all(&data_dir);
    }
}

#[test]
fn slixmpp_registers_an_account_in_band_then_logs_in_with_it() {
    for backend in backends() {
        let extra = ["--auth", "file", "--allow-registration"];
        let server = Server::start(backend, 2, &extra);
        let args = [format!("newcomer@{DOMAIN}"), "a fresh secret".into()];
        let stdout = run_script_args("slix_register.py", &server, &args, backend);
        for expected in [
            "\"registered\": true",
            "\"form_fields\": [\"username\", \"password\"]",
            "\"logged_in_after_registering\": true",
            "\"logged_in_again\": true",
            "\"second_registration\": \"conflict\"",
        ] {
            assert!(
                stdout.contains(expected),
                "{backend}: {expected} in {stdout}"
            );
        }
        assert_eq!(server.wait_metric("rookery_registrations_total", 1), 1);
    }
}

/// A loopback port free right now (bound and released: the server binds it next).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("bound").port()
}

/// The sum of a metric's samples in a scrape (the HTTP server's have no label).
fn metric_sum(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn slixmpp_publishes_pep_omemo_and_vcards_that_a_contact_reads_back() {
    for backend in backends() {
        let shards = 2u16;
        let server = Server::start(backend, shards as usize, &[]);
        let alice = user_on_shard("alice", 0, shards);
        let bob = user_on_shard("bob", 1, shards);
        let stdout = run_script("slix_pep.py", &server, &[], &[&alice, &bob], backend);
        for want in [
            "\"nick_event\": \"Alice in PEP\"",
            "\"devicelist_event_identical\": true",
            "\"devicelist_fetched_identical\": true",
            "\"bundle_fetched_identical\": true",
            "\"vcard_fn\": \"Alice Example\"",
            "\"private_note\": \"bob likes tea\"",
            "\"bookmarks\": [\"cake@groups.example.com\", \"tea@groups.example.com\"]",
            "\"bookmarks_hidden_from_bob\": \"not-allowed\"",
            "\"last_activity_seconds\": 0",
            "\"pep_identity\": true",
            "\"ok\": true",
        ] {
            assert!(stdout.contains(want), "{backend}: want {want} in {stdout}");
        }
    }
}

#[test]
fn slixmpp_uploads_a_file_over_xep_0363_and_another_user_downloads_it() {
    for backend in backends() {
        let shards = 2u16;
        let port = free_port().to_string();
        let http = format!("127.0.0.1:{port}");
        let flags = [
            "--http-listen",
            &http,
            "--upload-max-bytes",
            "100000",
            "--upload-quota-bytes",
            "120000",
            "--upload-slot-ttl",
            "2",
            "--upload-content-types",
            "text/*,application/octet-stream",
        ];
        let mut server = Server::start(backend, shards as usize, &flags);
        let alice = user_on_shard("alice", 0, shards);
        let bob = user_on_shard("bob", 1, shards);
        let users = [alice.as_str(), bob.as_str()];
        let stdout = run_script("slix_upload.py", &server, &["upload", "-"], &users, backend);
        for needle in [
            format!("\"service\": \"upload.{DOMAIN}\""),
            "\"max_file_size\": 100000".into(),
            "\"download_status\": 200".into(),
            "\"download_identical\": true".into(),
            "\"range_status\": 206".into(),
            "\"range_identical\": true".into(),
            "\"too_large\": {\"condition\": \"not-acceptable\", \"type\": \"modify\", \
             \"file_too_large\": true, \"max_file_size_100000\": true}"
                .into(),
            "\"bad_filename\": [\"bad-request\", \"modify\"]".into(),
            "\"type_not_allowed\": [\"not-acceptable\", \"modify\"]".into(),
            "\"expired_put_status\": 403".into(),
            "\"quota\": [\"resource-constraint\", \"wait\"]".into(),
            "\"other_user_slot\": true".into(),
        ] {
            assert!(stdout.contains(&needle), "{backend}: {needle} in {stdout}");
        }
        let url = stdout
            .split("\"url\": \"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the GET URL")
            .to_owned();
        assert!(
            url.starts_with(&format!("http://{http}/download/")),
            "{url}"
        );
        // Router counters, per shard (published at the end of a turn).
        for (name, want) in [
            ("rookery_upload_slots_total", 3),
            ("rookery_upload_refusals_total", 4),
            ("rookery_upload_usage_events_total", 1),
            ("rookery_upload_usage_dropped_total", 0),
        ] {
            assert_eq!(server.wait_metric(name, want), want, "{backend}: {name}");
        }
        // The HTTP server's, unlabelled, on the same endpoint.
        let metrics = server.metrics();
        assert_eq!(metric_sum(&metrics, "rookery_http_uploads_total"), 1);
        assert_eq!(metric_sum(&metrics, "rookery_http_files"), 1);
        assert!(
            metrics.contains("rookery_http_refusals_total{reason=\"expired\"} 1\n"),
            "{metrics}"
        );

        // Restarted on the same data dir: the file is served and still counts for alice.
        let data_dir = server.keep_data_dir();
        server.signal("TERM");
        let status = server.wait_exit(std::time::Duration::from_secs(15));
        assert!(status.is_some_and(|s| s.success()), "{backend}: {status:?}");
        let server = Server::start_on(backend, shards as usize, &flags, &data_dir);
        let stdout = run_script(
            "slix_upload.py",
            &server,
            &["restart", &url],
            &users,
            backend,
        );
        assert!(stdout.contains("\"download_status\": 200"), "{stdout}");
        assert!(stdout.contains("\"download_bytes\": 50000"), "{stdout}");
        assert!(
            stdout.contains("\"quota\": [\"resource-constraint\", \"wait\"]"),
            "{stdout}"
        );
        drop(server);
        let _ = std::fs::remove_dir_all(&data_dir);
    }
}

/// slixmpp over STARTTLS (SCRAM-SHA-256, PLAIN) and direct TLS (SCRAM-SHA-1), trusting a
/// test CA; with `--require-tls all` a client in the clear is offered nothing to log in
/// with, and a client trusting another CA refuses the certificate. Both backends, 2 shards
/// (logins handed to their home shard carry their TLS session along).
#[test]
fn slixmpp_logs_in_over_starttls_and_direct_tls() {
    use support::certs::TestCa;
    let ca = TestCa::new("Rookery Test CA", DOMAIN);
    let stranger = TestCa::new("Another CA", DOMAIN);
    for backend in backends() {
        let shards = 2u16;
        let data_dir = Server::temp_data_dir();
        let users = [
            ("alice", "alice's secret"),
            ("bob", "bob's secret"),
            ("carol", "carol's secret"),
        ];
        for (user, password) in users {
            add_account(&data_dir, shards, user, password);
        }
        let tls_addr = format!("127.0.0.1:{}", free_port());
        let tls = ca.server_flags();
        let mut flags: Vec<&str> = tls.iter().map(String::as_str).collect();
        flags.extend([
            "--auth",
            "file",
            "--listen-tls",
            &tls_addr,
            "--require-tls",
            "all",
        ]);
        let server = Server::start_on(backend, usize::from(shards), &flags, &data_dir);
        let tls_port = tls_addr.rsplit(':').next().unwrap_or_default();
        let mut args = vec![
            tls_port.to_string(),
            ca.arg("ca.pem"),
            stranger.arg("ca.pem"),
        ];
        for (user, password) in users {
            args.extend([format!("{user}@{DOMAIN}"), password.to_string()]);
        }
        let stdout = run_script_args("slix_tls.py", &server, &args, backend);
        for expected in [
            "\"alice_outcome\": \"session\"",
            "\"alice_mechanism\": \"SCRAM-SHA-256\"",
            "\"bob_outcome\": \"session\"",
            "\"bob_mechanism\": \"SCRAM-SHA-1\"",
            "\"carol_outcome\": \"session\"",
            "\"carol_mechanism\": \"PLAIN\"",
            "\"bob_received\": \"hello over TLS\"",
        ] {
            assert!(
                stdout.contains(expected),
                "{backend}: {expected} in {stdout}"
            );
        }
        assert!(stdout.contains("\"alice_tls\": \"TLSv1."), "{stdout}");
        assert!(
            !stdout.contains("\"clear_outcome\": \"session\""),
            "{backend}: a client in the clear logged in: {stdout}"
        );
        assert!(
            !stdout.contains("\"stranger_outcome\": \"session\""),
            "{backend}: a client trusting another CA logged in: {stdout}"
        );
        drop(server);
        let _ = std::fs::remove_dir_all(&data_dir);
    }
}

/// A real end-user client: profanity (in tmux, its own HOME, trusting the test CA through
/// SSL_CERT_FILE) logs in over STARTTLS (`tls force`) to an account made with `rookery
/// accounts add`, sends a message that a slixmpp user receives, and shows that user's answer.
#[test]
fn profanity_in_tmux_chats_over_starttls_with_a_slixmpp_user() {
    use std::io::BufRead;
    use support::certs::TestCa;
    let ca = TestCa::new("Rookery Test CA", DOMAIN);
    for backend in backends() {
        let shards = 2u16;
        let data_dir = Server::temp_data_dir();
        add_account(&data_dir, shards, "alice", "alice-pw");
        add_account(&data_dir, shards, "bob", "bob-pw");
        let tls = ca.server_flags();
        let mut flags: Vec<&str> = tls.iter().map(String::as_str).collect();
        flags.extend(["--auth", "file", "--require-tls", "all"]);
        let server = Server::start_on(backend, usize::from(shards), &flags, &data_dir);
        let port = server.addr.port().to_string();
        let script = format!("{}/tests/interop/slix_echo.py", env!("CARGO_MANIFEST_DIR"));
        let mut echo = Command::new("python3")
            .arg(script)
            .args(["127.0.0.1", &port, &ca.arg("ca.pem")])
            .args([&format!("bob@{DOMAIN}"), "bob-pw"])
            .output_on_wait();
        let mut echo_out = std::io::BufReader::new(echo.stdout.take().expect("piped"));
        let mut first = String::new();
        echo_out.read_line(&mut first).expect("slix_echo.py prints");
        assert_eq!(
            first.trim(),
            "ready",
            "{backend}: bob did not log in: {first}"
        );

        let tmux = Tmux::start(
            &format!("rookery-prof-{}-{backend}", std::process::id()),
            &ca,
        );
        tmux.wait_for("/help", "profanity started");
        tmux.keys(&format!(
            "/connect alice@{DOMAIN} server 127.0.0.1 port {port} tls force"
        ));
        tmux.wait_for("Enter password", "the password prompt");
        tmux.keys("alice-pw");
        tmux.wait_for("logged in successfully", "alice logged in");
        tmux.keys(&format!("/msg bob@{DOMAIN} hello from profanity"));
        let screen = tmux.wait_for("echo: hello from profanity", "bob's answer shown");
        assert!(
            screen.contains("[TLS]"),
            "{backend}: not over TLS:\n{screen}"
        );

        let mut stdout = String::new();
        std::io::Read::read_to_string(&mut echo_out, &mut stdout).expect("slix_echo.py output");
        let output = echo.wait_with_output().expect("slix_echo.py ends");
        assert!(
            output.status.success(),
            "{backend}: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains("\"body\": \"hello from profanity\"")
                && stdout.contains(&format!("\"from\": \"alice@{DOMAIN}/")),
            "{backend}: {stdout}"
        );
        drop(tmux);
        drop(server);
        let _ = std::fs::remove_dir_all(&data_dir);
    }
}

/// A profanity session in a detached tmux session with its own HOME; killed on drop.
struct Tmux {
    name: String,
    home: std::path::PathBuf,
}

impl Tmux {
    fn start(name: &str, ca: &support::certs::TestCa) -> Tmux {
        let home = ca.path(&format!("home-{name}"));
        std::fs::create_dir_all(&home).expect("profanity home");
        let env = format!(
            "env HOME={h} XDG_CONFIG_HOME={h}/.config XDG_DATA_HOME={h}/.local/share \
             SSL_CERT_FILE={ca} profanity",
            h = home.display(),
            ca = ca.arg("ca.pem")
        );
        let status = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                name,
                "-x",
                "160",
                "-y",
                "40",
                &env,
            ])
            .status()
            .expect("tmux runs (apt install tmux profanity)");
        assert!(status.success(), "tmux new-session failed");
        Tmux {
            name: name.to_string(),
            home,
        }
    }

    fn keys(&self, text: &str) {
        let status = Command::new("tmux")
            .args(["send-keys", "-t", &self.name, "-l", text])
            .status()
            .expect("tmux send-keys");
        assert!(status.success());
        let status = Command::new("tmux")
            .args(["send-keys", "-t", &self.name, "Enter"])
            .status()
            .expect("tmux send-keys");
        assert!(status.success());
    }

    fn screen(&self) -> String {
        let output = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Polls the screen (every 100 ms, at most 20 s) until it shows `text`.
    fn wait_for(&self, text: &str, what: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "profanity: {what}: no {text:?} on screen:\n{screen}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

#[test]
fn slixmpp_component_answers_a_user_and_a_wrong_secret_is_refused() {
    for backend in backends() {
        let shards = 2u16;
        let port = rookery_testkit::nats::free_port().to_string();
        let name = format!("push.{DOMAIN}");
        let listen = format!("127.0.0.1:{port}");
        let component = format!("{name}=component-secret");
        let flags = ["--component-listen", &listen, "--component", &component];
        let server = Server::start(backend, shards as usize, &flags);
        let alice = user_on_shard("alice", 0, shards);
        let args = [port.as_str(), name.as_str(), "component-secret"];
        let stdout = run_script("slix_component.py", &server, &args, &[&alice], backend);
        assert!(
            stdout.contains("[\"pubsub\", \"push\", null, \"Test push\"]"),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("\"to\": \"bot@{name}\"")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("\"from\": \"{alice}@{DOMAIN}/")),
            "{stdout}"
        );
        assert!(stdout.contains("\"body\": \"pong: ping\""), "{stdout}");
        assert!(
            stdout.contains("\"wrong_secret\": \"not-authorized\""),
            "{stdout}"
        );
    }
}

#[test]
fn slixmpp_push_reaches_a_component_app_server_for_detached_and_offline_users() {
    for backend in backends() {
        let shards = 2u16;
        let port = rookery_testkit::nats::free_port().to_string();
        let name = format!("push.{DOMAIN}");
        let listen = format!("127.0.0.1:{port}");
        let component = format!("{name}=app-secret");
        let flags = ["--component-listen", &listen, "--component", &component];
        let server = Server::start(backend, shards as usize, &flags);
        let users: Vec<String> = [("alice", 0), ("bob", 1), ("carol", 1)]
            .iter()
            .map(|(user, shard)| user_on_shard(user, *shard, shards))
            .collect();
        let users: Vec<&str> = users.iter().map(String::as_str).collect();
        let args = [port.as_str(), name.as_str(), "app-secret"];
        let stdout = run_script("slix_push.py", &server, &args, &users, backend);
        assert!(stdout.contains("\"account_has_push\": true"), "{stdout}");
        let (alice, bob, carol) = (users[0], users[1], users[2]);
        for (user, node) in [(alice, "alice-node"), (carol, "carol-node")] {
            let from =
                format!("\"to\": \"{name}\", \"from\": \"{user}@{DOMAIN}\", \"node\": \"{node}\"");
            assert!(stdout.contains(&from), "{stdout}");
        }
        assert_eq!(
            stdout
                .matches("\"FORM_TYPE\": \"urn:xmpp:push:summary\"")
                .count(),
            2,
            "{stdout}"
        );
        let sender = format!("\"last-message-sender\": \"{bob}@{DOMAIN}\"");
        assert_eq!(stdout.matches(&sender).count(), 2, "{stdout}");
        assert!(
            !stdout.contains("last-message-body"),
            "no body by default: {stdout}"
        );
        assert!(stdout.contains("\"has_publish_options\": true"), "{stdout}");
        assert!(server.metric("rookery_push_notifications_total") >= 2);
    }
}
