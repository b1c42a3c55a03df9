//! One coarse hashed timer wheel per router: auth and idle deadlines of all conns.
//!
//! What it does not do: know deadlines. An entry only says "look at conn `slot` around this
//! time"; the router recomputes the conn's real deadline from its state (connect time, last
//! activity) when the entry comes due, and re-inserts it if the deadline moved. So activity
//! costs nothing here (no per-byte timer updates) and a tick never scans all conns.
//!
//! Invariants:
//! - slot `i % SLOTS` holds entries inserted for absolute slot `i` (time `i * SLOT_MS ..`);
//!   entries more than one revolution ahead sit in their slot and are simply handed back
//!   early, to be re-inserted by the router.
//! - `cursor` is the first absolute slot not yet fully processed; `expire` drains every slot
//!   up to the current one and leaves `cursor` on the current one (it may gain entries again).
//! - A conn has at most one live entry; stale entries (conn gone, slot reused) are filtered by
//!   the router through the slot generation in `TimerEntry`.

/// Width of one wheel slot. Timeouts fire on the first tick at or after the deadline; a server
/// sleeping until `next_deadline_ms` wakes at most one slot late.
pub const SLOT_MS: u64 = 1_000;
/// Number of slots: 512 s per revolution, longer than the default idle timeout (300 s).
pub const SLOTS: usize = 512;

/// A reference to a conn slot, made stale by the slot's generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerEntry {
    pub slot: u32,
    pub generation: u32,
}

#[derive(Debug)]
pub struct TimerWheel {
    slots: Vec<Vec<TimerEntry>>,
    cursor: u64,
    len: usize,
}

impl TimerWheel {
    /// An empty wheel whose first slot is the one containing `now_ms`.
    pub fn new(now_ms: u64) -> TimerWheel {
        TimerWheel {
            slots: vec![Vec::new(); SLOTS],
            cursor: now_ms / SLOT_MS,
            len: 0,
        }
    }

    /// Moves an empty wheel's start to `now_ms`, so `next_deadline_ms` never reports slots
    /// from before the first conn (the router is built before it knows the time).
    pub fn restart_if_empty(&mut self, now_ms: u64) {
        if self.len == 0 {
            self.cursor = self.cursor.max(now_ms / SLOT_MS);
        }
    }

    /// Registers `entry` to come due at or after `deadline_ms` (a past deadline comes due on
    /// the next `expire`).
    pub fn insert(&mut self, deadline_ms: u64, entry: TimerEntry) {
        let absolute = (deadline_ms / SLOT_MS).max(self.cursor);
        self.slots[index(absolute)].push(entry);
        self.len += 1;
    }

    /// Moves every entry of the slots up to and including the one of `now_ms` into `out`.
    /// Entries may be early (later in their slot, or a later revolution): the caller checks.
    pub fn expire(&mut self, now_ms: u64, out: &mut Vec<TimerEntry>) {
        let now_slot = now_ms / SLOT_MS;
        if now_slot < self.cursor {
            return;
        }
        // Bounded: after a long pause every slot is visited once, not once per missed slot.
        let first = self.cursor.max(now_slot.saturating_sub(SLOTS as u64 - 1));
        for absolute in first..=now_slot {
            let slot = &mut self.slots[index(absolute)];
            self.len -= slot.len();
            // `append` keeps the slot's capacity for the entries that come back.
            out.append(slot);
        }
        self.cursor = now_slot;
    }

    /// The end of the first non-empty slot: by then its entries are due, unless they moved.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        (self.cursor..self.cursor + SLOTS as u64)
            .find(|&absolute| !self.slots[index(absolute)].is_empty())
            .map(|absolute| (absolute + 1) * SLOT_MS)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Heap bytes of the slot vectors (entries and spare capacity).
    pub fn heap_bytes(&self) -> usize {
        let entries: usize = self.slots.iter().map(Vec::capacity).sum();
        self.slots.capacity() * std::mem::size_of::<Vec<TimerEntry>>()
            + entries * std::mem::size_of::<TimerEntry>()
    }
}

fn index(absolute: u64) -> usize {
    (absolute % SLOTS as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(slot: u32) -> TimerEntry {
        TimerEntry {
            slot,
            generation: 0,
        }
    }

    fn expire(wheel: &mut TimerWheel, now_ms: u64) -> Vec<u32> {
        let mut out = Vec::new();
        wheel.expire(now_ms, &mut out);
        out.into_iter().map(|e| e.slot).collect()
    }

    #[test]
    fn entries_come_due_in_their_slot_not_before() {
        let mut wheel = TimerWheel::new(0);
        wheel.insert(10_000, entry(1));
        wheel.insert(20_500, entry(2));
        assert_eq!(expire(&mut wheel, 9_999), Vec::<u32>::new());
        assert_eq!(expire(&mut wheel, 10_000), vec![1]);
        assert_eq!(expire(&mut wheel, 15_000), Vec::<u32>::new());
        assert_eq!(wheel.next_deadline_ms(), Some(21_000));
        assert_eq!(expire(&mut wheel, 20_100), vec![2]);
        assert!(wheel.is_empty());
        assert_eq!(wheel.next_deadline_ms(), None);
    }

    #[test]
    fn past_deadlines_come_due_on_the_next_expire() {
        let mut wheel = TimerWheel::new(50_000);
        wheel.insert(1_000, entry(7));
        assert_eq!(wheel.len(), 1);
        assert_eq!(expire(&mut wheel, 50_001), vec![7]);
    }

    #[test]
    fn the_current_slot_is_revisited_until_it_is_over() {
        let mut wheel = TimerWheel::new(0);
        wheel.insert(5_700, entry(1));
        assert_eq!(expire(&mut wheel, 5_100), vec![1]);
        // The caller re-inserts an entry that was early; it comes back on the next tick.
        wheel.insert(5_700, entry(1));
        assert_eq!(expire(&mut wheel, 5_800), vec![1]);
    }

    #[test]
    fn far_entries_come_back_early_once_per_revolution() {
        let mut wheel = TimerWheel::new(0);
        let far_ms = (SLOTS as u64 + 3) * SLOT_MS;
        wheel.insert(far_ms, entry(9));
        assert_eq!(expire(&mut wheel, 3 * SLOT_MS), vec![9]);
    }

    #[test]
    fn a_long_pause_visits_each_slot_once() {
        let mut wheel = TimerWheel::new(0);
        for i in 0..100 {
            wheel.insert(i * 1_000, entry(i as u32));
        }
        let due = expire(&mut wheel, 10_000_000);
        assert_eq!(due.len(), 100);
        assert!(wheel.is_empty());
    }
}
