//! `rookery-load demo`: the README's one command. Starts the `rookery` binary built next to
//! this one on 127.0.0.1 (a free port, a random token secret), runs `chat` against it, stops
//! it (SIGTERM, then SIGKILL after [`STOP_GRACE`]), and keeps its log in the results folder.
//!
//! The server is always stopped, also when the run fails: [`Server`] stops it on drop. Its
//! durable log goes to a fresh temporary `--data-dir`, removed once it stopped, so demos do
//! not share stored messages or the directory's lock (two at once would otherwise collide).
//! What it does not do: build the server (it says how when the binary is missing).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tracing::{info, warn};

use crate::auth::AuthSpec;
use crate::cli::{DemoArgs, RunConfig, Scenario, DEMO_DEFAULTS};
use crate::env::Environment;
use crate::{output, run};

const DOMAIN: &str = "example.test";
const READY_MARKER: &str = "ready: listening on ";
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Server log lines kept in memory (the oldest are dropped beyond it).
const MAX_LOG_LINES: usize = 10_000;

/// Runs the demo; returns the gate violations (empty: passed).
pub fn demo(args: &DemoArgs) -> anyhow::Result<Vec<String>> {
    let binary = server_binary()?;
    let secret = format!(
        "{:016x}{:016x}",
        crate::cli::random_seed(),
        crate::cli::random_seed()
    );
    let mut server = Server::start(&binary, &secret, args.load.backend)?;
    info!(
        "started {} (pid {}) on {}",
        binary.display(),
        server.child.id(),
        server.addr
    );
    let auth = AuthSpec::Token { secret };
    let cfg = RunConfig::resolve(
        Scenario::Chat,
        &server.addr,
        DOMAIN,
        auth,
        &args.load,
        &DEMO_DEFAULTS,
    )?;
    let result = run::execute(&cfg);
    server.stop();
    let result = result?;
    let dir = output::write_results(&cfg, &result, &Environment::detect())?;
    let log = server
        .log
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .join("\n");
    std::fs::write(dir.join("server.log"), log + "\n").context("writing server.log")?;
    print!("{}", output::report_text(&cfg, &result, Some(&dir)));
    Ok(output::violations(&cfg, &result))
}

/// `rookery` in the folder of the running executable (target/<profile>/ under cargo).
fn server_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("finding the rookery-load executable")?;
    let dir = exe
        .parent()
        .context("the rookery-load executable has no parent folder")?;
    let binary = dir.join(format!("rookery{}", std::env::consts::EXE_SUFFIX));
    if !binary.is_file() {
        bail!(
            "{} not found: the demo runs the server built next to rookery-load. Build it first \
             with `cargo build --release` (then `cargo run --release --bin rookery-load -- demo`)",
            binary.display()
        );
    }
    Ok(binary)
}

/// A running `rookery` child process; stopped on drop.
struct Server {
    child: Child,
    data_dir: PathBuf,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
    stopped: bool,
}

impl Server {
    fn start(
        binary: &PathBuf,
        secret: &str,
        backend: crate::cli::BackendArg,
    ) -> anyhow::Result<Server> {
        let backend = format!("{backend:?}").to_lowercase();
        let data_dir = std::env::temp_dir().join(format!(
            "rookery-demo-{}-{}",
            std::process::id(),
            crate::sys::monotonic_ns()
        ));
        let mut child = Command::new(binary)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--domain",
                DOMAIN,
                "--auth",
                "token",
                "--admin",
                "off",
            ])
            .args(["--backend", &backend])
            .arg("--data-dir")
            .arg(&data_dir)
            // Through the environment, not argv, so the secret does not show in `ps`.
            .env("ROOKERY_TOKEN_SECRET", secret)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stderr = child
            .stderr
            .take()
            .context("server stderr was not captured")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::Builder::new()
            .name("rookery-log".into())
            .spawn(move || collect_log(BufReader::new(stderr), &sink, &ready_tx))
            .context("starting the server log reader")?;
        let mut server = Server {
            child,
            data_dir,
            addr: String::new(),
            log,
            stopped: false,
        };
        server.addr = server.wait_ready(&ready_rx)?;
        Ok(server)
    }

    fn wait_ready(&mut self, ready_rx: &mpsc::Receiver<String>) -> anyhow::Result<String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match ready_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(addr) => return Ok(addr),
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(_) => {
                    let tail = self.log_tail(20);
                    let status = self.child.try_wait().ok().flatten();
                    bail!(
                        "the server did not log its ready line within {} s (exit status: {status:?}); \
                         its last log lines:\n{tail}",
                        READY_TIMEOUT.as_secs()
                    );
                }
            }
        }
    }

    fn log_tail(&self, lines: usize) -> String {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log[log.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM, then SIGKILL if it has not exited within STOP_GRACE.
    fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        if let Err(err) = crate::sys::terminate(self.child.id()) {
            warn!("SIGTERM to the server failed: {err}");
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        warn!(
            "the server did not stop within {} s of SIGTERM: killing it",
            STOP_GRACE.as_secs()
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        // Gone already if the server never created it.
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Keeps the server's stderr lines; sends the address from the ready line once.
fn collect_log(reader: impl BufRead, log: &Mutex<Vec<String>>, ready_tx: &mpsc::Sender<String>) {
    for line in reader.lines() {
        let Ok(line) = line else { return };
        let line = strip_ansi(&line);
        if let Some(addr) = ready_address(&line) {
            let _ = ready_tx.send(addr);
        }
        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() >= MAX_LOG_LINES {
            log.remove(0);
        }
        log.push(line);
    }
}

/// The address in `... ready: listening on 127.0.0.1:40123 for domain ...`.
fn ready_address(line: &str) -> Option<String> {
    let rest = &line[line.find(READY_MARKER)? + READY_MARKER.len()..];
    let addr = rest.split_whitespace().next()?;
    addr.parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| a.to_string())
}

/// Removes terminal colour sequences (ESC [ ... letter) a logger may emit.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_ready_address() {
        let line = "2025-01-01T00:00:00Z  INFO rookery: ready: listening on 127.0.0.1:40123 for domain example.test (2 shards)";
        assert_eq!(ready_address(line).as_deref(), Some("127.0.0.1:40123"));
        let colored =
            "\u{1b}[2m2025\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m ready: listening on [::1]:5222 x";
        assert_eq!(
            ready_address(&strip_ansi(colored)).as_deref(),
            Some("[::1]:5222")
        );
        assert_eq!(ready_address("INFO starting"), None);
        assert_eq!(ready_address("ready: listening on nowhere"), None);
    }

    #[test]
    fn log_collector_keeps_lines_and_signals_ready() {
        let text = "one\nready: listening on 127.0.0.1:9 for domain d\nthree\n";
        let log = Mutex::new(Vec::new());
        let (tx, rx) = mpsc::channel();
        collect_log(text.as_bytes(), &log, &tx);
        assert_eq!(rx.try_recv().as_deref(), Ok("127.0.0.1:9"));
        assert_eq!(log.lock().unwrap().len(), 3);
    }
}
