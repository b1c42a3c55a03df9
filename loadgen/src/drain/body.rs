//! The drain scenario's messages: one stanza per (sender, sequence number), its body padded
//! to exactly `--body-bytes`, and the parse of that body at the recipient.
//!
//! Body: `drain r=<run> s=<sender> q=<seq> p=<x...>`, ASCII only (nothing to escape either
//! way), `p=` padded with `x` so the body is exactly the asked size. The stanza's id is
//! `dr<run>-<sender>-<seq>`: unique per run, as the body is.
//!
//! What it does not do: judge arrival order (see `ledger`) or touch a socket.

use std::io::Write as _;

const TAG: &str = "drain";

/// The shortest body any probe fits in (the fields at their widest, u32 each, and `p=`).
pub const MIN_BODY_BYTES: usize = "drain r=4294967295 s=4294967295 q=4294967295 p=".len();

/// What a drain body says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub run: u32,
    pub sender: u32,
    pub seq: u32,
}

/// Appends the message of `probe` to `to` (a bare JID of the run's validated ASCII names,
/// written as it is) with a body of exactly `body_bytes` (at least [`MIN_BODY_BYTES`]).
pub fn write_message(out: &mut Vec<u8>, to: &str, probe: Probe, body_bytes: usize) {
    let Probe { run, sender, seq } = probe;
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "<message to='{to}' type='chat' id='dr{run}-{sender}-{seq}'><body>"
    );
    let start = out.len();
    let _ = write!(out, "{TAG} r={run} s={sender} q={seq} p=");
    let pad = body_bytes.saturating_sub(out.len() - start);
    out.resize(out.len() + pad, b'x');
    out.extend_from_slice(b"</body></message>");
}

/// Parses a body [`write_message`] wrote; `None` for anything else.
pub fn parse(body: &str) -> Option<Probe> {
    let mut parts = body.split(' ');
    if parts.next()? != TAG {
        return None;
    }
    let probe = Probe {
        run: field(parts.next()?, "r=")?,
        sender: field(parts.next()?, "s=")?,
        seq: field(parts.next()?, "q=")?,
    };
    let pad = parts.next()?.strip_prefix("p=")?;
    (parts.next().is_none() && pad.bytes().all(|b| b == b'x')).then_some(probe)
}

fn field(part: &str, key: &str) -> Option<u32> {
    part.strip_prefix(key)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(stanza: &[u8]) -> &str {
        let text = std::str::from_utf8(stanza).unwrap();
        let start = text.find("<body>").unwrap() + 6;
        &text[start..text.find("</body>").unwrap()]
    }

    #[test]
    fn bodies_have_the_asked_size_and_round_trip() {
        let widest = Probe {
            run: u32::MAX,
            sender: u32::MAX,
            seq: u32::MAX,
        };
        let small = Probe {
            run: 7,
            sender: 0,
            seq: 12,
        };
        for (probe, size) in [
            (small, 1024),
            (small, MIN_BODY_BYTES),
            (widest, MIN_BODY_BYTES),
        ] {
            let mut out = Vec::new();
            write_message(&mut out, "user5@example.test", probe, size);
            let body = body_of(&out);
            assert_eq!(body.len(), size, "{body}");
            assert_eq!(parse(body), Some(probe));
        }
        let mut out = Vec::new();
        write_message(&mut out, "user5@example.test", small, 100);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("<message to='user5@example.test' type='chat' id='dr7-0-12'><body>"),
            "{text}"
        );
    }

    #[test]
    fn foreign_bodies_are_refused() {
        for body in [
            "",
            "hello",
            "drain r=1 s=2 q=3",
            "drain r=1 s=2 q=3 p=xxy",
            "drain r=1 s=2 q=3 p=x extra",
            "drain r=1 q=2 s=3 p=x",
            "rl r=1 s=2 q=3 p=x",
            "drain r=-1 s=2 q=3 p=x",
        ] {
            assert_eq!(parse(body), None, "{body}");
        }
        assert!(parse("drain r=1 s=2 q=3 p=").is_some());
    }
}
