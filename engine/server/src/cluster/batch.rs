//! The payload of one NATS message between two nodes: a batch of router mail, each for a
//! shard of the destination node.
//!
//! Format (little-endian): `count:u32` then `count` records `shard:u16 len:u32 mail`, where
//! `mail` is `len` bytes of `rookery_router::Mail::encode`. The record length lets a reader
//! skip one mail it cannot decode (a newer release's, a damaged one) and go on with the rest.
//!
//! What it does not do: sequence, acknowledge or retransmit (the cluster link does), or know
//! which node a batch is for (the bridge's endpoint keeps one builder per destination).
//!
//! Invariants: `read` never panics and never allocates more than its input; a builder's
//! bytes are always a well-formed batch (the count is written when a record is added).

use std::fmt;

use rookery_router::Mail;

/// Bytes of the count, and of a record's header.
const COUNT_LEN: usize = 4;
const RECORD_HEADER_LEN: usize = 2 + 4;

/// A batch being written for one destination node.
#[derive(Debug)]
pub struct BatchBuilder {
    bytes: Vec<u8>,
    count: u32,
}

impl Default for BatchBuilder {
    fn default() -> BatchBuilder {
        BatchBuilder {
            bytes: vec![0; COUNT_LEN],
            count: 0,
        }
    }
}

impl BatchBuilder {
    /// Appends a mail (its `Mail::encode` bytes) for shard `shard` of the destination node.
    ///
    /// # Panics
    /// If `mail` is 4 GiB or more (the caller bounds mail far below that).
    pub fn push(&mut self, shard: u16, mail: &[u8]) {
        let len = u32::try_from(mail.len()).expect("a mail under 4 GiB");
        self.bytes.extend_from_slice(&shard.to_le_bytes());
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self.bytes.extend_from_slice(mail);
        self.count += 1;
        self.bytes[..COUNT_LEN].copy_from_slice(&self.count.to_le_bytes());
    }

    /// The bytes a mail of `len` bytes adds to a batch.
    pub fn record_len(len: usize) -> usize {
        RECORD_HEADER_LEN + len
    }

    /// Bytes so far (the count included).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Mails in the batch.
    pub fn count(&self) -> u32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The finished batch; the builder starts a new one.
    pub fn take(&mut self) -> Vec<u8> {
        self.count = 0;
        std::mem::replace(&mut self.bytes, vec![0; COUNT_LEN])
    }
}

/// Why a batch (or one of its records) was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchError {
    /// The batch ends inside its count or a record: the rest of it is lost.
    Truncated,
    /// Bytes left after the counted records.
    Trailing(usize),
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::Truncated => f.write_str("a batch from another node ends inside a record"),
            BatchError::Trailing(n) => {
                write!(
                    f,
                    "{n} bytes after the last record of a batch from another node"
                )
            }
        }
    }
}

/// What reading a batch found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadReport {
    /// Records handed to the callback.
    pub mails: usize,
    /// Records whose mail did not decode (skipped; see `Mail::decode`'s errors).
    pub bad_mails: usize,
    /// The batch's framing was broken from this point on (the records before it were read).
    pub error: Option<BatchError>,
}

/// Reads `batch`, handing every record's shard and decoded mail to `f`, in order.
pub fn read(batch: &[u8], mut f: impl FnMut(u16, Mail)) -> ReadReport {
    let mut report = ReadReport::default();
    let Some((count, mut rest)) = split_u32(batch) else {
        report.error = Some(BatchError::Truncated);
        return report;
    };
    for _ in 0..count {
        let Some((shard, after)) = split_u16(rest) else {
            report.error = Some(BatchError::Truncated);
            return report;
        };
        let Some((len, after)) = split_u32(after) else {
            report.error = Some(BatchError::Truncated);
            return report;
        };
        let len = len as usize;
        if after.len() < len {
            report.error = Some(BatchError::Truncated);
            return report;
        }
        let (mail, after) = after.split_at(len);
        rest = after;
        match Mail::decode(mail) {
            Ok(mail) => {
                report.mails += 1;
                f(shard, mail);
            }
            Err(error) => {
                report.bad_mails += 1;
                tracing::debug!("cluster: skipped a mail from another node: {error}");
            }
        }
    }
    if !rest.is_empty() {
        report.error = Some(BatchError::Trailing(rest.len()));
    }
    report
}

fn split_u16(bytes: &[u8]) -> Option<(u16, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<2>()?;
    Some((u16::from_le_bytes(*head), rest))
}

fn split_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<4>()?;
    Some((u32::from_le_bytes(*head), rest))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rookery_proto::{Jid, StanzaKind};
    use rookery_router::{Fanout, Recipient, StanzaType};

    use super::*;

    fn jid(text: &str) -> Jid {
        Jid::parse(text).unwrap()
    }

    fn mails() -> Vec<(u16, Mail)> {
        let deliver = Mail::Deliver {
            to: jid("bob@example.test"),
            from: jid("alice@example.test/phone"),
            kind: StanzaKind::Message,
            ty: StanzaType::Chat,
            stanza: b"<message type='chat'><body>hi</body></message>"
                .as_slice()
                .into(),
            ack: None,
        };
        let fanout = Mail::Fanout(Box::new(Fanout {
            from: jid("alice@example.test/phone"),
            kind: StanzaKind::Presence,
            ty: StanzaType::Available,
            stanza: Arc::from(b"<presence/>".as_slice()),
            recipients: Arc::from(vec![
                Recipient::Available(jid("carol@example.test")),
                Recipient::Member(jid("dave@example.test")),
            ]),
            gather: None,
        }));
        vec![(0, deliver.clone()), (3, fanout), (65_535, deliver)]
    }

    fn build(mails: &[(u16, Mail)]) -> BatchBuilder {
        let mut builder = BatchBuilder::default();
        for (shard, mail) in mails {
            let mut bytes = Vec::new();
            mail.encode(&mut bytes);
            builder.push(*shard, &bytes);
        }
        builder
    }

    fn read_all(batch: &[u8]) -> (Vec<(u16, Mail)>, ReadReport) {
        let mut got = Vec::new();
        let report = read(batch, |shard, mail| got.push((shard, mail)));
        (got, report)
    }

    #[test]
    fn a_batch_round_trips_in_order() {
        assert!(BatchBuilder::default().is_empty());
        let mut builder = build(&mails());
        assert_eq!(builder.count(), 3);
        let batch = builder.take();
        assert_eq!(batch.len(), {
            let mut n = 4;
            for (_, mail) in mails() {
                let mut bytes = Vec::new();
                mail.encode(&mut bytes);
                n += BatchBuilder::record_len(bytes.len());
            }
            n
        });
        let (got, report) = read_all(&batch);
        assert_eq!(got, mails());
        assert_eq!((report.mails, report.bad_mails, report.error), (3, 0, None));
        assert!(
            builder.is_empty() && builder.len() == 4,
            "take starts afresh"
        );
        let (none, report) = read_all(&builder.take());
        assert!(none.is_empty() && report.error.is_none());
    }

    #[test]
    fn truncated_batches_keep_what_came_before_the_cut() {
        let batch = build(&mails()).take();
        for cut in 0..batch.len() {
            let (got, report) = read_all(&batch[..cut]);
            assert_eq!(report.error, Some(BatchError::Truncated), "cut at {cut}");
            assert_eq!(got[..], mails()[..got.len()], "cut at {cut}");
        }
        let mut longer = batch.clone();
        longer.extend_from_slice(b"xyz");
        assert_eq!(read_all(&longer).1.error, Some(BatchError::Trailing(3)));
    }

    #[test]
    fn a_damaged_mail_is_skipped_and_the_rest_read() {
        let mut batch = build(&mails()).take();
        // The first record's mail starts with its version byte at offset 4 + 6.
        batch[10] = 0xEE;
        let (got, report) = read_all(&batch);
        assert_eq!(got, mails()[1..]);
        assert_eq!((report.mails, report.bad_mails, report.error), (2, 1, None));
    }

    #[test]
    fn garbage_never_panics_nor_claims_more_than_it_holds() {
        // A tiny PRNG: reproducible garbage without a dependency.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..5_000 {
            let len = (next() % 64) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 2 == 0 && bytes.len() >= 4 {
                // A plausible small count, so records get parsed.
                bytes[..4].copy_from_slice(&((next() % 4) as u32).to_le_bytes());
            }
            let (got, report) = read_all(&bytes);
            assert_eq!(got.len(), report.mails);
            assert!(report.mails + report.bad_mails <= bytes.len() / 6 + 1);
        }
        // A count of 4 billion over no records: an error, not a reservation.
        let (got, report) = read_all(&u32::MAX.to_le_bytes());
        assert!(got.is_empty());
        assert_eq!(report.error, Some(BatchError::Truncated));
    }
}
