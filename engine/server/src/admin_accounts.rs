//! `--auth file` accounts changed through the running server: the admin endpoint's
//! `/accounts/...` routes (what `rookery accounts --admin ADDR` calls) and the queues that
//! carry each change to the user's home shard.
//!
//! What it does: [`AccountDesk::handle`] (on an admin request thread) checks the user name,
//! derives the credentials (PBKDF2, off the shards), and pushes an [`AccountRequest`] into
//! the home shard's [`AccountInbox`] (bounded, lock-free); the shard drains it at the top of
//! its turn (`Router::apply_account`) and answers once its log committed the change
//! ([`AccountWaits`]). `list` asks every shard. The request thread waits for the answers
//! until its deadline.
//!
//! Routes: `POST /accounts/add/USER` and `POST /accounts/passwd/USER` (the password is the
//! body), `POST /accounts/del/USER`, `GET /accounts/list`. Only from loopback peers: a
//! password crosses this plain-HTTP socket, and there is no token (an admin listener on
//! another address still serves `/metrics` to anyone, and refuses these with 403).
//!
//! What it does not do: wake a sleeping shard (a request waits for its next turn: at most the
//! loop's longest wait, 100 ms), or place users on other cluster nodes (refused, naming the
//! node).
//!
//! Invariants: a shard never blocks on these queues (a full inbox refuses the request at
//! once, 503); an answer is sent at most once per request; a password is never logged.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_queue::ArrayQueue;
use rookery_proto::Jid;
use rookery_router::{AccountCommand, Placement, Router};
use rookery_sasl::{fresh_salt, Credentials, DEFAULT_ITERATIONS};

/// Requests a shard takes per turn; the rest wait for the next one.
pub const MAX_ACCOUNTS_PER_TURN: usize = 16;
/// Requests queued per shard at most.
const INBOX_CAPACITY: usize = 64;
/// Longest password accepted (bytes).
pub const MAX_PASSWORD_BYTES: usize = 1_024;

/// The answer to one request: text, or the reason it was refused.
pub type Answer = Result<String, String>;

/// One change for a shard, and where its answer goes.
#[derive(Debug)]
pub struct AccountRequest {
    pub command: AccountCommand,
    pub reply: SyncSender<Answer>,
}

/// One shard's inbound account requests.
#[derive(Debug)]
pub struct AccountInbox {
    queue: ArrayQueue<AccountRequest>,
}

impl AccountInbox {
    /// Applies at most `max` queued requests to `router` (the owning shard only); the applied
    /// ones wait in `waits` for their commit.
    pub fn drain(&self, max: usize, router: &mut Router, waits: &mut AccountWaits) {
        for _ in 0..max {
            let Some(request) = self.queue.pop() else {
                return;
            };
            match router.apply_account(&request.command) {
                Ok((text, seq)) => waits.pending.push((seq, text, request.reply)),
                Err(reason) => {
                    let _ = request.reply.send(Err(reason));
                }
            }
        }
    }
}

/// Applied requests waiting for the shard's log to commit them.
#[derive(Debug, Default)]
pub struct AccountWaits {
    pending: Vec<(u64, String, SyncSender<Answer>)>,
}

impl AccountWaits {
    /// Whether a request waits for its change to be committed.
    pub fn waiting(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Answers the requests whose changes are committed now.
    pub fn answer_committed(&mut self, router: &Router) {
        if self.pending.is_empty() {
            return;
        }
        let store = router.store();
        self.pending.retain(|(seq, text, reply)| {
            if !store.is_committed(*seq) {
                return true;
            }
            let _ = reply.send(Ok(text.clone()));
            false
        });
    }
}

/// The admin side: one inbox per shard, the placement and the domain.
#[derive(Debug)]
pub struct AccountDesk {
    inboxes: Vec<Arc<AccountInbox>>,
    placement: Placement,
    domain: Jid,
}

impl AccountDesk {
    pub fn new(placement: Placement, domain: Jid) -> AccountDesk {
        AccountDesk {
            inboxes: (0..placement.shards())
                .map(|_| {
                    Arc::new(AccountInbox {
                        queue: ArrayQueue::new(INBOX_CAPACITY),
                    })
                })
                .collect(),
            placement,
            domain,
        }
    }

    /// Shard `index`'s inbox.
    pub fn inbox(&self, index: usize) -> Arc<AccountInbox> {
        Arc::clone(&self.inboxes[index])
    }

    /// Answers `method path` with `body` before `deadline`: an HTTP status and a text.
    pub fn handle(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        deadline: Instant,
    ) -> (&'static str, String) {
        let words: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method, words.as_slice()) {
            ("GET", ["accounts", "list"]) => self.list(deadline),
            ("POST", ["accounts", action @ ("add" | "passwd" | "del"), user]) => {
                match self.change(action, user, body) {
                    Ok((shard, command)) => self.ask(shard, command, deadline),
                    Err(reason) => ("400 Bad Request", reason + "\n"),
                }
            }
            _ => (
                "404 Not Found",
                "try GET /accounts/list or POST /accounts/{add,passwd,del}/USER\n".into(),
            ),
        }
    }

    /// The command for `action` on `user`, and the user's home shard.
    fn change(
        &self,
        action: &str,
        user: &str,
        body: &[u8],
    ) -> Result<(usize, AccountCommand), String> {
        let jid = Jid::new(Some(user), self.domain.domain(), None)
            .map_err(|err| format!("user {user:?} is not a valid JID local part: {err:?}"))?;
        let home = self.placement.home(&jid);
        if home.node != self.placement.me() {
            return Err(format!(
                "{jid} lives on node {}: ask that node",
                home.node.0
            ));
        }
        let shard = usize::from(home.shard.0);
        if action == "del" {
            return Ok((shard, AccountCommand::Del { user: jid }));
        }
        let password = std::str::from_utf8(body)
            .map_err(|_| "the password (the body) is not UTF-8".to_owned())?
            .trim_end_matches(['\n', '\r']);
        if password.is_empty() || password.len() > MAX_PASSWORD_BYTES {
            return Err(format!(
                "the password (the body) must be 1 to {MAX_PASSWORD_BYTES} bytes"
            ));
        }
        let salt = |_| fresh_salt().map_err(|err| format!("drawing a salt: {err}"));
        let (sha1_salt, sha256_salt) = (salt(1)?, salt(2)?);
        let credentials =
            Credentials::derive(password, DEFAULT_ITERATIONS, &sha1_salt, &sha256_salt)
                .map_err(|err| format!("deriving credentials: {err}"))?;
        let command = if action == "add" {
            AccountCommand::Add {
                user: jid,
                credentials,
            }
        } else {
            AccountCommand::Passwd {
                user: jid,
                credentials,
            }
        };
        Ok((shard, command))
    }

    fn submit(&self, shard: usize, command: AccountCommand) -> Option<Receiver<Answer>> {
        let (reply, answer) = sync_channel(1);
        let request = AccountRequest { command, reply };
        self.inboxes[shard].queue.push(request).ok()?;
        Some(answer)
    }

    fn ask(
        &self,
        shard: usize,
        command: AccountCommand,
        deadline: Instant,
    ) -> (&'static str, String) {
        let Some(answer) = self.submit(shard, command) else {
            return (
                "503 Service Unavailable",
                "the shard's queue is full\n".into(),
            );
        };
        match wait(&answer, deadline) {
            Some(Ok(text)) => ("200 OK", text),
            Some(Err(reason)) => ("409 Conflict", reason + "\n"),
            None => (
                "504 Gateway Timeout",
                "no answer from the shard in time\n".into(),
            ),
        }
    }

    fn list(&self, deadline: Instant) -> (&'static str, String) {
        let answers: Vec<_> = (0..self.inboxes.len())
            .map(|shard| self.submit(shard, AccountCommand::List))
            .collect();
        let mut names = String::new();
        for answer in answers {
            match answer.as_ref().and_then(|a| wait(a, deadline)) {
                Some(Ok(text)) => names.push_str(&text),
                _ => {
                    return (
                        "504 Gateway Timeout",
                        "a shard did not answer in time\n".into(),
                    )
                }
            }
        }
        ("200 OK", names)
    }
}

fn wait(answer: &Receiver<Answer>, deadline: Instant) -> Option<Answer> {
    let left = deadline.saturating_duration_since(Instant::now());
    answer.recv_timeout(left).ok()
}
