//! The per-sender delivery bitmaps of one ledger: sparse while few senders delivered here,
//! dense once most did.
//!
//! Why: a run of a million clients spread over ~50 processes of 2 threads each would give
//! every thread a dense row per possible sender (24 bytes x 1,000,000 = 24 MB per thread,
//! ~1.2 KB per client over the whole run) although a thread sees only the senders that wrote
//! to its recipients (1% of the clients in the million run). So rows start in a hash map
//! keyed by sender (about 40 bytes per sender that delivered here, nothing for the others)
//! and switch to a dense vector indexed by sender when the map holds more than half of the
//! run's senders, where the dense vector becomes the smaller of the two.
//!
//! Invariants: a row exists only for a sender index below `senders`; the switch keeps every
//! row's bits unchanged; iteration order is unspecified (callers that need an order sort).
//!
//! What it does not do: count anything (see `Ledger`), or check sequence numbers.

use std::collections::HashMap;

/// Bitmaps of delivered sequence numbers, one per sender that delivered.
#[derive(Debug)]
pub enum Rows {
    Sparse(HashMap<u32, Vec<u64>>),
    Dense(Vec<Vec<u64>>),
}

impl Default for Rows {
    fn default() -> Rows {
        Rows::Sparse(HashMap::new())
    }
}

impl Rows {
    /// The row of `sender` (created empty), for a run of `senders` senders.
    pub fn row_mut(&mut self, sender: u32, senders: u32) -> &mut Vec<u64> {
        if let Rows::Sparse(map) = self {
            if !map.contains_key(&sender) && (map.len() + 1) * 2 > senders as usize {
                self.densify(senders);
            }
        }
        match self {
            Rows::Sparse(map) => map.entry(sender).or_default(),
            Rows::Dense(rows) => {
                let at = sender as usize;
                if rows.len() <= at {
                    rows.resize_with(at + 1, Vec::new);
                }
                &mut rows[at]
            }
        }
    }

    /// The row of `sender`, empty when nothing of it was recorded.
    pub fn row(&self, sender: u32) -> &[u64] {
        let row = match self {
            Rows::Sparse(map) => map.get(&sender),
            Rows::Dense(rows) => rows.get(sender as usize),
        };
        row.map_or(&[][..], Vec::as_slice)
    }

    /// Every (sender, row) held, empty rows included, in no particular order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (u32, &Vec<u64>)> + '_> {
        match self {
            Rows::Sparse(map) => Box::new(map.iter().map(|(&s, row)| (s, row))),
            Rows::Dense(rows) => Box::new(rows.iter().enumerate().map(|(s, row)| (s as u32, row))),
        }
    }

    /// Every (sender, row), consumed.
    pub fn into_rows(self) -> Box<dyn Iterator<Item = (u32, Vec<u64>)>> {
        match self {
            Rows::Sparse(map) => Box::new(map.into_iter()),
            Rows::Dense(rows) => {
                Box::new(rows.into_iter().enumerate().map(|(s, row)| (s as u32, row)))
            }
        }
    }

    /// Whether the rows are held densely (for tests and sizing).
    #[cfg(test)]
    pub fn is_dense(&self) -> bool {
        matches!(self, Rows::Dense(_))
    }

    fn densify(&mut self, senders: u32) {
        let Rows::Sparse(map) = std::mem::take(self) else {
            return;
        };
        let mut rows = Vec::new();
        rows.resize_with(senders as usize, Vec::new);
        for (sender, row) in map {
            if let Some(slot) = rows.get_mut(sender as usize) {
                *slot = row;
            }
        }
        *self = Rows::Dense(rows);
    }
}
