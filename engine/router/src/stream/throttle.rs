//! Failed authentications slowed per source address and per account: the budgets of one
//! shard, and the conns whose failure answer waits.
//!
//! What it does: counts each SASL failure in a fixed window against the conn's source
//! address (`--auth-fail-per-address` per minute) and against the account the login named
//! (`--auth-fail-per-account` per ten minutes), and says what the answer is (`Verdict`):
//! within the budget at once; past it, after `RouterConfig::auth_fail_delay_ms`, during
//! which nothing more is read from the conn (its bytes are held here); past twice the budget
//! (the hard budget), `not-authorized` and a closed stream. A login whose address or account
//! is past the hard budget already is refused the same way before its credentials are
//! looked at (`refused`), so a throttled client learns nothing about the password by timing
//! a success against a delayed failure: it gets at most the hard budget of guesses per window.
//!
//! What it does not do: count across shards. Each shard keeps its own tables, so an address
//! spreading its conns over the shards gets shards x the per-address budget; an account's
//! failures are counted where its credentials are checked (its home shard, for `--auth file`,
//! since logins are handed there), so that budget holds per node. Nor does it send anything
//! or touch timers of conns (the router answers what `take_due` returns).
//!
//! Invariants:
//! - each table holds at most `max_entries` keys; a new key past that evicts the oldest
//!   window (counted in `evictions`). Its queue is in window-start order and holds exactly
//!   its live keys once `expire` ran: every key's window renews only after it expired, so a
//!   superseded queue entry is always in the expired prefix, which each insert drains.
//! - all delays have the same length, so `due` is in deadline order (a FIFO, never a scan);
//!   an entry whose conn went away (slot reused: another generation) is skipped.
//! - `delayed` holds at most one entry per conn, with at most `max_held` bytes held.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;

use crate::maps::{HashState, Map};
use crate::timers::TimerEntry;

/// The per-address window.
pub const ADDRESS_WINDOW_MS: u64 = 60_000;
/// The per-account window.
pub const ACCOUNT_WINDOW_MS: u64 = 600_000;
/// The hard budget, as a multiple of the (soft) budget: past it, refused and closed.
pub const HARD_FACTOR: u32 = 2;

/// What to do with a failure answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the budget: answer now.
    Answer,
    /// Past the budget: answer after the delay, reading nothing from the conn until then.
    Delay,
    /// Past the hard budget: `not-authorized`, then the stream is closed.
    Refuse,
}

/// Failures in one fixed window, per key, oldest out past `max_entries`.
#[derive(Debug)]
struct Windows<K> {
    counts: Map<K, Window>,
    /// Keys by window start (oldest first), with the start they were queued with.
    order: VecDeque<(K, u64)>,
    window_ms: u64,
    max_entries: usize,
}

#[derive(Clone, Copy, Debug)]
struct Window {
    start_ms: u64,
    failures: u32,
}

impl<K: Copy + Eq + Hash> Windows<K> {
    fn new(hash: HashState, window_ms: u64, max_entries: usize) -> Windows<K> {
        Windows {
            counts: hash.map(),
            order: VecDeque::new(),
            window_ms,
            max_entries,
        }
    }

    /// Failures of `key` in its current window.
    fn failures(&self, key: K, now_ms: u64) -> u32 {
        self.counts
            .get(&key)
            .filter(|w| now_ms < w.start_ms.saturating_add(self.window_ms))
            .map_or(0, |w| w.failures)
    }

    /// Counts one failure of `key`; returns its failures in the window (this one included)
    /// and whether an older key was evicted to make room.
    fn add(&mut self, key: K, now_ms: u64) -> (u32, bool) {
        self.expire(now_ms);
        if let Some(window) = self.counts.get_mut(&key) {
            // `expire` dropped it if its window was over: this one is current.
            window.failures = window.failures.saturating_add(1);
            return (window.failures, false);
        }
        let mut evicted = false;
        while self.counts.len() >= self.max_entries.max(1) {
            let Some((old, start_ms)) = self.order.pop_front() else {
                break;
            };
            if self
                .counts
                .get(&old)
                .is_some_and(|w| w.start_ms == start_ms)
            {
                self.counts.remove(&old);
                evicted = true;
            }
        }
        self.counts.insert(
            key,
            Window {
                start_ms: now_ms,
                failures: 1,
            },
        );
        self.order.push_back((key, now_ms));
        (1, evicted)
    }

    /// Drops the windows that are over (a prefix of `order`).
    fn expire(&mut self, now_ms: u64) {
        while let Some(&(key, start_ms)) = self.order.front() {
            if now_ms < start_ms.saturating_add(self.window_ms) {
                return;
            }
            self.order.pop_front();
            if self
                .counts
                .get(&key)
                .is_some_and(|w| w.start_ms == start_ms)
            {
                self.counts.remove(&key);
            }
        }
    }

    fn len(&self) -> usize {
        self.counts.len()
    }

    fn heap_bytes(&self) -> usize {
        self.counts.capacity() * (std::mem::size_of::<(K, Window)>() + 1)
            + self.order.capacity() * std::mem::size_of::<(K, u64)>()
    }
}

/// The budgets of the throttle (from `RouterConfig`); 0 turns that budget off.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budgets {
    pub per_address: u32,
    pub per_account: u32,
    pub delay_ms: u64,
    pub max_entries: usize,
    /// Most bytes held from a conn while its answer waits (a stanza's worth).
    pub max_held: usize,
}

impl Budgets {
    pub fn of(config: &crate::config::RouterConfig) -> Budgets {
        Budgets {
            per_address: config.auth_fail_per_address,
            per_account: config.auth_fail_per_account,
            delay_ms: config.auth_fail_delay_ms,
            max_entries: config.auth_throttle_entries,
            max_held: config.max_stanza_bytes,
        }
    }
}

/// A failure answer that waits.
#[derive(Debug)]
pub(crate) struct Delayed {
    /// The RFC 6120 condition to answer with.
    pub condition: &'static str,
    /// Close the stream after the answer (the conn used up its own attempts).
    pub close: bool,
    /// Bytes that arrived meanwhile, parsed once the answer went out.
    pub held: Vec<u8>,
}

/// The throttle of one shard (see the module docs).
#[derive(Debug)]
pub(crate) struct Throttle {
    budgets: Budgets,
    addresses: Windows<IpAddr>,
    /// Keyed hashes of bare JIDs: 8 bytes a key however long the name.
    accounts: Windows<u64>,
    hash: HashState,
    /// The account each conn's current login named, by slot (from the credentials request).
    claimed: Map<u32, u64>,
    /// Waiting answers by slot, with the generation of the conn they are for.
    delayed: Map<u32, (u32, Delayed)>,
    due: VecDeque<(u64, TimerEntry)>,
    /// Keys evicted to keep the tables bounded (for the metric).
    pub evictions: u64,
}

impl Throttle {
    pub fn new(budgets: Budgets, hash: HashState) -> Throttle {
        Throttle {
            budgets,
            addresses: Windows::new(hash, ADDRESS_WINDOW_MS, budgets.max_entries),
            accounts: Windows::new(hash, ACCOUNT_WINDOW_MS, budgets.max_entries),
            hash,
            claimed: hash.map(),
            delayed: hash.map(),
            due: VecDeque::new(),
            evictions: 0,
        }
    }

    /// The key of the account `bare` (a bare JID, normalized).
    pub fn account_key(&self, bare: &str) -> u64 {
        self.hash.hash_one(bare)
    }

    /// The login on `slot` names account `key` (its failures count against it).
    pub fn claim(&mut self, slot: u32, key: u64) {
        self.claimed.insert(slot, key);
    }

    /// Whether a login from `address` (or for account `account`) is refused unchecked: its
    /// failures in the window are past the hard budget.
    pub fn refused(&self, now_ms: u64, address: Option<IpAddr>, account: Option<u64>) -> bool {
        let over = |failures: u32, budget: u32| {
            budget > 0 && failures >= budget.saturating_mul(HARD_FACTOR)
        };
        address.is_some_and(|a| over(self.addresses.failures(a, now_ms), self.budgets.per_address))
            || account
                .is_some_and(|a| over(self.accounts.failures(a, now_ms), self.budgets.per_account))
    }

    /// Counts a failure of the login on `slot` (from `address`, for the account it claimed)
    /// and says how to answer it.
    pub fn failed(&mut self, slot: u32, address: Option<IpAddr>, now_ms: u64) -> Verdict {
        let mut verdict = Verdict::Answer;
        let mut judge = |failures: u32, budget: u32| {
            if budget == 0 {
                return;
            }
            let this = if failures > budget.saturating_mul(HARD_FACTOR) {
                Verdict::Refuse
            } else if failures > budget {
                Verdict::Delay
            } else {
                Verdict::Answer
            };
            verdict = worse(verdict, this);
        };
        if let (Some(address), true) = (address, self.budgets.per_address > 0) {
            let (failures, evicted) = self.addresses.add(address, now_ms);
            self.evictions += u64::from(evicted);
            judge(failures, self.budgets.per_address);
        }
        if let (Some(&account), true) = (self.claimed.get(&slot), self.budgets.per_account > 0) {
            let (failures, evicted) = self.accounts.add(account, now_ms);
            self.evictions += u64::from(evicted);
            judge(failures, self.budgets.per_account);
        }
        self.claimed.remove(&slot);
        verdict
    }

    /// Counts an attempt that costs the shard whatever its outcome (an XEP-0077
    /// registration) against `address`, and says how to answer it.
    pub fn attempted(&mut self, address: Option<IpAddr>, now_ms: u64) -> Verdict {
        let budget = self.budgets.per_address;
        let Some(address) = address.filter(|_| budget > 0) else {
            return Verdict::Answer;
        };
        let (failures, evicted) = self.addresses.add(address, now_ms);
        self.evictions += u64::from(evicted);
        if failures > budget.saturating_mul(HARD_FACTOR) {
            Verdict::Refuse
        } else if failures > budget {
            Verdict::Delay
        } else {
            Verdict::Answer
        }
    }

    /// The failure answer of the conn `entry` waits until `now_ms` + the delay.
    pub fn delay(&mut self, entry: TimerEntry, now_ms: u64, delayed: Delayed) {
        self.delayed.insert(entry.slot, (entry.generation, delayed));
        self.due
            .push_back((now_ms.saturating_add(self.budgets.delay_ms), entry));
    }

    /// Whether the conn in `slot` waits for its failure answer.
    pub fn is_delayed(&self, slot: u32) -> bool {
        self.delayed.contains_key(&slot)
    }

    /// Holds bytes of a waiting conn; false (nothing held) past the limit.
    pub fn hold(&mut self, slot: u32, bytes: &[u8]) -> bool {
        let Some((_, delayed)) = self.delayed.get_mut(&slot) else {
            return false;
        };
        if delayed.held.len() + bytes.len() > self.budgets.max_held {
            return false;
        }
        delayed.held.extend_from_slice(bytes);
        true
    }

    /// The next waiting answer due by `now_ms`: its conn and its answer (none when that conn
    /// went away; the router still checks the conn is there).
    pub fn take_due(&mut self, now_ms: u64) -> Option<(TimerEntry, Option<Delayed>)> {
        let &(due_ms, entry) = self.due.front()?;
        if due_ms > now_ms {
            return None;
        }
        self.due.pop_front();
        let current = self
            .delayed
            .get(&entry.slot)
            .map(|&(generation, _)| generation);
        let answer = if current == Some(entry.generation) {
            self.delayed.remove(&entry.slot).map(|(_, delayed)| delayed)
        } else {
            None
        };
        Some((entry, answer))
    }

    /// When the first waiting answer is due.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.due.front().map(|&(due_ms, _)| due_ms)
    }

    /// The conn in `slot` went away, authenticated or moved: drop what it had here.
    pub fn forget(&mut self, slot: u32) {
        self.claimed.remove(&slot);
        self.delayed.remove(&slot);
    }

    /// Keys in both tables (bounded by 2 x `max_entries`).
    pub fn entries(&self) -> usize {
        self.addresses.len() + self.accounts.len()
    }

    pub fn heap_bytes(&self) -> usize {
        let held: usize = self.delayed.values().map(|(_, d)| d.held.capacity()).sum();
        self.addresses.heap_bytes()
            + self.accounts.heap_bytes()
            + self.claimed.capacity() * (std::mem::size_of::<(u32, u64)>() + 1)
            + self.delayed.capacity() * (std::mem::size_of::<(u32, (u32, Delayed))>() + 1)
            + held
            + self.due.capacity() * std::mem::size_of::<(u64, TimerEntry)>()
    }
}

fn worse(a: Verdict, b: Verdict) -> Verdict {
    let rank = |v| match v {
        Verdict::Answer => 0,
        Verdict::Delay => 1,
        Verdict::Refuse => 2,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budgets(per_address: u32, per_account: u32, max_entries: usize) -> Budgets {
        Budgets {
            per_address,
            per_account,
            delay_ms: 2_000,
            max_entries,
            max_held: 100,
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn an_address_goes_from_answer_to_delay_to_refuse_and_back_after_the_window() {
        let mut t = Throttle::new(budgets(2, 0, 10), HashState::from_seed(1));
        let verdicts: Vec<_> = (0..5).map(|_| t.failed(1, Some(ip(1)), 0)).collect();
        use Verdict::*;
        assert_eq!(verdicts, [Answer, Answer, Delay, Delay, Refuse]);
        assert!(t.refused(0, Some(ip(1)), None));
        assert!(
            !t.refused(0, Some(ip(2)), None),
            "another address is not affected"
        );
        assert!(
            !t.refused(ADDRESS_WINDOW_MS, Some(ip(1)), None),
            "the window is over"
        );
        assert_eq!(t.failed(1, Some(ip(1)), ADDRESS_WINDOW_MS), Answer);
        assert_eq!(t.entries(), 1);
    }

    #[test]
    fn an_account_counts_across_addresses_and_slots() {
        let mut t = Throttle::new(budgets(0, 2, 10), HashState::from_seed(1));
        let key = t.account_key("alice@example.com");
        let mut verdicts = Vec::new();
        for n in 0..3u8 {
            t.claim(u32::from(n), key);
            verdicts.push(t.failed(u32::from(n), Some(ip(n)), 0));
        }
        assert_eq!(verdicts, [Verdict::Answer, Verdict::Answer, Verdict::Delay]);
        assert_eq!(
            t.failed(9, Some(ip(9)), 0),
            Verdict::Answer,
            "no claim: no account"
        );
    }

    #[test]
    fn the_tables_keep_the_newest_keys_within_their_bound() {
        let mut t = Throttle::new(budgets(1, 0, 3), HashState::from_seed(1));
        for n in 0..10u8 {
            t.failed(0, Some(ip(n)), u64::from(n));
        }
        assert_eq!(t.entries(), 3);
        assert_eq!(t.evictions, 7);
        // The newest survive: a second failure of ip(9) is its second.
        assert_eq!(t.failed(0, Some(ip(9)), 10), Verdict::Delay);
        assert_eq!(
            t.failed(0, Some(ip(0)), 10),
            Verdict::Answer,
            "ip(0) was evicted"
        );
    }

    #[test]
    fn renewed_windows_leave_no_stale_queue_entries() {
        let mut t = Throttle::new(budgets(5, 0, 4), HashState::from_seed(1));
        for round in 0..100u64 {
            t.failed(0, Some(ip(1)), round * ADDRESS_WINDOW_MS);
        }
        assert_eq!(t.addresses.order.len(), 1);
        assert_eq!(t.entries(), 1);
    }

    #[test]
    fn delayed_answers_come_due_in_order_and_hold_a_bounded_amount() {
        let mut t = Throttle::new(budgets(1, 0, 4), HashState::from_seed(1));
        let entry = |slot| TimerEntry {
            slot,
            generation: 0,
        };
        let delayed = || Delayed {
            condition: "not-authorized",
            close: false,
            held: Vec::new(),
        };
        t.delay(entry(1), 0, delayed());
        t.delay(entry(2), 500, delayed());
        assert!(t.hold(1, &[b'x'; 60]) && !t.hold(1, &[b'x'; 60]));
        assert_eq!(t.next_deadline_ms(), Some(2_000));
        assert!(t.take_due(1_999).is_none());
        let (first, answer) = t.take_due(2_000).expect("due");
        assert_eq!(first.slot, 1);
        assert_eq!(answer.map(|a| a.held.len()), Some(60));
        t.forget(2);
        let (second, answer) = t.take_due(2_500).expect("due");
        assert_eq!((second.slot, answer.is_none()), (2, true));
        assert!(t.take_due(u64::MAX).is_none());
    }
}
