//! `--auth file` accounts across crashes: an account made with `rookery accounts add` logs
//! in after the server was SIGKILLed and restarted; a password changed in-band (XEP-0077)
//! is the one that works after the next SIGKILL and restart, the old one is refused.
//! Logins go through rookery-client (SCRAM-SHA-256, the strongest offered in the clear on
//! loopback). Both backends.

mod support;

use std::time::Duration;

use support::{add_account, backends, RawClient, Server};

const SHARDS: u16 = 2;

/// SIGKILL, then a new server on the same data dir.
fn crash_and_restart(mut server: Server, backend: &str, data_dir: &std::path::Path) -> Server {
    server.signal("KILL");
    assert!(server.wait_exit(Duration::from_secs(10)).is_some());
    drop(server);
    Server::start_on(backend, usize::from(SHARDS), &["--auth", "file"], data_dir)
}

#[test]
fn accounts_and_password_changes_survive_sigkill() {
    for backend in backends() {
        let data_dir = Server::temp_data_dir();
        add_account(&data_dir, SHARDS, "alice", "first password");
        let server = Server::start_on(backend, usize::from(SHARDS), &["--auth", "file"], &data_dir);
        RawClient::try_login(server.addr, "alice", "first password", "a")
            .unwrap_or_else(|e| panic!("{backend}: {e}"));

        let server = crash_and_restart(server, backend, &data_dir);
        let (mut alice, _) = RawClient::try_login(server.addr, "alice", "first password", "a")
            .unwrap_or_else(|e| panic!("{backend}: after a crash: {e}"));
        alice.send(
            "<iq type='set' id='pw'><query xmlns='jabber:iq:register'>\
             <username>alice</username><password>second password</password></query></iq>",
        );
        let answer = alice.expect("id='pw'");
        assert!(answer.contains("type='result'"), "{backend}: {answer}");

        let server = crash_and_restart(server, backend, &data_dir);
        RawClient::try_login(server.addr, "alice", "second password", "b")
            .unwrap_or_else(|e| panic!("{backend}: the changed password after a crash: {e}"));
        let old = RawClient::try_login(server.addr, "alice", "first password", "c")
            .map(|_| ())
            .unwrap_err();
        assert!(old.contains("not-authorized"), "{backend}: {old}");
        drop(server);
        let _ = std::fs::remove_dir_all(&data_dir);
    }
}
