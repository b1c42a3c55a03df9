//! Bytes rookery-load puts on the wire after login: the chat message and its probe body.
//!
//! A probe body is `rl r=<run> s=<sender> q=<seq> i=<intended ns> a=<actual ns>`: a random id
//! of the run (so messages a server stored offline during an earlier run are recognised as
//! stale, not counted as this run's), the sender's client index (0-based), its per-sender
//! sequence number, and the intended and actual send times in CLOCK_MONOTONIC nanoseconds. The recipient needs nothing else to account for the message
//! and to measure both latencies, so no per-message state is kept at the sender.
//! Only ASCII digits and letters: no escaping either way.
//!
//! With `--receipts` the message also carries an id and `<request xmlns='urn:xmpp:receipts'/>`
//! (XEP-0184). The id is `rl-<run>-<sender>-<seq>-<intended ns>`, so the receipt that echoes
//! it tells the sender everything it needs (which message, when it was due) and the sender
//! keeps no per-message state for receipts either.
//!
//! What it does not do: login stanzas (see `client`), or accept bodies it did not write
//! (anything else parses as `None` and is counted as foreign).

use std::io::Write as _;

/// What a probe body carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub run: u32,
    pub sender: u32,
    pub seq: u32,
    pub intended_ns: u64,
    pub actual_ns: u64,
}

const TAG: &str = "rl";

/// Appends `<message to='<localpart>@<domain>/<resource>' type='chat'><body>PROBE</body></message>`.
/// `to_localpart`, `domain` and `resource` come from the run's config (validated ASCII), so they
/// are written as they are; the caller escapes nothing.
/// With [`Receipt::Request`], the message gets a receipt id and a receipt request.
pub fn write_message(out: &mut Vec<u8>, to: &Recipient<'_>, probe: &Probe, receipt: Receipt) {
    out.extend_from_slice(b"<message to='");
    out.extend_from_slice(to.user_prefix.as_bytes());
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{}@{}", to.number, to.domain);
    if !to.resource.is_empty() {
        let _ = write!(out, "/{}", to.resource);
    }
    out.extend_from_slice(b"' type='chat'");
    if receipt == Receipt::Request {
        let _ = write!(
            out,
            " id='{TAG}-{}-{}-{}-{}'",
            probe.run, probe.sender, probe.seq, probe.intended_ns
        );
    }
    out.extend_from_slice(b"><body>");
    let _ = write!(
        out,
        "{TAG} r={} s={} q={} i={} a={}",
        probe.run, probe.sender, probe.seq, probe.intended_ns, probe.actual_ns
    );
    out.extend_from_slice(b"</body>");
    if receipt == Receipt::Request {
        out.extend_from_slice(b"<request xmlns='urn:xmpp:receipts'/>");
    }
    out.extend_from_slice(b"</message>");
}

/// Whether a message asks for an XEP-0184 receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receipt {
    Request,
    None,
}

/// What a receipt id says about the message it acknowledges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceiptId {
    pub run: u32,
    pub sender: u32,
    pub seq: u32,
    pub intended_ns: u64,
}

/// Parses a receipt id written by [`write_message`]; `None` for anyone else's.
pub fn parse_receipt_id(id: &str) -> Option<ReceiptId> {
    let mut parts = id.split('-');
    if parts.next()? != TAG {
        return None;
    }
    let receipt = ReceiptId {
        run: parts.next()?.parse().ok()?,
        sender: parts.next()?.parse().ok()?,
        seq: parts.next()?.parse().ok()?,
        intended_ns: parts.next()?.parse().ok()?,
    };
    parts.next().is_none().then_some(receipt)
}

/// Where a message goes: the recipient's full JID pieces. A full JID (not the bare one) so the
/// server delivers to the bound resource even if the recipient's initial presence is still in
/// flight (RFC 6121 8.5.3: a full JID with a bound resource is delivered to that session).
/// An empty `resource` addresses the bare JID: the offline scenario writes to users with no
/// session, which a server stores (RFC 6121 8.5.2.2.1, XEP-0160).
#[derive(Clone, Copy, Debug)]
pub struct Recipient<'a> {
    pub user_prefix: &'a str,
    pub number: u64,
    pub domain: &'a str,
    pub resource: &'a str,
}

/// Parses a probe body; `None` for anything rookery-load did not write.
pub fn parse_probe(body: &str) -> Option<Probe> {
    parse_tagged(body, TAG)
}

/// Parses `<tag> r=.. s=.. q=.. i=.. a=..`, the probe fields under any tag (the presence and
/// group scenarios use their own, see `fanout::wire`).
pub fn parse_tagged(body: &str, tag: &str) -> Option<Probe> {
    let mut parts = body.trim().split(' ');
    if parts.next()? != tag {
        return None;
    }
    let run = field(parts.next()?, "r=")?;
    let sender = field(parts.next()?, "s=")?;
    let seq = field(parts.next()?, "q=")?;
    let intended_ns = field(parts.next()?, "i=")?;
    let actual_ns = field(parts.next()?, "a=")?;
    if parts.next().is_some() {
        return None;
    }
    Some(Probe {
        run,
        sender,
        seq,
        intended_ns,
        actual_ns,
    })
}

fn field<T: std::str::FromStr>(part: &str, key: &str) -> Option<T> {
    part.strip_prefix(key)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_round_trips_its_probe() {
        let probe = Probe {
            run: 7,
            sender: 17,
            seq: 3,
            intended_ns: 123_456_789,
            actual_ns: 123_999_000,
        };
        let to = Recipient {
            user_prefix: "user",
            number: 9,
            domain: "example.test",
            resource: "load",
        };
        let mut out = Vec::new();
        write_message(&mut out, &to, &probe, Receipt::None);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("<message to='user9@example.test/load' type='chat'><body>"));
        let body = &text[text.find("<body>").unwrap() + 6..text.find("</body>").unwrap()];
        assert_eq!(parse_probe(body), Some(probe));
        assert!(!text.contains("request"));

        let bare = Recipient { resource: "", ..to };
        let mut out = Vec::new();
        write_message(&mut out, &bare, &probe, Receipt::None);
        assert!(String::from_utf8(out)
            .unwrap()
            .starts_with("<message to='user9@example.test' type='chat'>"));

        let mut out = Vec::new();
        write_message(&mut out, &to, &probe, Receipt::Request);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("<message to='user9@example.test/load' type='chat' id='rl-7-17-3-123456789'><body>rl r=7"),
            "{text}"
        );
        assert!(text.ends_with("</body><request xmlns='urn:xmpp:receipts'/></message>"));
        assert_eq!(
            parse_receipt_id("rl-7-17-3-123456789"),
            Some(ReceiptId {
                run: 7,
                sender: 17,
                seq: 3,
                intended_ns: 123_456_789
            })
        );
    }

    #[test]
    fn foreign_receipt_ids_are_refused() {
        for id in [
            "",
            "m1",
            "rl-1-2-3",
            "rl-1-2-3-4-5",
            "rl-1-x-3-4",
            "xx-1-2-3-4",
        ] {
            assert_eq!(parse_receipt_id(id), None, "{id}");
        }
    }

    #[test]
    fn foreign_bodies_are_not_probes() {
        assert_eq!(parse_probe("hello"), None);
        assert_eq!(parse_probe("rl r=1 s=1 q=2 i=3"), None);
        assert_eq!(parse_probe("rl r=1 s=1 q=2 i=3 a=x"), None);
        assert_eq!(parse_probe("rl r=1 s=1 q=2 i=3 a=4 extra"), None);
        assert_eq!(parse_probe("rl r=1 q=1 s=2 i=3 a=4"), None);
        assert_eq!(parse_probe("rl s=1 q=2 i=3 a=4"), None);
    }
}
