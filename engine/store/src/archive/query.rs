//! Queries of one owner's archived messages (XEP-0313 filters, XEP-0059 paging): by `with`
//! (a bare JID matches every resource, a full JID only itself), by time, after or before an
//! id, one page at a time, oldest first or the newest page.
//!
//! What it does not do: parse forms or write results (the router does), or count the whole
//! result set (`Page::complete` says whether the page reached the end).
//!
//! Invariants: segments that cannot hold a match (id or time span) are not read; a page is
//! always in id (chronological) order; at most `max + 1` entries are collected.

use std::io;

use super::format::{self, decode_record, ArchivedMessage, Entry};
use super::Archive;

/// What to look for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Query<'a> {
    pub owner: &'a str,
    pub with: Option<&'a str>,
    pub start_ms: Option<u64>,
    pub end_ms: Option<u64>,
    /// Only messages with a larger id.
    pub after_id: Option<u64>,
    /// Only messages with a smaller id.
    pub before_id: Option<u64>,
    /// The newest page (RSM `<before/>` or `<before>id</before>`), else the oldest.
    pub from_end: bool,
    /// Page size (the caller bounds it).
    pub max: usize,
}

/// One page of results.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// In id order.
    pub messages: Vec<ArchivedMessage>,
    /// No more matches beyond this page in the paging direction.
    pub complete: bool,
}

impl Query<'_> {
    fn entry_matches(&self, entry: &Entry, with_hash: Option<u64>) -> bool {
        self.after_id.is_none_or(|id| entry.id > id)
            && self.before_id.is_none_or(|id| entry.id < id)
            && self.start_ms.is_none_or(|t| entry.stamp_ms >= t)
            && self.end_ms.is_none_or(|t| entry.stamp_ms <= t)
            && with_hash.is_none_or(|h| entry.with_hash == h)
    }

    fn message_matches(&self, message: &ArchivedMessage) -> bool {
        if message.owner != self.owner {
            return false;
        }
        match self.with {
            None => true,
            Some(with) if with.contains('/') => message.with == with,
            Some(with) => format::bare(&message.with) == with,
        }
    }

    fn span_may_match(&self, span: &format::Span) -> bool {
        span.count > 0
            && self.after_id.is_none_or(|id| span.last_id > id)
            && self.before_id.is_none_or(|id| span.first_id < id)
            && self.start_ms.is_none_or(|t| span.last_stamp_ms >= t)
            && self.end_ms.is_none_or(|t| span.first_stamp_ms <= t)
    }
}

impl Archive {
    /// One page of `query`'s matches.
    pub fn query(&self, query: &Query<'_>) -> io::Result<Page> {
        let owner_hash = format::hash(query.owner);
        let with_hash = query.with.map(|w| format::hash(format::bare(w)));
        let want = query.max + 1;
        let mut page = Page::default();
        let mut entries = Vec::new();
        let mut records = Vec::new();
        let order: Box<dyn Iterator<Item = _>> = if query.from_end {
            Box::new(self.segments.iter().rev())
        } else {
            Box::new(self.segments.iter())
        };
        for segment in order.filter(|s| query.span_may_match(&s.span)) {
            entries.clear();
            segment.owner_entries(owner_hash, &mut entries)?;
            entries.retain(|e| query.entry_matches(e, with_hash));
            if query.from_end {
                entries.reverse();
            }
            // Read at most what the page still needs (one more, to know whether it is the end).
            let mut needed = want - page.messages.len();
            let mut start = 0;
            while needed > 0 && start < entries.len() {
                let end = (start + needed).min(entries.len());
                records.clear();
                segment.read(&entries[start..end], &mut records)?;
                for record in &records {
                    let message = decode_record(record).ok_or_else(corrupt)?;
                    if query.message_matches(&message) {
                        page.messages.push(message);
                        needed -= 1;
                    }
                }
                start = end;
            }
            if page.messages.len() >= want {
                break;
            }
        }
        page.complete = page.messages.len() <= query.max;
        page.messages.truncate(query.max);
        if query.from_end {
            page.messages.reverse();
        }
        Ok(page)
    }
}

fn corrupt() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "an archived record fails its CRC: the disk returned other bytes than were written",
    )
}
