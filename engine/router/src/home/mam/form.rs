//! The request of a XEP-0313 query: its `queryid`, the data form's filters (`with`, `start`,
//! `end`, `before-id`, `after-id`) and XEP-0059 paging (`<max/>`, `<after/>`, `<before/>`),
//! with XEP-0082 date-times read into Unix ms.
//!
//! What it does not do: the `ids` field or `<index/>` (refused as `feature-not-implemented`
//! by the caller), or check that an id exists (an unknown id simply bounds the page).
//!
//! Invariants: `max` is at most `HARD_MAX`; an id is the archive's decimal number.

use rookery_proto::datetime::days_from_civil;
use rookery_proto::element::Element;

use super::MAM_NS;

const DATA_NS: &str = "jabber:x:data";
const RSM_NS: &str = "http://jabber.org/protocol/rsm";
/// Page size when the client gives none.
pub(crate) const DEFAULT_MAX: usize = 100;
/// Largest page served, whatever the client asks.
pub(crate) const HARD_MAX: usize = 250;

/// Why a request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bad {
    /// Not well formed, a bad date or JID: `bad-request`.
    Request,
    /// An id that is not ours: `item-not-found`.
    UnknownId,
    /// A field or element we do not implement: `feature-not-implemented`.
    Unsupported,
}

/// A parsed query.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Request {
    pub queryid: Option<String>,
    pub with: Option<String>,
    pub start_ms: Option<u64>,
    pub end_ms: Option<u64>,
    pub after_id: Option<u64>,
    pub before_id: Option<u64>,
    pub from_end: bool,
    pub max: usize,
}

/// Reads `<query xmlns='urn:xmpp:mam:2'>`.
pub(crate) fn parse(query: &Element<'_>) -> Result<Request, Bad> {
    let mut request = Request {
        queryid: query.attr("queryid").map(str::to_owned),
        max: DEFAULT_MAX,
        ..Request::default()
    };
    if let Some(form) = query.child("x", DATA_NS) {
        for field in form.children().filter(|c| c.local_name() == "field") {
            let value = field
                .child("value", DATA_NS)
                .map(|v| v.text().trim().to_owned())
                .unwrap_or_default();
            match field.attr("var").unwrap_or_default() {
                "FORM_TYPE" if value != MAM_NS => return Err(Bad::Request),
                "with" if !value.is_empty() => request.with = Some(value),
                "start" => request.start_ms = Some(datetime_ms(&value).ok_or(Bad::Request)?),
                "end" => request.end_ms = Some(datetime_ms(&value).ok_or(Bad::Request)?),
                "after-id" => request.after_id = Some(id(&value)?),
                "before-id" => request.before_id = Some(id(&value)?),
                "ids" => return Err(Bad::Unsupported),
                _ => {}
            }
        }
    }
    if let Some(set) = query.child("set", RSM_NS) {
        if set.child("index", RSM_NS).is_some() {
            return Err(Bad::Unsupported);
        }
        if let Some(max) = set.child("max", RSM_NS) {
            let max: usize = max.text().trim().parse().map_err(|_| Bad::Request)?;
            request.max = max.min(HARD_MAX);
        }
        if let Some(after) = set.child("after", RSM_NS) {
            request.after_id = Some(id(after.text().trim())?);
        }
        if let Some(before) = set.child("before", RSM_NS) {
            let text = before.text();
            request.from_end = true;
            if !text.trim().is_empty() {
                request.before_id = Some(id(text.trim())?);
            }
        }
    }
    if request.before_id.is_some() && request.after_id.is_none() {
        request.from_end = true;
    }
    Ok(request)
}

fn id(text: &str) -> Result<u64, Bad> {
    text.parse().map_err(|_| Bad::UnknownId)
}

/// The bare part of a JID (before any '/').
pub(crate) fn bare(jid: &str) -> &str {
    jid.split_once('/').map_or(jid, |(bare, _)| bare)
}

/// A XEP-0082 DateTime (`CCYY-MM-DDThh:mm:ss[.sss](Z|(+|-)hh:mm)`) in Unix ms.
pub(crate) fn datetime_ms(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let part = text.get(from..to)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        let scaled = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = scaled.parse::<i64>().ok()?;
        rest = &fraction[digits..];
    }
    let offset_s = match rest {
        "Z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let h: i64 = rest.get(1..3)?.parse().ok()?;
            let m: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month as u32, day as u32);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second.min(60) - offset_s;
    u64::try_from(seconds * 1000 + millis).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_are_read() {
        assert_eq!(datetime_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(datetime_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(datetime_ms("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(datetime_ms("2010-06-07T00:00:00Z"), Some(1_275_868_800_000));
        assert_eq!(datetime_ms("2010-06-07"), None);
        assert_eq!(datetime_ms("2010-13-07T00:00:00Z"), None);
    }

    #[test]
    fn a_query_form_and_rsm_are_read() {
        let xml = b"<query xmlns='urn:xmpp:mam:2' queryid='q1'>\
<x xmlns='jabber:x:data' type='submit'>\
<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>\
<field var='with'><value>bob@x</value></field>\
<field var='start'><value>1970-01-01T00:00:02Z</value></field></x>\
<set xmlns='http://jabber.org/protocol/rsm'><max>2</max><after>41</after></set></query>";
        let query = Element::parse(xml).expect("xml");
        let request = parse(&query).expect("valid");
        assert_eq!(request.queryid.as_deref(), Some("q1"));
        assert_eq!(request.with.as_deref(), Some("bob@x"));
        assert_eq!(request.start_ms, Some(2000));
        assert_eq!(
            (request.max, request.after_id, request.from_end),
            (2, Some(41), false)
        );
        let last = b"<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'>\
<max>9999</max><before/></set></query>";
        let request = parse(&Element::parse(last).expect("xml")).expect("valid");
        assert_eq!((request.max, request.from_end), (HARD_MAX, true));
        let bad = b"<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'>\
<after>nope</after></set></query>";
        assert_eq!(
            parse(&Element::parse(bad).expect("xml")),
            Err(Bad::UnknownId)
        );
    }
}
