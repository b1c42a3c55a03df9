//! Content types: checking the one a slot request names, and the policy's allow-list.
//!
//! What it does: [`check`] accepts `type/subtype` with optional `; parameters`, at most
//! [`MAX_CONTENT_TYPE_BYTES`] of printable ASCII, type and subtype made of RFC 6838
//! restricted-name characters; [`essence`] is the lower-cased `type/subtype` that comparisons
//! use (a client's PUT may differ in case or parameters: `image/JPEG` is `image/jpeg`).
//! [`ContentTypes`] is the policy: any type, or a list of essences and `type/*` wildcards.
//!
//! What it does not do: sniff file contents, or know which types are dangerous to serve; the
//! HTTP side serves every type with `nosniff` and a `default-src 'none'` CSP.
//!
//! Invariants: a checked content type contains no control character, so it is safe in an HTTP
//! header and a sidecar line.

/// The content type assumed when a slot request names none (XEP-0363 section 7 allows it).
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// Longest content type accepted (type and subtype are at most 127 characters each in
/// RFC 6838; this leaves room for a parameter such as a charset).
pub const MAX_CONTENT_TYPE_BYTES: usize = 255;

/// Checks a content type's syntax; `None` if it is not one.
pub fn check(content_type: &str) -> Option<&str> {
    if content_type.is_empty()
        || content_type.len() > MAX_CONTENT_TYPE_BYTES
        || !content_type
            .bytes()
            .all(|b| b == b' ' || b.is_ascii_graphic())
    {
        return None;
    }
    let (kind, subtype) = essence_parts(content_type)?;
    (is_restricted_name(kind) && is_restricted_name(subtype)).then_some(content_type)
}

/// The lower-cased `type/subtype` of a checked content type.
pub fn essence(content_type: &str) -> String {
    let end = content_type.find(';').unwrap_or(content_type.len());
    content_type[..end].trim().to_ascii_lowercase()
}

fn essence_parts(content_type: &str) -> Option<(&str, &str)> {
    let end = content_type.find(';').unwrap_or(content_type.len());
    content_type[..end].trim().split_once('/')
}

/// RFC 6838 section 4.2 restricted-name: 1 to 127 characters, starting alphanumeric.
fn is_restricted_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=127).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#' | b'$' | b'&' | b'-' | b'^' | b'_' | b'.' | b'+'
                )
        })
}

/// Which content types may be uploaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContentTypes {
    /// Every syntactically valid type.
    Any,
    /// Only these: essences (`image/png`) or wildcards (`image/*`), compared case-insensitively.
    Only(Vec<String>),
}

impl ContentTypes {
    /// Whether a checked content type is allowed.
    pub fn allows(&self, content_type: &str) -> bool {
        let ContentTypes::Only(list) = self else {
            return true;
        };
        let essence = essence(content_type);
        let kind = essence.split('/').next().unwrap_or("");
        list.iter().any(|entry| {
            let entry = entry.trim().to_ascii_lowercase();
            match entry.strip_suffix("/*") {
                Some(entry_kind) => entry_kind == kind,
                None => entry == essence,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_syntax() {
        assert!(check("image/jpeg").is_some());
        assert!(check("text/plain; charset=utf-8").is_some());
        assert!(
            check("application/vnd.openxmlformats-officedocument.wordprocessingml.document")
                .is_some()
        );
        assert!(check("").is_none());
        assert!(check("jpeg").is_none());
        assert!(check("image/").is_none());
        assert!(check("/jpeg").is_none());
        assert!(check("image/jpeg\r\nX-Evil: 1").is_none());
        assert!(check("imäge/jpeg").is_none());
        assert!(check(&format!("image/{}", "x".repeat(128))).is_none());
    }

    #[test]
    fn essence_ignores_case_and_parameters() {
        assert_eq!(essence("Image/JPEG"), "image/jpeg");
        assert_eq!(essence("text/plain ; charset=UTF-8"), "text/plain");
    }

    #[test]
    fn allow_list_matches_essences_and_wildcards() {
        let only = ContentTypes::Only(vec!["image/*".into(), "Video/MP4".into()]);
        assert!(only.allows("image/png"));
        assert!(only.allows("IMAGE/webp"));
        assert!(only.allows("video/mp4; codecs=avc1"));
        assert!(!only.allows("video/webm"));
        assert!(!only.allows("text/html"));
        assert!(!only.allows(DEFAULT_CONTENT_TYPE));
        assert!(ContentTypes::Any.allows("text/html"));
    }
}
