//! XEP-0203 delayed delivery: the `<delay/>` element a stored message carries when it is
//! delivered later (XEP-0160 offline messages, retransmissions), and the XEP-0082 timestamp.
//!
//! What it does: copies a stanza with `<delay xmlns='urn:xmpp:delay' from=DOMAIN stamp=.../>`
//! inserted as its last child (a self-closing stanza is opened for it), and formats Unix
//! milliseconds as `YYYY-MM-DDThh:mm:ss.sssZ` (UTC, proleptic Gregorian).
//!
//! What it does not do: read clocks (the stamp is the store's put time, wall-clock ms that the
//! router computed from the time the server passed in), or parse the stanza beyond its name.
//!
//! Invariants: every byte of the original stanza is kept, in order; only the delay element
//! (and, for `<x .../>`, the split into start and end tag) is added.

use rookery_proto::StanzaView;

use crate::replies;

/// Writes `stanza` with a delay element stamped `stamp_unix_ms` into `out` (appending).
/// A stanza that does not parse (never the case for stored stanzas) is copied unchanged.
pub fn with_delay(stanza: &[u8], domain: &str, stamp_unix_ms: u64, out: &mut Vec<u8>) {
    let Ok(view) = StanzaView::parse(stanza) else {
        out.extend_from_slice(stanza);
        return;
    };
    let name = view.name().as_bytes();
    if view.is_empty_element() {
        // `<message .../>` -> `<message ...>` DELAY `</message>`.
        let open = stanza.strip_suffix(b"/>").unwrap_or(stanza);
        out.extend_from_slice(open);
        out.push(b'>');
        delay_element(domain, stamp_unix_ms, out);
        out.extend_from_slice(b"</");
        out.extend_from_slice(name);
        out.push(b'>');
        return;
    }
    // The end tag is the last `</` of a framed element.
    let end = stanza
        .windows(2)
        .rposition(|w| w == b"</")
        .unwrap_or(stanza.len());
    out.extend_from_slice(&stanza[..end]);
    delay_element(domain, stamp_unix_ms, out);
    out.extend_from_slice(&stanza[end..]);
}

fn delay_element(domain: &str, stamp_unix_ms: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(b"<delay xmlns='urn:xmpp:delay'");
    replies::attr(out, "from", domain);
    out.extend_from_slice(b" stamp='");
    push_timestamp(stamp_unix_ms, out);
    out.extend_from_slice(b"'/>");
}

/// `YYYY-MM-DDThh:mm:ss.sssZ` for Unix milliseconds (XEP-0082 DateTime, UTC).
pub fn push_timestamp(unix_ms: u64, out: &mut Vec<u8>) {
    let days = unix_ms / 86_400_000;
    let ms_of_day = unix_ms % 86_400_000;
    let (year, month, day) = civil_from_days(days);
    push_digits(out, year, 4);
    out.push(b'-');
    push_digits(out, month, 2);
    out.push(b'-');
    push_digits(out, day, 2);
    out.push(b'T');
    push_digits(out, ms_of_day / 3_600_000, 2);
    out.push(b':');
    push_digits(out, ms_of_day / 60_000 % 60, 2);
    out.push(b':');
    push_digits(out, ms_of_day / 1_000 % 60, 2);
    out.push(b'.');
    push_digits(out, ms_of_day % 1_000, 3);
    out.push(b'Z');
}

/// Year, month (1-12), day (1-31) of `days` since 1970-01-01, by counting 400-year eras of
/// 146,097 days from 0000-03-01 (so the leap day is the last day of an era's year).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

fn push_digits(out: &mut Vec<u8>, value: u64, width: u32) {
    for i in (0..width).rev() {
        // Lossless: a single decimal digit.
        out.push(b'0' + (value / 10u64.pow(i) % 10) as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(unix_ms: u64) -> String {
        let mut out = Vec::new();
        push_timestamp(unix_ms, &mut out);
        String::from_utf8(out).expect("ASCII")
    }

    fn delayed(stanza: &str) -> String {
        let mut out = Vec::new();
        with_delay(
            stanza.as_bytes(),
            "example.com",
            1_795_888_800_000,
            &mut out,
        );
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn timestamps_are_xep_0082_utc() {
        assert_eq!(stamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(stamp(1_795_888_800_000), "2026-11-28T18:00:00.000Z");
        assert_eq!(stamp(951_782_400_000 + 1), "2000-02-29T00:00:00.001Z");
        assert_eq!(stamp(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
        assert_eq!(stamp(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
        assert_eq!(stamp(1_704_067_199_123), "2023-12-31T23:59:59.123Z");
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        // Days count up one by one: the date must always advance by exactly one day.
        let mut last = civil_from_days(0);
        for days in 1..146_097 {
            let now = civil_from_days(days);
            let next_day = (last.0, last.1, last.2 + 1);
            let next_month = (last.0, last.1 + 1, 1);
            let next_year = (last.0 + 1, 1, 1);
            assert!(
                now == next_day || now == next_month || now == next_year,
                "{last:?} -> {now:?}"
            );
            last = now;
        }
    }

    #[test]
    fn delay_goes_before_the_end_tag() {
        let delay = "<delay xmlns='urn:xmpp:delay' from='example.com' \
                     stamp='2026-11-28T18:00:00.000Z'/>";
        assert_eq!(
            delayed("<message to='b@e.com' id='m1'><body>hi</body></message>"),
            format!("<message to='b@e.com' id='m1'><body>hi</body>{delay}</message>")
        );
        assert_eq!(
            delayed("<message id='e' />"),
            format!("<message id='e' >{delay}</message>")
        );
        assert_eq!(
            delayed("<c:message xmlns:c='jabber:client'><body/></c:message >"),
            format!("<c:message xmlns:c='jabber:client'><body/>{delay}</c:message >")
        );
    }
}
