//! `rookery accounts`: create, change, delete and list the accounts of `--auth file` in a
//! stopped server's data dir.
//!
//! An account is the user's SCRAM credentials (SHA-1 and SHA-256: a fresh 16-byte salt each,
//! `--iterations` PBKDF2 rounds, StoredKey and ServerKey; never the password), kept in the
//! user's home-shard log like the rest of the user's data (rookery_router::accounts), so
//! accounts scale with users and survive a crash. The password is read from standard input
//! (one line), so it stays out of the process list and shell history.
//!
//! On a cluster node's data dir, `--cluster FILE --node ID` places users by the file's vshard
//! table, and a user homed on another node is refused with that node's id.
//!
//! With `--admin ADDR` it asks a running server instead (its admin endpoint's `/accounts`
//! routes, loopback only: see `rookery::admin_accounts`), which applies the change on the
//! user's home shard and answers once it is committed; `--domain` is then the server's.
//!
//! What it does not do: open a running server's data dir (each shard's log is locked while
//! it runs: use `--admin`), or check password strength.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use rookery::cluster::router_cluster;
use rookery_cluster::ClusterFile;
use rookery_proto::Jid;
use rookery_router::accounts;
use rookery_router::{NodeId, Placement};
use rookery_sasl::{fresh_salt, Credentials, DEFAULT_ITERATIONS};
use rookery_store::{Durability, Store, StoreConfig, SyncWriter};

use crate::data_dir::{check_layout, read_layout};

#[derive(Parser, Debug)]
#[command(
    name = "rookery accounts",
    about = "Manage --auth file accounts in a stopped server's data dir, or a running one's with \
             --admin (password on stdin)"
)]
struct AccountsArgs {
    /// Ask the running server whose admin endpoint (--admin) listens here, e.g.
    /// 127.0.0.1:9090, instead of opening a data dir.
    #[arg(long)]
    admin: Option<std::net::SocketAddr>,
    /// The server's data dir.
    #[arg(long, default_value = "./rookery-data")]
    data_dir: PathBuf,
    /// The served domain (accounts are user@domain); not needed with --admin.
    #[arg(long, required_unless_present = "admin")]
    domain: Option<String>,
    /// Shard count of the server that will use this data dir, needed only before its first
    /// start (afterwards the data dir remembers it and a different value is refused).
    #[arg(long)]
    shards: Option<u16>,
    /// For a cluster node's data dir: the cluster file and the node's id (users are placed by
    /// the file's vshard table; a user homed on another node is refused, naming it).
    #[arg(long, requires = "node")]
    cluster: Option<PathBuf>,
    #[arg(long, requires = "cluster")]
    node: Option<u16>,
    /// PBKDF2 rounds for new credentials (RFC 7677's minimum is 4096).
    #[arg(long, default_value_t = DEFAULT_ITERATIONS)]
    iterations: u32,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Create USER (the password is read from standard input).
    Add { user: String },
    /// Change USER's password (read from standard input).
    Passwd { user: String },
    /// Delete USER.
    Del { user: String },
    /// List every account.
    List,
}

/// Runs `rookery accounts` with `args` (the words after `accounts`).
pub fn main(args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let args = AccountsArgs::parse_from(std::iter::once("rookery accounts".to_owned()).chain(args));
    if args.iterations < DEFAULT_ITERATIONS {
        bail!(
            "--iterations {} is below RFC 7677's minimum of {DEFAULT_ITERATIONS}",
            args.iterations
        );
    }
    if let Some(admin) = args.admin {
        return through_admin(admin, &args.action);
    }
    let domain = args.domain.clone().unwrap_or_default();
    let domain = Jid::new(None, &domain.to_ascii_lowercase(), None)
        .map_err(|err| anyhow::anyhow!("--domain {domain}: {err:?}"))?;
    let shards = match (read_layout(&args.data_dir), args.shards) {
        (Ok(shards), _) | (Err(_), Some(shards)) => {
            check_layout(&args.data_dir, usize::from(shards))?;
            shards
        }
        (Err(err), None) => {
            return Err(err.context("a new data dir: give the server's --shards N"));
        }
    };
    let placement = match (&args.cluster, args.node) {
        (Some(path), Some(id)) => {
            let file = ClusterFile::load(path)?;
            let me = rookery_cluster::NodeId(id);
            let Some(node) = file.node(me) else {
                bail!("--node {id} is not in the cluster file {}", path.display());
            };
            if node.shards != shards {
                bail!(
                    "{} was written for {shards} shards, node {id} has {} in {}",
                    args.data_dir.display(),
                    node.shards,
                    path.display()
                );
            }
            router_cluster(&file, NodeId(id)).placement
        }
        _ => Placement::local(shards),
    };
    match &args.action {
        Action::List => {
            for shard in 0..shards {
                let store = open(&args.data_dir, shard)?;
                for name in accounts::account_names(&store) {
                    println!("{name}");
                }
            }
            Ok(())
        }
        Action::Add { user } | Action::Passwd { user } | Action::Del { user } => {
            let jid = Jid::new(Some(user), domain.domain(), None).map_err(|err| {
                anyhow::anyhow!("user {user:?} is not a valid JID local part: {err:?}")
            })?;
            let home = placement.home(&jid);
            if home.node != placement.me() {
                bail!(
                    "{jid} lives on node {}: run this against that node's data dir",
                    home.node.0
                );
            }
            let shard = home.shard.0;
            let mut store = open(&args.data_dir, shard)?;
            let exists = accounts::credentials(&store, &jid).is_some();
            match &args.action {
                Action::Add { .. } if exists => {
                    bail!("{jid} exists (use passwd to change its password)")
                }
                Action::Passwd { .. } | Action::Del { .. } if !exists => {
                    bail!("{jid} has no account")
                }
                Action::Del { .. } => {
                    accounts::delete_credentials(&mut store, &jid);
                }
                _ => {
                    let password = read_password()?;
                    let credentials = Credentials::derive(
                        &password,
                        args.iterations,
                        &fresh_salt()?,
                        &fresh_salt()?,
                    )
                    .map_err(|err| anyhow::anyhow!("deriving credentials: {err}"))?;
                    accounts::set_credentials(&mut store, &jid, &credentials)
                        .with_context(|| format!("storing {jid}'s account"))?;
                }
            }
            store
                .commit(&mut SyncWriter)
                .with_context(|| format!("writing the log of shard {shard}"))?;
            let verb = match args.action {
                Action::Add { .. } => "added",
                Action::Passwd { .. } => "password changed for",
                _ => "deleted",
            };
            eprintln!("{verb} {jid} (shard {shard})");
            Ok(())
        }
    }
}

/// Sends `action` to the running server's admin endpoint at `admin` and prints its answer.
fn through_admin(admin: std::net::SocketAddr, action: &Action) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    if let Action::Add { user } | Action::Passwd { user } | Action::Del { user } = action {
        // The name travels in the request line: nothing that would end or split it.
        if user.contains(['/', ' ', '?', '#', '%', '\r', '\n']) {
            bail!("user {user:?} is not a valid JID local part here");
        }
    }
    let (method, path, body) = match action {
        Action::List => ("GET", "/accounts/list".to_owned(), String::new()),
        Action::Add { user } => ("POST", format!("/accounts/add/{user}"), read_password()?),
        Action::Passwd { user } => ("POST", format!("/accounts/passwd/{user}"), read_password()?),
        Action::Del { user } => ("POST", format!("/accounts/del/{user}"), String::new()),
    };
    let mut stream = std::net::TcpStream::connect(admin)
        .with_context(|| format!("connecting to the admin endpoint {admin} (is --admin set?)"))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(15)))?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {admin}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .with_context(|| format!("reading the answer of {admin}"))?;
    let (head, text) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        bail!("{admin} answered {status}: {}", text.trim_end());
    }
    match action {
        Action::List => print!("{text}"),
        _ => eprint!("{text}"),
    }
    Ok(())
}

/// Opens shard `shard`'s log (fsync durability: an account written here survives power loss).
fn open(data_dir: &Path, shard: u16) -> anyhow::Result<Store> {
    let config = StoreConfig {
        durability: Durability::Fsync,
        ..StoreConfig::new(data_dir, shard)
    };
    Store::open(config).with_context(|| {
        format!(
            "opening the log of shard {shard} under {} (is the server still running? stop it first)",
            data_dir.display()
        )
    })
}

/// One line of standard input, without its line ending; refused if empty.
fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        bail!("empty password (give it on standard input: echo 'secret' | rookery accounts ...)");
    }
    Ok(password)
}
