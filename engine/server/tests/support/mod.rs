//! Test support: start the real `rookery` binary on loopback and talk XMPP to it over real
//! sockets with a tiny blocking client (its logins go through `rookery-client`, the same
//! client as the load generator's). Every wait is bounded; every server is killed on drop.

#![allow(dead_code)]

pub mod certs;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rookery_client::{wire, AuthFailure, Client, Event, Flow, Login, Options};

pub const DOMAIN: &str = "example.test";
pub const SECRET: &str = "test-secret";
pub const WAIT: Duration = Duration::from_secs(10);

/// Backends to run every end-to-end test under. io_uring is skipped visibly if unavailable.
pub fn backends() -> Vec<&'static str> {
    let mut list = vec!["poll"];
    if uring_available() {
        list.insert(0, "uring");
    } else {
        eprintln!("NOTE: io_uring unavailable here: end-to-end tests run on the poll backend only");
    }
    list
}

fn uring_available() -> bool {
    cfg!(target_os = "linux")
        && rookery_io::select_backend(rookery_io::BackendChoice::Uring, &Default::default()).is_ok()
}

/// A running server; killed (SIGKILL) on drop if still alive.
pub struct Server {
    pub child: Child,
    /// The server's --data-dir (a fresh temp dir unless given); removed on drop if owned.
    pub data_dir: PathBuf,
    owns_data_dir: bool,
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub log: mpsc::Receiver<String>,
    pub startup_log: Vec<String>,
}

impl Server {
    pub fn start(backend: &str, shards: usize, extra: &[&str]) -> Server {
        Self::start_with_prefix(backend, shards, extra, None)
    }

    /// A fresh, unique data dir for one test server.
    pub fn temp_data_dir() -> PathBuf {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("rookery-e2e-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// Starts a server on an existing data dir (a restart); the dir is kept on drop.
    pub fn start_on(backend: &str, shards: usize, extra: &[&str], data_dir: &Path) -> Server {
        let mut server = Self::launch(backend, shards, extra, None, data_dir.to_path_buf());
        server.owns_data_dir = false;
        server
    }

    /// Starts a server listening on `listen` (a cluster node: its address is in the cluster
    /// file before it starts).
    pub fn start_at(backend: &str, shards: usize, listen: SocketAddr, extra: &[&str]) -> Server {
        let listen = listen.to_string();
        Self::launch_at(backend, shards, &listen, extra, None, Self::temp_data_dir())
    }

    /// Starts a server listening on `listen` on an existing data dir (a cluster node's
    /// restart); the dir is kept on drop.
    pub fn start_at_on(
        backend: &str,
        shards: usize,
        listen: SocketAddr,
        extra: &[&str],
        data_dir: &Path,
    ) -> Server {
        let listen = listen.to_string();
        let mut server = Self::launch_at(
            backend,
            shards,
            &listen,
            extra,
            None,
            data_dir.to_path_buf(),
        );
        server.owns_data_dir = false;
        server
    }

    /// `shell_prefix`: e.g. "ulimit -n 100;" to run the server under a lower fd limit.
    pub fn start_with_prefix(
        backend: &str,
        shards: usize,
        extra: &[&str],
        shell_prefix: Option<&str>,
    ) -> Server {
        Self::launch(backend, shards, extra, shell_prefix, Self::temp_data_dir())
    }

    fn launch(
        backend: &str,
        shards: usize,
        extra: &[&str],
        shell_prefix: Option<&str>,
        data_dir: PathBuf,
    ) -> Server {
        Self::launch_at(
            backend,
            shards,
            "127.0.0.1:0",
            extra,
            shell_prefix,
            data_dir,
        )
    }

    fn launch_at(
        backend: &str,
        shards: usize,
        listen: &str,
        extra: &[&str],
        shell_prefix: Option<&str>,
        data_dir: PathBuf,
    ) -> Server {
        let bin = env!("CARGO_BIN_EXE_rookery");
        let mut args = vec![
            "--listen".to_string(),
            listen.into(),
            "--admin".into(),
            "127.0.0.1:0".into(),
            "--domain".into(),
            DOMAIN.into(),
            "--auth".into(),
            "token".into(),
            "--token-secret".into(),
            SECRET.into(),
            "--backend".into(),
            backend.into(),
            "--shards".into(),
            shards.to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut command = match shell_prefix {
            Some(prefix) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("{prefix} exec \"$0\" \"$@\""))
                    .arg(bin)
                    .args(&args);
                c
            }
            None => {
                let mut c = Command::new(bin);
                c.args(&args);
                c
            }
        };
        let mut child = command
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rookery");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut startup_log = Vec::new();
        let mut admin = None;
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "rookery did not get ready; log so far:\n{}",
                    startup_log.join("\n")
                )
            });
            startup_log.push(line.clone());
            if let Some(rest) = line.split("metrics: http://").nth(1) {
                admin = rest.split('/').next().and_then(|a| a.parse().ok());
            }
            if let Some(rest) = line.split("ready: listening on ").nth(1) {
                let addr = rest.split_whitespace().next().unwrap().parse().unwrap();
                return Server {
                    child,
                    data_dir,
                    owns_data_dir: true,
                    addr,
                    admin,
                    log: rx,
                    startup_log,
                };
            }
        }
    }

    /// Keeps the data dir after this server is dropped (for a restart on it); returns it.
    pub fn keep_data_dir(&mut self) -> PathBuf {
        self.owns_data_dir = false;
        self.data_dir.clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by pid with the `kill` command (no unsafe in tests).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn metrics(&self) -> String {
        let admin = self.admin.expect("admin address");
        let mut conn = TcpStream::connect(admin).unwrap();
        conn.set_read_timeout(Some(WAIT)).unwrap();
        conn.write_all(b"GET /metrics HTTP/1.1\r\nhost: t\r\n\r\n")
            .unwrap();
        let mut body = String::new();
        conn.read_to_string(&mut body).unwrap();
        body
    }

    /// The metric once it reads `want`, or its last value after 5 s. Shards publish their
    /// counters at the end of a loop turn, so what a client just saw happen (a refusal, a
    /// login) may reach the metrics a moment later: assert on what this returns.
    pub fn wait_metric(&self, name: &str, want: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let value = self.metric(name);
            if value == want || Instant::now() >= deadline {
                return value;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The metric once it exceeds `floor`, or its value after 10 s (a counter published once a
    /// second: wait for it to show what just happened).
    pub fn wait_metric_above(&self, name: &str, floor: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let value = self.metric(name);
            if value > floor || Instant::now() >= deadline {
                return value;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sum of a metric over shards; panics if the server does not publish it (a missing
    /// metric must not read as 0).
    pub fn metric(&self, name: &str) -> u64 {
        let text = self.metrics();
        let values: Vec<u64> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .collect();
        assert!(!values.is_empty(), "metric {name} not published:\n{text}");
        values.iter().sum()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.owns_data_dir {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

pub fn token(user: &str) -> String {
    rookery_router::token_password(SECRET.as_bytes(), user)
}

/// Users whose home shards differ (for cross-shard tests) or are equal.
pub fn user_on_shard(prefix: &str, shard: u16, shards: u16) -> String {
    (0..1000)
        .map(|i| format!("{prefix}{i}"))
        .find(|name| {
            let jid = rookery_proto::Jid::parse(&format!("{name}@{DOMAIN}")).unwrap();
            rookery_router::Placement::local(shards).home(&jid).shard.0 == shard
        })
        .unwrap()
}

/// A blocking raw XMPP client: enough to log in and exchange stanzas, with bounded reads.
pub struct RawClient {
    pub stream: TcpStream,
    pub received: String,
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        RawClient {
            stream,
            received: String::new(),
        }
    }

    pub fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).unwrap();
    }

    /// Reads until `needle` appears in what was received (consumed up to and including it).
    /// Returns everything before and including it; panics after WAIT.
    pub fn expect(&mut self, needle: &str) -> String {
        self.try_expect(needle, WAIT).unwrap_or_else(|| {
            panic!(
                "did not receive {needle:?}; got so far: {:?}",
                self.received
            )
        })
    }

    pub fn try_expect(&mut self, needle: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(pos) = self.received.find(needle) {
                let end = pos + needle.len();
                let taken: String = self.received.drain(..end).collect();
                return Some(taken);
            }
            if Instant::now() >= deadline {
                return None;
            }
            let mut buf = [0u8; 8192];
            match self.stream.read(&mut buf) {
                // The needle was looked for at the top of the loop: a closed conn cannot bring it.
                Ok(0) => return None,
                Ok(n) => self.received.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(e) if read_again(&e) => {}
                Err(err) => {
                    eprintln!("read error while waiting for {needle:?}: {err}");
                    return None;
                }
            }
        }
    }

    /// True when the server closed the conn (read returns 0) within `limit`.
    pub fn closed_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let mut buf = [0u8; 4096];
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(n) => self.received.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(e) if read_again(&e) => {}
                Err(_) => return true,
            }
        }
        false
    }

    /// Opens a stream by hand and reads the features (for tests of what comes before auth).
    pub fn open_stream(&mut self) {
        let mut header = Vec::new();
        wire::stream_header(DOMAIN, &mut header);
        self.stream.write_all(&header).unwrap();
        self.expect("</stream:features>");
    }

    /// Logs in through `rookery-client` over this blocking socket (stream, SASL, restart,
    /// bind `resource`); `Err` with what the client reported when the server refused. Bytes
    /// after the bind result are left in `received`.
    pub fn try_login(
        addr: SocketAddr,
        user: &str,
        password: &str,
        resource: &str,
    ) -> Result<(RawClient, String), String> {
        let mut client = RawClient::connect(addr);
        let mut account = Login::new(DOMAIN, user, password).with_resource(Some(resource));
        let mut xmpp: Client = Client::new(Options::default());
        let mut out = Vec::new();
        xmpp.start(DOMAIN, &mut out);
        let deadline = Instant::now() + WAIT;
        let mut buf = [0u8; 8192];
        while Instant::now() < deadline {
            client.stream.write_all(&out).unwrap();
            out.clear();
            let n = match client.stream.read(&mut buf) {
                Ok(0) => return Err("the server closed the conn".into()),
                Ok(n) => n,
                Err(e) if read_again(&e) => continue,
                Err(e) => return Err(e.to_string()),
            };
            let mut outcome = None;
            let used = xmpp.feed_until(&buf[..n], &mut account, &mut out, |event, _, _| {
                outcome = match event {
                    Event::Bound { jid } => Some(Ok(jid.into_owned())),
                    Event::AuthFailed(AuthFailure::Server { condition }) => {
                        Some(Err(format!("SASL failure: {condition}")))
                    }
                    Event::AuthFailed(_)
                    | Event::BindFailed { .. }
                    | Event::StreamError(_)
                    | Event::StreamClosed
                    | Event::ProtocolError { .. } => Some(Err(format!("{event:?}"))),
                    _ => return Flow::Continue,
                };
                Flow::Stop
            });
            if let Some(outcome) = outcome {
                let rest = String::from_utf8_lossy(&buf[used..n]);
                client.received.push_str(&rest);
                return outcome.map(|jid| (client, jid));
            }
        }
        Err(format!("no login within {WAIT:?}"))
    }

    /// Login with presence but no ping round trip (for tests that read what presence brings).
    pub fn login_without_sync(addr: SocketAddr, user: &str, resource: &str) -> (RawClient, String) {
        let (mut client, jid) = Self::bind_only(addr, user, resource);
        client.send("<presence/>");
        (client, jid)
    }

    /// Reads until the next XEP-0198 `<a h='N'/>` and returns N.
    pub fn expect_ack(&mut self) -> u32 {
        self.expect("<a ");
        let rest = self.expect("/>").replace('"', "'");
        rest.split("h='")
            .nth(1)
            .and_then(|r| r.split('\'').next())
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Reads for `limit`, then returns the highest ack seen in everything received so far.
    pub fn drain_acks_for(&mut self, limit: Duration) -> u32 {
        let _ = self.try_expect("\u{0}never", limit);
        Self::highest_ack(&self.received)
    }

    fn highest_ack(text: &str) -> u32 {
        text.replace('"', "'")
            .split("h='")
            .skip(1)
            .filter_map(|r| r.split('\'').next()?.parse().ok())
            .max()
            .unwrap_or(0)
    }

    /// Reads whatever is left on a conn whose server died; returns the highest ack seen.
    pub fn drain_acks(&mut self) -> u32 {
        let _ = self.closed_within(Duration::from_secs(2));
        Self::highest_ack(&self.received)
    }

    /// Stream, PLAIN with the token password, restart and bind `resource`; no presence.
    pub fn bind_only(addr: SocketAddr, user: &str, resource: &str) -> (RawClient, String) {
        Self::try_login(addr, user, &token(user), resource)
            .unwrap_or_else(|error| panic!("login of {user} refused: {error}"))
    }

    /// Full login: stream, PLAIN with the token password, restart, bind `resource`, presence.
    /// Returns the bound full JID.
    pub fn login(addr: SocketAddr, user: &str, resource: &str) -> (RawClient, String) {
        let (mut client, jid) = Self::bind_only(addr, user, resource);
        // Presence, then a ping round trip: once the pong is back the presence was processed.
        client.send("<presence/><iq type='get' id='sync1'><ping xmlns='urn:xmpp:ping'/></iq>");
        client.expect("sync1");
        client.expect(">");
        (client, jid)
    }
}

/// The subscription handshake both ways between `a` (logged in as `a_user`) and `b` (as
/// `b_user`), each approving the other's request; returns once both were told their roster
/// item is now `subscription='both'`.
pub fn subscribe_both_ways(a: &mut RawClient, a_user: &str, b: &mut RawClient, b_user: &str) {
    let presence = |to: &str, kind: &str| format!("<presence to='{to}@{DOMAIN}' type='{kind}'/>");
    a.send(&presence(b_user, "subscribe"));
    b.expect("type='subscribe'");
    b.send(&(presence(a_user, "subscribed") + &presence(a_user, "subscribe")));
    a.expect("type='subscribe'");
    a.send(&presence(b_user, "subscribed"));
    for client in [a, b] {
        client.expect("subscription='both'");
    }
}

/// A read that timed out or was interrupted: nothing is wrong, read again.
fn read_again(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::{Interrupted, TimedOut, WouldBlock};
    matches!(err.kind(), WouldBlock | TimedOut | Interrupted)
}

/// `rookery accounts add` for `user` with `password` (on standard input) in `data_dir`, for a
/// server of `shards` shards (`--auth file`).
pub fn add_account(data_dir: &Path, shards: u16, user: &str, password: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rookery"))
        .args(["accounts", "--data-dir", &data_dir.display().to_string()])
        .args([
            "--domain",
            DOMAIN,
            "--shards",
            &shards.to_string(),
            "add",
            user,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rookery accounts runs");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(format!("{password}\n").as_bytes())
        .expect("password written");
    drop(stdin);
    let output = child.wait_with_output().expect("rookery accounts ends");
    assert!(
        output.status.success(),
        "rookery accounts add {user}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}
