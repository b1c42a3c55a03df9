//! The validity period (notBefore, notAfter) of an X.509 certificate, read from its DER.
//!
//! What it does: walks the few DER headers in front of `tbsCertificate.validity` (RFC 5280
//! section 4.1) and converts the two times to Unix seconds, so loading a certificate can warn
//! that it is expired or not yet valid, and the server can export its expiry as a gauge.
//!
//! What it does not do: verify anything. rustls (webpki) has already parsed the certificate
//! when this runs; this walk is a reader of one field, kept here because neither rustls nor
//! webpki exposes it and a full X.509 parser would be a large dependency for a warning.
//! Any input it does not understand gives `None`, never a panic.

use rookery_proto::datetime::{civil_from_days, days_from_civil};

/// A certificate's validity period in Unix seconds (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before_unix_s: i64,
    pub not_after_unix_s: i64,
}

const SEQUENCE: u8 = 0x30;
const EXPLICIT_VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// Reads the validity period of a DER certificate; `None` when the DER is not understood.
pub fn validity(cert_der: &[u8]) -> Option<Validity> {
    let (tag, cert, _) = tlv(cert_der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = tlv(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    let (tag, _, after) = tlv(rest)?;
    if tag == EXPLICIT_VERSION {
        rest = after;
    }
    // serialNumber, signature, issuer: skipped whatever they hold.
    for _ in 0..3 {
        let (_, _, after) = tlv(rest)?;
        rest = after;
    }
    let (tag, validity, _) = tlv(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, not_before, after) = tlv(validity)?;
    let not_before_unix_s = time(tag, not_before)?;
    let (tag, not_after, _) = tlv(after)?;
    let not_after_unix_s = time(tag, not_after)?;
    Some(Validity {
        not_before_unix_s,
        not_after_unix_s,
    })
}

/// Splits one DER tag-length-value off `input`: (tag, value, rest). Single-byte tags only,
/// which is all the fields walked above use.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    let (&first, mut input) = input.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || input.len() < count {
            return None;
        }
        let (bytes, rest) = input.split_at(count);
        input = rest;
        bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    if input.len() < len {
        return None;
    }
    let (value, rest) = input.split_at(len);
    Some((tag, value, rest))
}

/// UTCTime `YYMMDDHHMMSSZ` or GeneralizedTime `YYYYMMDDHHMMSSZ` (the forms RFC 5280 allows)
/// to Unix seconds.
fn time(tag: u8, value: &[u8]) -> Option<i64> {
    let (year, rest) = match (tag, value.len()) {
        (UTC_TIME, 13) => {
            let yy = digits(&value[..2])?;
            // RFC 5280 4.1.2.5.1: YY >= 50 is 19YY, otherwise 20YY.
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &value[2..])
        }
        (GENERALIZED_TIME, 15) => (digits(&value[..4])?, &value[4..]),
        _ => return None,
    };
    if rest[10] != b'Z' {
        return None;
    }
    let month = digits(&rest[0..2])?;
    let day = digits(&rest[2..4])?;
    let hour = digits(&rest[4..6])?;
    let minute = digits(&rest[6..8])?;
    let second = digits(&rest[8..10])?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // Lossless: month and day were checked to be 1..=12 and 1..=31.
    let days = days_from_civil(year, month as u32, day as u32);
    Some(days * 86_400 + hour * 3_600 + minute * 60 + second)
}

fn digits(ascii: &[u8]) -> Option<i64> {
    ascii.iter().try_fold(0i64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` for operator messages.
pub fn format_utc(unix_s: i64) -> String {
    let days = unix_s.div_euclid(86_400);
    let secs = unix_s.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_and_generalized_times_convert() {
        assert_eq!(time(UTC_TIME, b"700101000000Z"), Some(0));
        assert_eq!(time(UTC_TIME, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(
            time(GENERALIZED_TIME, b"20000229120000Z"),
            Some(951_825_600)
        );
        assert_eq!(time(UTC_TIME, b"7001010000000"), None);
        assert_eq!(time(UTC_TIME, b"70010100000Z"), None);
        assert_eq!(time(GENERALIZED_TIME, b"2000022912000xZ"), None);
    }

    #[test]
    fn formats_back() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_825_600), "2000-02-29T12:00:00Z");
        assert_eq!(format_utc(2_524_607_999), "2049-12-31T23:59:59Z");
    }

    #[test]
    fn truncated_der_gives_none() {
        assert_eq!(validity(&[]), None);
        assert_eq!(validity(&[0x30, 0x82, 0x01]), None);
        assert_eq!(validity(&[0x30, 0x03, 0x30, 0x01, 0x02]), None);
    }
}
