//! `Range: bytes=...` (RFC 9110 section 14) for one range of a file of known length.
//!
//! What it does: [`resolve`] turns the header value into the whole file, one inclusive byte
//! range, or "not satisfiable" (416). Forms: `a-b`, `a-` and `-n` (the last n bytes); an end
//! past the file is clipped to it.
//!
//! What it does not do: several ranges in one response (multipart/byteranges). A request for
//! more than one range gets the whole file, which RFC 9110 allows (a server MAY ignore Range);
//! so does a header we cannot parse or another unit.

/// What to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// 200, the whole file.
    Full,
    /// 206, bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// 416.
    NotSatisfiable,
}

/// Resolves a `Range` header value against a file of `len` bytes.
pub fn resolve(header: Option<&str>, len: u64) -> RangeAnswer {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeAnswer::Full;
    };
    if spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    match (parse(first), parse(last)) {
        // `-n`: the last n bytes.
        (None, Some(suffix)) if first.is_empty() => {
            if suffix == 0 || len == 0 {
                return RangeAnswer::NotSatisfiable;
            }
            RangeAnswer::Partial {
                start: len.saturating_sub(suffix),
                end: len - 1,
            }
        }
        (Some(start), end) if end.is_some() || last.is_empty() => {
            if start >= len {
                return RangeAnswer::NotSatisfiable;
            }
            let end = end.map_or(len - 1, |e| e.min(len - 1));
            if end < start {
                // RFC 9110 section 14.1.1: last < first makes the range invalid; ignored.
                return RangeAnswer::Full;
            }
            RangeAnswer::Partial { start, end }
        }
        _ => RangeAnswer::Full,
    }
}

fn parse(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeAnswer::*;

    #[test]
    fn single_ranges() {
        assert_eq!(
            resolve(Some("bytes=0-99"), 1000),
            Partial { start: 0, end: 99 }
        );
        assert_eq!(
            resolve(Some("bytes=500-"), 1000),
            Partial {
                start: 500,
                end: 999
            }
        );
        assert_eq!(
            resolve(Some("bytes=-100"), 1000),
            Partial {
                start: 900,
                end: 999
            }
        );
        assert_eq!(
            resolve(Some("bytes=-5000"), 1000),
            Partial { start: 0, end: 999 }
        );
        assert_eq!(
            resolve(Some("bytes=990-2000"), 1000),
            Partial {
                start: 990,
                end: 999
            }
        );
        assert_eq!(
            resolve(Some("bytes=999-999"), 1000),
            Partial {
                start: 999,
                end: 999
            }
        );
    }

    #[test]
    fn unsatisfiable_ranges() {
        assert_eq!(resolve(Some("bytes=1000-"), 1000), NotSatisfiable);
        assert_eq!(resolve(Some("bytes=1000-1001"), 1000), NotSatisfiable);
        assert_eq!(resolve(Some("bytes=-0"), 1000), NotSatisfiable);
        assert_eq!(resolve(Some("bytes=0-"), 0), NotSatisfiable);
    }

    #[test]
    fn everything_else_is_the_whole_file() {
        for header in [
            None,
            Some("bytes=0-1,5-6"),
            Some("items=0-1"),
            Some("bytes=abc"),
            Some("bytes=5-1"),
            Some("bytes=-"),
            Some("bytes=+1-2"),
            Some("bytes=99999999999999999999999-"),
        ] {
            assert_eq!(resolve(header, 1000), Full, "{header:?}");
        }
    }
}
