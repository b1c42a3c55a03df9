//! Shared by the integration tests: the `rookery` server binary (built when missing), a
//! running server on 127.0.0.1 with a random port that is killed on drop, and a bounded run
//! of `rookery-load` that returns the parsed summary.json.
//!
//! Every `rookery-load` child is killed after [`RUN_TIMEOUT`] ([`run_bounded`]); every server
//! is killed on drop. Each test binary uses a subset, hence `#[allow(dead_code)]` where needed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);
pub const SECRET: &str = "integration-secret";

/// Serializes the server build between the tests of one binary.
static BUILD: Mutex<()> = Mutex::new(());

/// The server binary next to rookery-load, built with cargo if it is not there yet.
pub fn server_binary() -> PathBuf {
    let _guard = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf();
    let binary = dir.join(format!("rookery{}", std::env::consts::EXE_SUFFIX));
    if binary.is_file() {
        return binary;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "-p", "rookery", "--bin", "rookery", "--target-dir"])
        .arg(dir.parent().expect("target dir"));
    if dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    eprintln!("building the server: {build:?}");
    let status = build
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("running cargo");
    assert!(status.success(), "cargo build -p rookery failed");
    assert!(
        binary.is_file(),
        "{} still missing after the build",
        binary.display()
    );
    binary
}

/// A `rookery` server on 127.0.0.1 (token auth with [`SECRET`]) with its own fresh
/// `--data-dir` (no stored messages of other runs, no lock shared with other tests); killed
/// and its data removed on drop.
pub struct Server {
    child: Child,
    data_dir: PathBuf,
    pub addr: String,
}

impl Server {
    #[allow(dead_code)] // not every test binary starts a default server
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// A server with `extra` options on its command line.
    pub fn start_with(extra: &[&str]) -> Server {
        Server::start_at("127.0.0.1:0", extra)
    }

    /// A server listening on `listen` (a cluster node's address is in the cluster file
    /// before it starts), with `extra` options.
    pub fn start_at(listen: &str, extra: &[&str]) -> Server {
        Server::start_full(listen, &["--auth", "token"], None, extra)
    }

    /// A fresh data dir path for one server of this test binary (not created).
    pub fn fresh_data_dir() -> PathBuf {
        static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let data_dir =
            std::env::temp_dir().join(format!("rookery-load-it-data-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data_dir);
        data_dir
    }

    /// A server on `listen` with `auth` (e.g. `--auth file`), on `data_dir` (prepared by the
    /// caller, e.g. with `rookery accounts`; a fresh one when `None`; removed on drop either
    /// way), and `extra` options.
    pub fn start_full(
        listen: &str,
        auth: &[&str],
        data_dir: Option<PathBuf>,
        extra: &[&str],
    ) -> Server {
        let data_dir = data_dir.unwrap_or_else(Server::fresh_data_dir);
        let mut child = Command::new(server_binary())
            .args(["--listen", listen, "--domain", "example.test"])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(auth)
            .args(["--admin", "off"])
            .args(extra)
            .env("ROOKERY_TOKEN_SECRET", SECRET)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting rookery");
        let stderr = child.stderr.take().expect("server stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if let Some(rest) = line.split("ready: listening on ").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the server logs its ready line");
        Server {
            child,
            data_dir,
            addr,
        }
    }
}

impl Server {
    /// The server process' id (for `--server-pid`).
    #[allow(dead_code)] // used by the drain test only
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Runs `rookery-load <args> --output <fresh folder>`; asserts it exits with `expect_code`
/// within [`RUN_TIMEOUT`]; returns summary.json, the run folder and the output text.
pub fn run_load(name: &str, args: &[&str], expect_code: i32) -> (Value, PathBuf, String) {
    run_load_as(name, args, &format!("token:{SECRET}"), expect_code)
}

/// [`run_load`] with the `--auth` of another server.
pub fn run_load_as(
    name: &str,
    args: &[&str],
    auth: &str,
    expect_code: i32,
) -> (Value, PathBuf, String) {
    let output =
        std::env::temp_dir().join(format!("rookery-load-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&output);
    let mut all = args.to_vec();
    all.extend(["--auth", auth, "--quiet"]);
    let (status, text) = run_bounded(&all, &output);
    assert_eq!(
        status.code(),
        Some(expect_code),
        "{status}; output:\n{text}"
    );
    let (summary, run) = single_run(&output);
    (summary, run, text)
}

/// Runs `rookery-load <args> --output <output>` with its stdout and stderr in
/// `<output>.log` (removed afterwards); kills it and panics, showing that output, if it has
/// not exited within [`RUN_TIMEOUT`]. Returns its exit status and output text.
pub fn run_bounded(args: &[&str], output: &Path) -> (ExitStatus, String) {
    let log_path = output.with_extension("log");
    let log = std::fs::File::create(&log_path).expect("creating the log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rookery-load"))
        .args(args)
        .arg("--output")
        .arg(output)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file handle"))
        .stderr(log)
        .spawn()
        .expect("starting rookery-load");
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for rookery-load") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let what = args.first().unwrap_or(&"");
            panic!("rookery-load {what} did not finish within {RUN_TIMEOUT:?}; its output:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    (status, text)
}

/// The one run folder a `rookery-load` run wrote under `output` (asserted to be the only
/// one) and its parsed summary.json.
pub fn single_run(output: &Path) -> (Value, PathBuf) {
    let runs: Vec<PathBuf> = std::fs::read_dir(output)
        .expect("the output folder exists")
        .map(|e| e.expect("dir entry").path())
        .collect();
    assert_eq!(runs.len(), 1, "one run folder: {runs:?}");
    let summary = std::fs::read_to_string(runs[0].join("summary.json")).expect("summary.json");
    let summary = serde_json::from_str(&summary).expect("summary.json is JSON");
    (summary, runs[0].clone())
}

/// The server a test runs against: a fresh `rookery` ([`Server`]), or the one named by
/// `ROOKERY_LOAD_IT_SERVER` (host:port) with `ROOKERY_LOAD_IT_AUTH` (e.g. `plain:PREFIX` for
/// the ejabberd of benches/scripts/vs-ejabberd.sh), to check a scenario against another
/// server's semantics. An external server keeps its state between runs (and tests).
#[allow(dead_code)] // used by the presence and group tests only
pub enum Target {
    Rookery(Server),
    External { addr: String, auth: String },
}

#[allow(dead_code)] // used by the presence and group tests only
impl Target {
    pub fn from_env_or(start: impl FnOnce() -> Server) -> Target {
        match (
            std::env::var("ROOKERY_LOAD_IT_SERVER"),
            std::env::var("ROOKERY_LOAD_IT_AUTH"),
        ) {
            (Ok(addr), Ok(auth)) => Target::External { addr, auth },
            _ => Target::Rookery(start()),
        }
    }

    pub fn addr(&self) -> &str {
        match self {
            Target::Rookery(server) => &server.addr,
            Target::External { addr, .. } => addr,
        }
    }

    pub fn auth(&self) -> String {
        match self {
            Target::Rookery(_) => format!("token:{SECRET}"),
            Target::External { auth, .. } => auth.clone(),
        }
    }

    pub fn is_external(&self) -> bool {
        matches!(self, Target::External { .. })
    }
}

/// The checks every fan-out scenario (`presence`, `group`: its summary section) shares: all
/// `clients` logged in without an error, the changes sent within `sent_range`, each one
/// complete, and each of its `fanout` receipts delivered exactly once. Returns the changes sent.
#[allow(dead_code)] // used by the presence and group tests only
pub fn check_fanout(
    summary: &Value,
    scenario: &str,
    clients: u64,
    sent_range: std::ops::RangeInclusive<u64>,
    fanout: u64,
) -> u64 {
    let counts = &summary["counts"];
    assert_eq!(counts["logins"], clients, "{counts}");
    assert_eq!(counts["errors_total"], 0, "{counts}");
    let (changes, receipts) = (
        &summary[scenario]["changes"],
        &summary[scenario]["receipts"],
    );
    let sent = changes["changes_sent"].as_u64().expect("changes sent");
    assert!(sent_range.contains(&sent), "{changes}");
    assert_eq!(
        changes["changes_complete"].as_u64(),
        Some(sent),
        "{changes}"
    );
    assert_eq!(receipts["sent"].as_u64(), Some(sent * fanout), "{receipts}");
    for zero in ["lost", "duplicated", "unexpected"] {
        assert_eq!(receipts[zero], 0, "{zero}: {receipts}");
    }
    sent
}

/// A `rookery-load SCENARIO` command line against `server`: `clients` clients connecting at
/// `connect_rate` a second (the flags every run here sets), then `rest`, the scenario's own.
#[allow(dead_code)] // not every test binary builds its command line here
pub fn load_args<'a>(
    scenario: &'a str,
    server: &'a str,
    clients: &'a str,
    connect_rate: &'a str,
    rest: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![scenario, "--server", server, "--clients", clients];
    args.extend_from_slice(&["--connect-rate", connect_rate]);
    args.extend_from_slice(rest);
    args
}
