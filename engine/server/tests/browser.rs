//! A real browser user: Converse.js (npm) in Debian's headless Chromium, driven by
//! puppeteer-core (`tests/browser/driver.mjs`), logs in over XMPP-over-WebSocket
//! (`ws://…/xmpp-websocket`), adds a slixmpp TCP user (`tests/interop/slix_browser_peer.py`)
//! as a contact, and through the page's own UI types a message, sees the answer, and shares a
//! PNG through the chat toolbar's file input: Converse uploads it with XEP-0363 (a
//! cross-origin PUT from the page) and sends the GET URL as body and XEP-0066 OOB; the
//! slixmpp side downloads it and finds it byte-identical, and says so; the page shows the
//! image. A screenshot of the conversation is kept in `target/browser-test/` (its path is
//! printed). Then the page stays quiet past the server's keepalive interval
//! (`--ws-ping-interval 1 --ws-ping-timeout 1`): Chromium answers the WebSocket pings itself,
//! and the session is still there.
//!
//! Needs `node`, Chromium (`/usr/bin/chromium`, or `ROOKERY_CHROMIUM`) and the npm packages
//! (`npm ci` in tests/browser; `.ci/run` does all three). A missing one fails this test with
//! what to install: it is never skipped silently. One backend, one browser run: the
//! transports under every backend are covered by websocket.rs and interop.rs.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{backends, token, user_on_shard, Server, DOMAIN};

/// Longest the browser side may take (its own overall timer is 90 s).
const BROWSER_LIMIT: Duration = Duration::from_secs(150);
/// Longest the slixmpp side may take to come online.
const PEER_ONLINE_LIMIT: Duration = Duration::from_secs(30);

/// A loopback port free right now (bound and released: the server binds it next).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("bound").port()
}

/// A child process whose output lines arrive on channels (drained by threads, so a chatty
/// child never blocks on a full pipe); stopped on drop: SIGTERM first (node then closes its
/// browser), SIGKILL if still there after 5 s.
struct Process {
    child: Child,
    what: &'static str,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Process {
    fn spawn(mut command: Command, what: &'static str) -> Process {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("{what} did not start: {err}"));
        let stdout = lines(child.stdout.take().expect("piped stdout"));
        let stderr = lines(child.stderr.take().expect("piped stderr"));
        Process {
            child,
            what,
            stdout,
            stderr,
        }
    }

    /// Waits for a stdout line containing `needle`, at most `limit`; panics with all output.
    fn expect_line(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        while let Ok(line) = self
            .stdout
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if line.contains(needle) {
                return line;
            }
            seen.push(line);
        }
        panic!(
            "{}: no line with {needle:?} within {limit:?}; stdout:\n{}\nstderr:\n{}",
            self.what,
            seen.join("\n"),
            self.drain_stderr()
        );
    }

    /// Waits for the exit, at most `limit`; returns (exited 0, stdout, stderr).
    fn finish(&mut self, limit: Duration) -> (bool, String, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break Some(status);
            }
            if Instant::now() >= deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if status.is_none() {
            self.stop();
        }
        let stdout: Vec<String> = self.stdout.try_iter().collect();
        let stderr = self.drain_stderr();
        let ok = status.is_some_and(|s| s.success());
        if status.is_none() {
            eprintln!("{}: still running after {limit:?}: stopped", self.what);
        }
        (ok, stdout.join("\n"), stderr)
    }

    /// What the child wrote on stderr so far (reader threads end when the child does).
    fn drain_stderr(&self) -> String {
        let mut lines = Vec::new();
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_millis(200)) {
            lines.push(line);
        }
        lines.join("\n")
    }

    fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The lines of `pipe`, read on a thread of its own until EOF.
fn lines(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The browser test's npm directory, checked: node runs, Chromium exists, `npm ci` was run.
fn browser_dir() -> (PathBuf, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|out| out.status.success()),
        "node is missing: install it (apt-get install nodejs npm; .ci/run does)"
    );
    let chromium = std::env::var("ROOKERY_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: apt-get install chromium (or set ROOKERY_CHROMIUM; .ci/run installs it)"
    );
    for package in ["converse.js", "puppeteer-core"] {
        assert!(
            dir.join("node_modules").join(package).exists(),
            "npm package {package} is missing: run `npm ci` in {} (.ci/run does)",
            dir.display()
        );
    }
    (dir, chromium)
}

/// `target/browser-test/`, beside the test binaries' temp dir; made if missing.
fn output_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target dir")
        .join("browser-test");
    std::fs::create_dir_all(&dir).expect("target/browser-test");
    dir
}

/// The string value of `"key": "…"` in a JSON line (the scripts print flat JSON objects).
fn json_str<'a>(json: &'a str, key: &str) -> &'a str {
    json.split(&format!("\"{key}\":"))
        .nth(1)
        .and_then(|rest| rest.trim_start().strip_prefix('"'))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no string {key:?} in {json}"))
}

#[test]
fn a_browser_user_chats_and_shares_an_image_with_a_slixmpp_user() {
    let (dir, chromium) = browser_dir();
    let out = output_dir();
    let screenshot = out.join("conversation.png");
    let image = out.join("shared-image.png");
    let _ = std::fs::remove_file(&screenshot);

    let backend = backends()[0];
    let shards = 2u16;
    let http_port = free_port();
    let http = format!("127.0.0.1:{http_port}");
    let flags = [
        "--http-listen",
        &http,
        "--upload-content-types",
        "image/*",
        "--ws-ping-interval",
        "1",
        "--ws-ping-timeout",
        "1",
    ];
    let server = Server::start(backend, shards as usize, &flags);
    // On different shards: the WebSocket conn is handed to its user's home shard, and the
    // chat crosses shards.
    let web = user_on_shard("web", 1, shards);
    let peer = user_on_shard("peer", 0, shards);
    let (web_jid, peer_jid) = (format!("{web}@{DOMAIN}"), format!("{peer}@{DOMAIN}"));

    let mut python = Command::new("python3");
    python
        .arg(format!(
            "{}/tests/interop/slix_browser_peer.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .args(["127.0.0.1", &server.addr.port().to_string()])
        .args([&peer_jid, &token(&peer), &web_jid])
        .arg(&image);
    let mut slixmpp = Process::spawn(python, "the slixmpp peer");
    slixmpp.expect_line("\"online\": true", PEER_ONLINE_LIMIT);

    let mut node = Command::new("node");
    node.current_dir(&dir)
        .env("ROOKERY_CHROMIUM", &chromium)
        .arg("driver.mjs")
        .arg(format!("ws://{http}/xmpp-websocket"))
        .args([&web_jid, &token(&web), &peer_jid])
        .args([&image, &screenshot]);
    let (browser_ok, browser, browser_log) =
        Process::spawn(node, "the browser driver").finish(BROWSER_LIMIT);
    let (peer_ok, peer_out, peer_log) = slixmpp.finish(Duration::from_secs(30));
    let all = format!(
        "browser:\n{browser}\n{browser_log}\npeer:\n{peer_out}\n{peer_log}\nscreenshot: {}",
        screenshot.display()
    );
    assert!(browser_ok && peer_ok, "{all}");
    println!("screenshot of the conversation: {}", screenshot.display());

    // The browser side: logged in over WebSocket, saw the answer, the image and the
    // confirmation, and the image it shows was loaded from rookery.
    assert!(
        json_str(&browser, "logged_in_as").starts_with(&format!("{web_jid}/")),
        "{all}"
    );
    for shown in [
        "\"hello from the browser",
        "\"hello from slixmpp",
        "\"image received intact (",
    ] {
        assert!(browser.contains(shown), "{shown} not shown: {all}");
    }
    let image_url = json_str(&peer_out, "image_url");
    assert!(
        image_url.starts_with(&format!("http://{http}/download/")),
        "{all}"
    );
    assert_eq!(json_str(&browser, "src"), image_url, "{all}");
    assert!(browser.contains("\"complete\":true,\"width\":240"), "{all}");

    // The slixmpp side: got the message from the browser's full JID, and the image intact.
    let image_bytes = std::fs::metadata(&image).expect("the shared image").len();
    for needle in [
        "\"got\": \"hello from the browser\"".to_string(),
        format!("\"got_from\": \"{web_jid}/"),
        "\"image_body_is_url\": true".into(),
        "\"download_status\": 200".into(),
        "\"download_type\": \"image/png\"".into(),
        format!("\"download_bytes\": {image_bytes}"),
        "\"download_identical\": true".into(),
    ] {
        assert!(peer_out.contains(&needle), "{needle}: {all}");
    }

    // The quiet spell at the end: the browser answered the server's keepalive pings. A second
    // ping proves the first was answered (an unanswered one ends the conn instead).
    assert!(browser.contains("\"connected_after_quiet\":true"), "{all}");
    let pings = server.metric("rookery_websocket_keepalive_pings_total");
    assert!(
        pings >= 2,
        "{pings} keepalive pings during the quiet spell, want 2: {all}"
    );
    println!("keepalive pings sent to the browser: {pings}");
    assert_eq!(
        server.metric("rookery_websocket_keepalive_timeouts_total"),
        0,
        "{all}"
    );

    let metrics = server.metrics();
    for line in [
        "\nrookery_http_websocket_upgrades_total 1\n",
        "\nrookery_http_uploads_total 1\n",
    ] {
        assert!(metrics.contains(line), "{line:?} in {metrics}");
    }
    let shot = std::fs::read(&screenshot).expect("the screenshot");
    assert!(
        shot.starts_with(b"\x89PNG") && shot.len() > 10_000,
        "{} is not a screenshot ({} bytes)",
        screenshot.display(),
        shot.len()
    );
}
