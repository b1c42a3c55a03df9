//! One 64-bit word naming "which operation of which conn": io_uring `user_data` and mio `Token`.
//!
//! Layout (bit 63 is the most significant):
//!
//! ```text
//!  63..60   59 ........ 32   31 ........ 0
//!  kind     generation       slot index
//!  4 bits   low 28 bits      32 bits
//! ```
//!
//! Kind 0 is never used, so a zeroed word (a bug, or a foreign CQE) decodes to `None`.
//! Only the low 28 bits of the generation fit; that is enough because a slot is never reused
//! while one of its operations is in flight (the backends free a slot only after its last
//! completion is reaped), so the generation in a key is a cross-check, not the only guard.
//!
//! What it does not do: look anything up. Callers compare the decoded key with their table.

use crate::ConnId;

/// What an operation (io_uring) or a registration (mio) is for. Poll registers only
/// accepts, conns and its waker; the other kinds name io_uring operations and exist only where
/// io_uring does (the numbers stay fixed, so a word means the same on every target).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum OpKind {
    /// Multishot accept; `index` is the listener index (uring) or listener token (poll).
    Accept = 1,
    /// Multishot recv of a conn (uring) or the conn's registration (poll).
    Recv = 2,
    /// The one send in flight of a conn.
    #[cfg(target_os = "linux")]
    Send = 3,
    /// An outgoing connect.
    #[cfg(target_os = "linux")]
    Connect = 4,
    /// An `AsyncCancel` aimed at one op of a conn.
    #[cfg(target_os = "linux")]
    Cancel = 5,
    /// The eventfd read (uring) or the mio waker.
    Wake = 6,
    /// Driver-wide cancellations (stop listening, shutdown); the CQE carries no conn.
    #[cfg(target_os = "linux")]
    Control = 7,
    /// The one write or fdatasync in flight of a registered file; `index` is the `FileId`,
    /// generation 0 (file ids are never reused, so the id alone is unambiguous).
    #[cfg(target_os = "linux")]
    File = 8,
    /// One read of a registered file; `index` is the read's slot in the driver's read table,
    /// generation 0 (a slot is reused only after its read's last completion).
    #[cfg(target_os = "linux")]
    FileRead = 9,
}

impl OpKind {
    fn from_bits(bits: u8) -> Option<OpKind> {
        Some(match bits {
            1 => OpKind::Accept,
            2 => OpKind::Recv,
            #[cfg(target_os = "linux")]
            3 => OpKind::Send,
            #[cfg(target_os = "linux")]
            4 => OpKind::Connect,
            #[cfg(target_os = "linux")]
            5 => OpKind::Cancel,
            6 => OpKind::Wake,
            #[cfg(target_os = "linux")]
            7 => OpKind::Control,
            #[cfg(target_os = "linux")]
            8 => OpKind::File,
            #[cfg(target_os = "linux")]
            9 => OpKind::FileRead,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OpKey {
    pub kind: OpKind,
    pub index: u32,
    /// Only the low [`OpKey::GENERATION_BITS`] bits are kept.
    pub generation: u32,
}

impl OpKey {
    pub const GENERATION_BITS: u32 = 28;
    const GENERATION_MASK: u32 = (1 << Self::GENERATION_BITS) - 1;

    pub fn new(kind: OpKind, index: u32, generation: u32) -> OpKey {
        OpKey {
            kind,
            index,
            generation: generation & Self::GENERATION_MASK,
        }
    }

    pub fn for_conn(kind: OpKind, conn: ConnId) -> OpKey {
        OpKey::new(kind, conn.index, conn.generation)
    }

    pub fn encode(self) -> u64 {
        (u64::from(self.kind as u8) << 60)
            | (u64::from(self.generation) << 32)
            | u64::from(self.index)
    }

    pub fn decode(word: u64) -> Option<OpKey> {
        let kind = OpKind::from_bits((word >> 60) as u8)?;
        let generation = ((word >> 32) as u32) & Self::GENERATION_MASK;
        Some(OpKey {
            kind,
            index: word as u32,
            generation,
        })
    }

    /// True when this key was made for `conn` (same slot, same generation modulo 2^28).
    pub fn is_for(self, conn: ConnId) -> bool {
        self.index == conn.index && self.generation == conn.generation & Self::GENERATION_MASK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: &[OpKind] = &[
        OpKind::Accept,
        OpKind::Recv,
        OpKind::Wake,
        #[cfg(target_os = "linux")]
        OpKind::Send,
        #[cfg(target_os = "linux")]
        OpKind::Connect,
        #[cfg(target_os = "linux")]
        OpKind::Cancel,
        #[cfg(target_os = "linux")]
        OpKind::Control,
        #[cfg(target_os = "linux")]
        OpKind::File,
        #[cfg(target_os = "linux")]
        OpKind::FileRead,
    ];

    #[test]
    fn round_trips_every_kind_and_edge_values() {
        for &kind in KINDS {
            for (index, generation) in [(0, 0), (u32::MAX, 0), (7, (1 << 28) - 1), (u32::MAX, 5)] {
                let key = OpKey::new(kind, index, generation);
                assert_eq!(OpKey::decode(key.encode()), Some(key));
            }
        }
    }

    #[test]
    fn generation_keeps_low_28_bits() {
        let conn = ConnId {
            index: 3,
            generation: (1 << 28) + 9,
        };
        let key = OpKey::for_conn(OpKind::Recv, conn);
        assert_eq!(key.generation, 9);
        assert!(key.is_for(conn));
        assert!(!key.is_for(ConnId {
            index: 3,
            generation: 10
        }));
        assert!(!key.is_for(ConnId {
            index: 4,
            generation: 9
        }));
    }

    #[test]
    fn zero_and_unknown_kinds_do_not_decode() {
        assert_eq!(OpKey::decode(0), None);
        assert_eq!(OpKey::decode(0xF << 60), None);
        assert_eq!(OpKey::decode(10 << 60), None);
    }

    #[test]
    fn distinct_ops_of_one_conn_get_distinct_words() {
        let conn = ConnId {
            index: 11,
            generation: 2,
        };
        let words: Vec<u64> = KINDS
            .iter()
            .map(|&k| OpKey::for_conn(k, conn).encode())
            .collect();
        for (i, a) in words.iter().enumerate() {
            assert!(words[i + 1..].iter().all(|b| a != b));
        }
    }
}
