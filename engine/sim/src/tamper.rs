//! The `lose-committed` canary: while the server is down for a restart, remove one committed
//! stored message from a shard's log, as a storage bug that loses acknowledged data would.
//! Also reads the chats out of a written commit batch, for the ledger (`stored_chats`).
//!
//! What it does: walks the CRC-framed records of every shard log (layout in
//! `rookery_store::format`), finds the Put records whose message no Ack record deleted, and
//! cuts out one of them, preferring a chat already owed (acknowledged to its sender, or
//! seen committed) and not yet delivered (the loss checker 1 must see). The rest of the file
//! stays valid: records are self-contained frames.
//!
//! What it does not do: anything unless `--inject-bug lose-committed` is given.
//!
//! Invariants: runs only while no router holds the logs (between drop and reopen).

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;

use rookery_proto::element::Element;
use rookery_store::format::{self, FrameCheck, Record, FRAME_LEN, HEADER_LEN};

use crate::commit::store_config;
use crate::ledger::{Ledger, MsgKey, Violation};
use crate::world::World;

struct LivePut {
    span: Range<usize>,
    key: Option<MsgKey>,
}

/// Removes one live Put from one log; true if it found one to remove.
pub(crate) fn lose_one(world: &World) -> Result<bool, Violation> {
    let mut best: Option<(u8, std::path::PathBuf, Range<usize>)> = None;
    for global in 0..world.cfg.nodes * world.cfg.shards {
        let (node, shard) = (global / world.cfg.shards, global % world.cfg.shards);
        let path = store_config(&world.dir, node, shard, world.cfg.offline_max).log_path();
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        for put in live_puts(&bytes) {
            let rank = rank(&world.ledger, put.key);
            if best.as_ref().is_none_or(|(r, _, _)| rank > *r) {
                best = Some((rank, path.clone(), put.span));
            }
        }
    }
    let Some((rank, path, span)) = best else {
        return Ok(false);
    };
    cut(&path, span).map_err(|e| Violation::new("setup", format!("tamper {e}")))?;
    Ok(rank >= 1)
}

/// 2: owed (acknowledged to its sender, or committed) and not delivered; 1: not delivered;
/// 0: anything else.
fn rank(ledger: &Ledger, key: Option<MsgKey>) -> u8 {
    let Some(key) = key else {
        return 0;
    };
    let acked = ledger.sent(key).is_some_and(|s| s.acked || s.committed);
    match (ledger.is_delivered(key), acked) {
        (false, true) => 2,
        (false, false) => 1,
        _ => 0,
    }
}

fn cut(path: &Path, span: Range<usize>) -> std::io::Result<()> {
    let mut bytes = std::fs::read(path)?;
    bytes.drain(span);
    std::fs::write(path, bytes)
}

/// Put records with no later Ack, in file order, with their byte spans.
fn live_puts(bytes: &[u8]) -> Vec<LivePut> {
    let mut puts = Vec::new();
    let mut acked = BTreeSet::new();
    let mut ids = Vec::new();
    for_each_record(bytes, HEADER_LEN, |span, record| match record {
        Record::Put(put) => {
            ids.push(put.id);
            puts.push(LivePut {
                span,
                key: chat_key(put.stanza),
            });
        }
        Record::Ack { id } => {
            acked.insert(id);
        }
        _ => {}
    });
    puts.into_iter()
        .zip(ids)
        .filter(|(_, id)| !acked.contains(id))
        .map(|(put, _)| put)
        .collect()
}

/// The chats stored by a commit batch that was written (its records, see `commit`).
pub(crate) fn stored_chats(batch: &[u8]) -> Vec<MsgKey> {
    let mut keys = Vec::new();
    for_each_record(batch, 0, |_, record| {
        if let Record::Put(put) = record {
            keys.extend(chat_key(put.stanza));
        }
    });
    keys
}

fn chat_key(stanza: &[u8]) -> Option<MsgKey> {
    Element::parse(stanza)
        .ok()
        .and_then(|el| el.attr("id").and_then(MsgKey::parse))
}

/// Calls `f` with the byte span and the record of every valid CRC-framed record from `at`,
/// stopping at the first torn or damaged frame.
fn for_each_record<'a>(
    bytes: &'a [u8],
    mut at: usize,
    mut f: impl FnMut(Range<usize>, Record<'a>),
) {
    while at + FRAME_LEN <= bytes.len() {
        let mut frame = [0u8; FRAME_LEN];
        frame.copy_from_slice(&bytes[at..at + FRAME_LEN]);
        let FrameCheck::Body { len, crc } = format::check_frame(frame) else {
            break;
        };
        let end = at + FRAME_LEN + len as usize;
        let Some(body) = bytes.get(at + FRAME_LEN..end) else {
            break;
        };
        if rookery_store::crc32c(body) != crc {
            break;
        }
        if let Ok(record) = format::decode_body(body) {
            f(at..end, record);
        }
        at = end;
    }
}
