//! `--auth file` accounts across crashes: an account made with `rookery accounts add` logs
//! in after the server was SIGKILLed and restarted; a password changed in-band (XEP-0077)
//! is the one that works after the next SIGKILL and restart, the old one is refused.
//! Logins go through rookery-client (SCRAM-SHA-256, the strongest offered in the clear on
//! loopback). Both backends.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{backends, RawClient, Server, DOMAIN};

const SHARDS: u16 = 2;

fn add_account(data_dir: &std::path::Path, user: &str, password: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rookery"))
        .args(["accounts", "--data-dir", &data_dir.display().to_string()])
        .args([
            "--domain",
            DOMAIN,
            "--shards",
            &SHARDS.to_string(),
            "add",
            user,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rookery accounts runs");
    let mut stdin = child.stdin.take().expect("piped");
    stdin
        .write_all(format!("{password}\n").as_bytes())
        .expect("password written");
    drop(stdin);
    let output = child.wait_with_output().expect("rookery accounts ends");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

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
        add_account(&data_dir, "alice", "first password");
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
