//! The answer to a XEP-0313 query: one `<message><result><forwarded>` per archived message
//! (with its XEP-0203 `<delay/>`), then the `<fin/>` of the iq result with XEP-0059 `<first/>`
//! and `<last/>`.
//!
//! What it does not do: send (the caller writes the messages to the querier, then the iq
//! result), or count the whole result set.
//!
//! Invariants: the messages of one answer add up to at most the caller's byte budget (a
//! page cut short says `complete='false'`, so the client asks for the rest); the forwarded
//! stanza carries `xmlns='jabber:client'`, as it leaves the stream's default namespace.

use std::io;

use rookery_proto::datetime::push_xep0082;
use rookery_proto::StanzaView;
use rookery_store::archive::{Archive, Query};

use super::form::Request;
use crate::replies;

/// Messages to write to the querier, and the `<fin/>` payload of the iq result.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    pub messages: Vec<Vec<u8>>,
    pub fin: Vec<u8>,
}

/// Runs `request` over `owner`'s archive for the querier `to` (its full JID); the messages
/// come from `owner` and their bytes stay under `budget_bytes` (at least one is sent).
pub(crate) fn answer(
    archive: &Archive,
    owner: &str,
    to: &str,
    request: &Request,
    budget_bytes: usize,
) -> io::Result<Answer> {
    let query = Query {
        owner,
        with: request.with.as_deref(),
        start_ms: request.start_ms,
        end_ms: request.end_ms,
        after_id: request.after_id,
        before_id: request.before_id,
        from_end: request.from_end,
        max: request.max,
    };
    let mut page = archive.query(&query)?;
    let mut answer = Answer::default();
    let mut bytes = 0;
    let mut ids = Vec::with_capacity(page.messages.len());
    // Paging backwards, a page cut short keeps its newest messages, so the next page
    // (before the first id) skips nothing.
    let order: Box<dyn Iterator<Item = _>> = if request.from_end {
        Box::new(page.messages.iter().rev())
    } else {
        Box::new(page.messages.iter())
    };
    for message in order {
        let mut out = Vec::with_capacity(message.stanza.len() + 256);
        out.extend_from_slice(b"<message");
        replies::attr(&mut out, "from", owner);
        replies::attr(&mut out, "to", to);
        out.extend_from_slice(b"><result xmlns='urn:xmpp:mam:2'");
        if let Some(queryid) = &request.queryid {
            replies::attr(&mut out, "queryid", queryid);
        }
        replies::attr(&mut out, "id", &message.id.to_string());
        out.extend_from_slice(b"><forwarded xmlns='urn:xmpp:forward:0'>");
        out.extend_from_slice(b"<delay xmlns='urn:xmpp:delay' stamp='");
        push_xep0082(message.stamp_ms, &mut out);
        out.extend_from_slice(b"'/>");
        push_client_stanza(&message.stanza, &mut out);
        out.extend_from_slice(b"</forwarded></result></message>");
        if !answer.messages.is_empty() && bytes + out.len() > budget_bytes {
            page.complete = false;
            break;
        }
        bytes += out.len();
        ids.push(message.id);
        answer.messages.push(out);
    }
    if request.from_end {
        ids.reverse();
        answer.messages.reverse();
    }
    write_fin(&mut answer.fin, page.complete, &ids);
    Ok(answer)
}

fn write_fin(out: &mut Vec<u8>, complete: bool, ids: &[u64]) {
    out.extend_from_slice(b"<fin xmlns='urn:xmpp:mam:2'");
    if complete {
        out.extend_from_slice(b" complete='true'");
    }
    out.extend_from_slice(b"><set xmlns='http://jabber.org/protocol/rsm'>");
    if let (Some(first), Some(last)) = (ids.first(), ids.last()) {
        out.extend_from_slice(format!("<first>{first}</first><last>{last}</last>").as_bytes());
    }
    out.extend_from_slice(b"</set></fin>");
}

/// `stanza` with `xmlns='jabber:client'` on its root when it has no namespace of its own.
fn push_client_stanza(stanza: &[u8], out: &mut Vec<u8>) {
    let has_ns = StanzaView::parse(stanza).is_ok_and(|v| v.xmlns().is_some());
    let name_end = stanza
        .iter()
        .position(|&b| b.is_ascii_whitespace() || b == b'>' || b == b'/')
        .unwrap_or(stanza.len());
    if has_ns || name_end == stanza.len() {
        out.extend_from_slice(stanza);
        return;
    }
    out.extend_from_slice(&stanza[..name_end]);
    out.extend_from_slice(b" xmlns='jabber:client'");
    out.extend_from_slice(&stanza[name_end..]);
}
