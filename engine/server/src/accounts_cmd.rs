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
//! `add-many --prefix P --count N` creates P1..PN at once for load tests, with the passwords
//! rookery-load derives (`--auth` of rookery-load, given on stdin: `token:SECRET` or
//! `plain:PREFIX`), SCRAM credentials derived on every core, all records of a shard in one
//! batch with one fsync. The cost is PBKDF2 (4096 rounds, SHA-1 and SHA-256, per user).
//!
//! What it does not do: talk to a running server (each shard's log is locked while it runs:
//! stop it first), or check password strength.

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
    about = "Manage --auth file accounts in a stopped server's data dir (password on stdin)"
)]
struct AccountsArgs {
    /// The server's data dir.
    #[arg(long, default_value = "./rookery-data")]
    data_dir: PathBuf,
    /// The served domain (accounts are user@domain).
    #[arg(long)]
    domain: String,
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
    /// Create PREFIX1..PREFIXN for load tests, passwords as rookery-load derives them: one
    /// line on standard input, rookery-load's --auth (token:SECRET or plain:PREFIX). Users
    /// that exist, or live on another cluster node, are skipped (and counted).
    AddMany {
        #[arg(long, default_value = "user")]
        prefix: String,
        #[arg(long)]
        count: u64,
    },
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
    let domain = Jid::new(None, &args.domain.to_ascii_lowercase(), None)
        .map_err(|err| anyhow::anyhow!("--domain {}: {err:?}", args.domain))?;
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
        Action::AddMany { prefix, count } => {
            let passwords = PasswordSpec::parse(&read_password()?)?;
            add_many(
                &args, &domain, &placement, shards, prefix, *count, &passwords,
            )
        }
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

/// Most accounts one `add-many` makes (their records wait in memory for the commit: about
/// 300 B each).
const MAX_ADD_MANY: u64 = 10_000_000;

/// How `add-many` derives user n's password: rookery-load's `--auth` schemes.
enum PasswordSpec {
    /// `token:SECRET`: lowercase hex HMAC-SHA256(SECRET, localpart) (the token backend's).
    Token(String),
    /// `plain:PREFIX`: PREFIX followed by n.
    Plain(String),
}

impl PasswordSpec {
    fn parse(line: &str) -> anyhow::Result<PasswordSpec> {
        if let Some(secret) = line.strip_prefix("token:").filter(|s| !s.is_empty()) {
            return Ok(PasswordSpec::Token(secret.to_owned()));
        }
        if let Some(prefix) = line.strip_prefix("plain:") {
            return Ok(PasswordSpec::Plain(prefix.to_owned()));
        }
        bail!(
            "add-many reads rookery-load's --auth on standard input: token:SECRET or plain:PREFIX"
        )
    }

    fn password(&self, localpart: &str, number: u64) -> String {
        match self {
            PasswordSpec::Token(secret) => {
                rookery_sasl::token_password(secret.as_bytes(), localpart)
            }
            PasswordSpec::Plain(prefix) => format!("{prefix}{number}"),
        }
    }
}

/// `add-many`: derives every new user's credentials on all cores, then writes each shard's
/// records in one batch (one fsync per shard).
fn add_many(
    args: &AccountsArgs,
    domain: &Jid,
    placement: &Placement,
    shards: u16,
    prefix: &str,
    count: u64,
    passwords: &PasswordSpec,
) -> anyhow::Result<()> {
    if count == 0 || count > MAX_ADD_MANY {
        bail!("--count must be between 1 and {MAX_ADD_MANY}");
    }
    let started = std::time::Instant::now();
    let mut stores = (0..shards)
        .map(|shard| open(&args.data_dir, shard))
        .collect::<anyhow::Result<Vec<Store>>>()?;
    // Who to create: (number, jid, shard), minus existing users and other nodes' users.
    let (mut existing, mut elsewhere) = (0u64, 0u64);
    let mut todo = Vec::new();
    for number in 1..=count {
        let localpart = format!("{prefix}{number}").to_lowercase();
        let jid = Jid::new(Some(&localpart), domain.domain(), None).map_err(|err| {
            anyhow::anyhow!("user {localpart:?} is not a valid JID local part: {err:?}")
        })?;
        let home = placement.home(&jid);
        if home.node != placement.me() {
            elsewhere += 1;
        } else if accounts::credentials(&stores[usize::from(home.shard.0)], &jid).is_some() {
            existing += 1;
        } else {
            todo.push((number, jid, home.shard.0));
        }
    }
    let derived = derive_all(&todo, passwords, args.iterations)?;
    let derive_s = started.elapsed().as_secs_f64();
    for ((_, jid, shard), credentials) in todo.iter().zip(&derived) {
        accounts::set_credentials(&mut stores[usize::from(*shard)], jid, credentials)
            .with_context(|| format!("storing {jid}'s account"))?;
    }
    for (shard, store) in stores.iter_mut().enumerate() {
        store
            .commit(&mut SyncWriter)
            .with_context(|| format!("writing the log of shard {shard}"))?;
    }
    let total_s = started.elapsed().as_secs_f64();
    eprintln!(
        "added {} accounts {prefix}1..{prefix}{count}@{} in {total_s:.1} s ({:.0}/s; deriving \
         {derive_s:.1} s at {} PBKDF2 rounds x2 on {} threads); skipped {existing} existing, \
         {elsewhere} homed on other nodes",
        todo.len(),
        domain.domain(),
        todo.len() as f64 / total_s.max(1e-9),
        args.iterations,
        derive_threads(todo.len()),
    );
    Ok(())
}

fn derive_threads(jobs: usize) -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.max(1))
}

/// Credentials of each `(number, jid, _)` in order, derived on every core.
fn derive_all(
    todo: &[(u64, Jid, u16)],
    passwords: &PasswordSpec,
    iterations: u32,
) -> anyhow::Result<Vec<Credentials>> {
    let threads = derive_threads(todo.len());
    let chunk = todo.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = todo
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|(number, jid, _)| {
                            let localpart = jid.local().unwrap_or_default();
                            let password = passwords.password(localpart, *number);
                            Credentials::derive(
                                &password,
                                iterations,
                                &fresh_salt()?,
                                &fresh_salt()?,
                            )
                            .map_err(|err| anyhow::anyhow!("deriving {jid}'s credentials: {err}"))
                        })
                        .collect::<anyhow::Result<Vec<Credentials>>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(todo.len());
        for handle in handles {
            match handle.join() {
                Ok(part) => all.extend(part?),
                Err(_) => bail!("a credentials thread panicked"),
            }
        }
        Ok(all)
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_many_derives_passwords_as_rookery_load_does() {
        let token = PasswordSpec::parse("token:s3cret").unwrap();
        assert_eq!(
            token.password("user7", 7),
            rookery_sasl::token_password(b"s3cret", "user7")
        );
        let plain = PasswordSpec::parse("plain:pw-").unwrap();
        assert_eq!(plain.password("user7", 7), "pw-7");
        for bad in ["token:", "s3cret", "scram:x", ""] {
            let err = PasswordSpec::parse(bad).err().expect(bad).to_string();
            assert!(err.contains("token:SECRET or plain:PREFIX"), "{err}");
        }
    }
}
