//! `rookery cluster up|down|status`: a local cluster on this host in one command, for tests,
//! demos and the million-session run: a nats-server and N rookery nodes on loopback, each with
//! its own client port, admin port and data dir, and the cluster file they share.
//!
//! Everything lives in one directory (`--dir`): `cluster.toml`, `nats.pid`/`nats.log`,
//! `node-<i>.pid`/`node-<i>.log`, `node-<i>/` (data). `up` refuses a directory whose cluster
//! still runs; `down` stops every process `up` started (SIGTERM, then SIGKILL after a grace
//! period), by the pids it recorded, and only those.
//!
//! What it does not do: manage remote hosts, or anything beyond starting and stopping (the
//! nodes are ordinary `rookery` processes: their flags after `--` are passed through).

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

/// How long `up` waits for each process to listen, and `down` for each to exit after SIGTERM.
const WAIT: Duration = Duration::from_secs(30);

#[derive(Parser, Debug)]
#[command(
    name = "rookery cluster",
    about = "Start or stop a local rookery cluster over NATS"
)]
struct ClusterArgs {
    #[command(subcommand)]
    command: Action,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Start nats-server and N nodes on loopback, write the cluster file, wait until all listen.
    Up(UpArgs),
    /// Stop every process `up` started in DIR (SIGTERM, then SIGKILL after 30 s).
    Down {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Say which of DIR's processes run.
    Status {
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Parser, Debug)]
struct UpArgs {
    /// Directory of the cluster (created): cluster file, logs, pids, data dirs.
    #[arg(long)]
    dir: PathBuf,
    /// Nodes to start.
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Shards per node.
    #[arg(long, default_value_t = 1)]
    shards: u16,
    /// Client port of node 1; node i listens on BASE + 10 * (i - 1), its admin port + 1.
    #[arg(long, default_value_t = 5222)]
    base_port: u16,
    /// nats-server's port.
    #[arg(long, default_value_t = 4222)]
    nats_port: u16,
    /// The nodes' listen address (loopback only: a local cluster).
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Flags passed to every node, after `--` (e.g. `-- --domain example.test --auth token
    /// --token-secret S`).
    #[arg(last = true)]
    node_args: Vec<String>,
}

/// Entry point of `rookery cluster ...` (`args` without the program name).
pub fn main(args: Vec<String>) -> anyhow::Result<()> {
    let parsed = ClusterArgs::parse_from(std::iter::once("rookery cluster".to_owned()).chain(args));
    match parsed.command {
        Action::Up(up) => up_cluster(&up),
        Action::Down { dir } => down_cluster(&dir),
        Action::Status { dir } => {
            print!("{}", status(&dir)?);
            Ok(())
        }
    }
}

fn up_cluster(up: &UpArgs) -> anyhow::Result<()> {
    if !up.host.is_loopback() {
        bail!(
            "--host {} is not loopback: `rookery cluster up` makes a local cluster only",
            up.host
        );
    }
    if up.nodes == 0 || up.shards == 0 {
        bail!("--nodes and --shards must be at least 1");
    }
    std::fs::create_dir_all(&up.dir).with_context(|| format!("creating {}", up.dir.display()))?;
    if running(&up.dir)?.iter().any(|(_, alive)| *alive) {
        bail!(
            "a cluster started in {} still runs: `rookery cluster down --dir {}` first",
            up.dir.display(),
            up.dir.display()
        );
    }
    let file = up.dir.join("cluster.toml");
    std::fs::write(&file, cluster_file(up)).context("writing the cluster file")?;
    let nats = spawn(
        &up.dir,
        "nats",
        Command::new("nats-server").args([
            "-a",
            &up.host.to_string(),
            "-p",
            &up.nats_port.to_string(),
        ]),
    )
    .context("starting nats-server (is it installed? apt-get install nats-server)")?;
    wait_listening(SocketAddr::new(up.host, up.nats_port), "nats-server", nats)?;
    let me = std::env::current_exe().context("finding the rookery binary")?;
    for node in 1..=up.nodes {
        let (c2s, admin) = ports(up, node);
        let data = up.dir.join(format!("node-{node}"));
        let mut command = Command::new(&me);
        command
            .arg("--cluster")
            .arg(&file)
            .args([
                "--node",
                &node.to_string(),
                "--shards",
                &up.shards.to_string(),
            ])
            .args(["--listen", &SocketAddr::new(up.host, c2s).to_string()])
            .args(["--admin", &SocketAddr::new(up.host, admin).to_string()])
            .arg("--data-dir")
            .arg(&data)
            .args(&up.node_args);
        let pid = spawn(&up.dir, &format!("node-{node}"), &mut command)?;
        wait_listening(SocketAddr::new(up.host, c2s), &format!("node {node}"), pid)?;
    }
    println!(
        "cluster up in {}: nats-server on {}:{}",
        up.dir.display(),
        up.host,
        up.nats_port
    );
    for node in 1..=up.nodes {
        let (c2s, admin) = ports(up, node);
        println!(
            "  node {node}: clients {}:{c2s}, metrics http://{}:{admin}/metrics",
            up.host, up.host
        );
    }
    println!("cluster file: {} (rookery-load --cluster reads it); stop with: rookery cluster down --dir {}", file.display(), up.dir.display());
    Ok(())
}

fn ports(up: &UpArgs, node: u16) -> (u16, u16) {
    let c2s = up.base_port + 10 * (node - 1);
    (c2s, c2s + 1)
}

fn cluster_file(up: &UpArgs) -> String {
    let mut text = format!("nats = \"nats://{}:{}\"\n", up.host, up.nats_port);
    for node in 1..=up.nodes {
        let (c2s, _) = ports(up, node);
        let _ = write!(
            text,
            "\n[[node]]\nid = {node}\nc2s = \"{}:{c2s}\"\nshards = {}\n",
            up.host, up.shards
        );
    }
    text
}

/// Starts `command` with its output in `<dir>/<name>.log` and records its pid.
fn spawn(dir: &Path, name: &str, command: &mut Command) -> anyhow::Result<u32> {
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    let child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let pid = child.id();
    std::fs::write(dir.join(format!("{name}.pid")), pid.to_string())?;
    // The child outlives this command: `down` stops it by its pid.
    std::mem::forget(child);
    Ok(pid)
}

fn wait_listening(addr: SocketAddr, what: &str, pid: u32) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if !alive(pid) {
            bail!("{what} (pid {pid}) exited before listening on {addr}: see its log");
        }
        if Instant::now() > deadline {
            bail!("{what} (pid {pid}) did not listen on {addr} within {WAIT:?}: see its log");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The processes recorded in `dir` (name, pid file) and whether each runs.
fn running(dir: &Path) -> anyhow::Result<Vec<(String, bool)>> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(found);
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".pid") else {
            continue;
        };
        let alive = read_pid(&entry.path()).is_some_and(alive);
        found.push((stem.to_owned(), alive));
    }
    found.sort();
    Ok(found)
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn alive(pid: u32) -> bool {
    // A zombie (exited, not reaped because `up` forgot its child) counts as gone.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit(") ")
        .next()
        .and_then(|rest| rest.chars().next());
    matches!(state, Some(s) if s != 'Z' && s != 'X')
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status();
}

fn down_cluster(dir: &Path) -> anyhow::Result<()> {
    let pids: Vec<(String, u32)> = running(dir)?
        .into_iter()
        .filter_map(|(name, _)| Some((name.clone(), read_pid(&dir.join(format!("{name}.pid")))?)))
        .collect();
    if pids.is_empty() {
        println!("nothing recorded in {}", dir.display());
        return Ok(());
    }
    // Nodes first, nats-server last (nodes flush to it on the way down).
    let (nats, nodes): (Vec<_>, Vec<_>) = pids.into_iter().partition(|(name, _)| name == "nats");
    for group in [nodes, nats] {
        for (_, pid) in &group {
            if alive(*pid) {
                signal(*pid, "TERM");
            }
        }
        let deadline = Instant::now() + WAIT;
        for (name, pid) in &group {
            while alive(*pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if alive(*pid) {
                eprintln!("{name} (pid {pid}) did not stop within {WAIT:?}: SIGKILL");
                signal(*pid, "KILL");
            }
            let _ = std::fs::remove_file(dir.join(format!("{name}.pid")));
            println!("stopped {name} (pid {pid})");
        }
    }
    Ok(())
}

fn status(dir: &Path) -> anyhow::Result<String> {
    let mut out = String::new();
    for (name, alive) in running(dir)? {
        let _ = writeln!(
            out,
            "{name}: {}",
            if alive { "running" } else { "not running" }
        );
    }
    if out.is_empty() {
        out = format!("nothing recorded in {}\n", dir.display());
    }
    Ok(out)
}
