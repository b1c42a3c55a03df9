//! Account changes from the server's admin endpoint (`rookery accounts --admin`), applied by
//! the user's home shard to its own store while the server runs.
//!
//! Why here: a running shard holds its log open and alone, so the stopped-server tool cannot
//! write it; the shard itself applies the change, in its turn, like any other write.
//!
//! What it does not do: derive credentials (the admin thread does, off the shard), carry the
//! request between threads or wait for the commit (the server: it answers once
//! `Store::is_committed` of the returned seq holds), or end the sessions of a deleted user.
//!
//! Invariants: a change is applied only on the user's home shard (else refused, naming the
//! mistake); `Add` never overwrites, `Passwd` and `Del` need an account.

use rookery_proto::Jid;
use rookery_sasl::Credentials;

use crate::accounts;
use crate::router::Router;

/// One change to `--auth file` accounts, or a listing.
#[derive(Debug)]
pub enum AccountCommand {
    Add {
        user: Jid,
        credentials: Credentials,
    },
    Passwd {
        user: Jid,
        credentials: Credentials,
    },
    Del {
        user: Jid,
    },
    /// The accounts homed on this shard.
    List,
}

impl Router {
    /// Applies `command` to this shard's store. `Ok((text, seq))`: done, durable once the
    /// store's committed seq reaches `seq`; `Err`: refused, with the reason.
    pub fn apply_account(&mut self, command: &AccountCommand) -> Result<(String, u64), String> {
        let user = match command {
            AccountCommand::List => {
                let mut names = String::new();
                for name in accounts::account_names(&self.home.store) {
                    names.push_str(name);
                    names.push('\n');
                }
                return Ok((names, 0));
            }
            AccountCommand::Add { user, .. }
            | AccountCommand::Passwd { user, .. }
            | AccountCommand::Del { user } => user,
        };
        if self.home.placement.home(user) != self.home.location {
            return Err(format!("{user} is not homed on this shard"));
        }
        let exists = accounts::credentials(&self.home.store, user).is_some();
        let store = &mut self.home.store;
        let verb = match command {
            AccountCommand::Add { .. } if exists => {
                return Err(format!("{user} exists (use passwd to change its password)"))
            }
            AccountCommand::Passwd { .. } | AccountCommand::Del { .. } if !exists => {
                return Err(format!("{user} has no account"))
            }
            AccountCommand::Add { credentials, .. }
            | AccountCommand::Passwd { credentials, .. } => {
                accounts::set_credentials(store, user, credentials)
                    .map_err(|err| format!("storing {user}'s account: {err:?}"))?;
                if matches!(command, AccountCommand::Add { .. }) {
                    "added"
                } else {
                    "password changed for"
                }
            }
            AccountCommand::Del { .. } => {
                accounts::delete_credentials(store, user);
                "deleted"
            }
            // Answered above.
            AccountCommand::List => return Ok((String::new(), 0)),
        };
        let shard = self.home.location.shard.0;
        Ok((
            format!("{verb} {user} (shard {shard})\n"),
            store.pending_seq(),
        ))
    }
}
