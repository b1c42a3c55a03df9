//! A full disk loses nothing acknowledged: the server refuses stanzas that need storage with
//! `resource-constraint`, acknowledges only what it stored, and recovers when space returns.
//! Uses a real 256 KiB tmpfs as --data-dir (needs root to mount; without it the test says
//! SKIP loudly and passes: mounting is the only part that needs privileges).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{backends, RawClient, Server, DOMAIN};

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = Server::temp_data_dir();
        std::fs::create_dir_all(&dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            Some(Tmpfs(dir))
        } else {
            let _ = std::fs::remove_dir(&dir);
            None
        }
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn full_disk_refuses_with_resource_constraint_acks_only_stored_and_recovers() {
    for backend in backends() {
        let Some(tmpfs) = Tmpfs::mount("256k") else {
            eprintln!("SKIP: cannot mount a tmpfs here (not root?); disk-full test not run");
            return;
        };
        // Leave about 48 KiB free for the logs.
        let filler = tmpfs.path().join("filler");
        std::fs::write(&filler, vec![0u8; 200 * 1024]).unwrap();
        // The offline store's behaviour is measured: the message archive (its own files,
        // whose failed writes only count) stays off so it does not move where the disk fills.
        let mut server = Server::start_on(backend, 1, &["--archive-days", "0"], tmpfs.path());
        let (mut alice, _) = RawClient::login(server.addr, "alice", "r");
        alice.send("<enable xmlns='urn:xmpp:sm:3'/>");
        alice.expect("<enabled");
        let body = "x".repeat(1000);
        let mut refused_at = None;
        for n in 0..120 {
            alice.send(&format!(
                "<message to='bob@{DOMAIN}' type='chat' id='d{n}'><body>{body}</body></message><r xmlns='urn:xmpp:sm:3'/>"
            ));
            if alice
                .try_expect("resource-constraint", Duration::from_millis(30))
                .is_some()
            {
                refused_at = Some(n);
                break;
            }
        }
        let refused_at = refused_at.expect("the disk filled up and a message was refused");
        assert_eq!(
            server.wait_metric("rookery_store_available", 0),
            0,
            "{backend}: store unavailable"
        );
        let acked = alice.drain_acks_for(Duration::from_millis(500));
        assert!(
            acked <= refused_at + 1,
            "{backend}: acked {acked} beyond what fit ({refused_at})"
        );

        // Space returns: the retry succeeds and storing resumes.
        std::fs::remove_file(&filler).unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        alice.send(&format!("<message to='bob@{DOMAIN}' type='chat' id='after'><body>ok</body></message><r xmlns='urn:xmpp:sm:3'/>"));
        alice.received.clear(); // acks and errors read so far are from before the recovery
        alice.expect_ack();
        let log: Vec<String> = server.log.try_iter().collect();
        assert_eq!(
            server.wait_metric("rookery_store_available", 1),
            1,
            "{backend}: recovered; server log: {log:#?}"
        );

        // Everything acknowledged reaches bob.
        let (mut bob, _) = RawClient::login_without_sync(server.addr, "bob", "r");
        let mut got = 0;
        while bob
            .try_expect("</message>", Duration::from_secs(1))
            .is_some()
        {
            got += 1;
        }
        assert!(
            got >= acked as usize,
            "{backend}: bob got {got} of {acked} acknowledged"
        );
        server.signal("KILL");
        let _ = server.wait_exit(Duration::from_secs(5));
    }
}
