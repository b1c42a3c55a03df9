//! Which web pages may open `/xmpp-websocket` from a browser: the `Origin` check of the
//! WebSocket upgrade (`--ws-allowed-origin`).
//!
//! What it does: with no origins configured (the default) every upgrade passes. With a list,
//! an upgrade whose `Origin` header is not on it is refused with 403 and a body naming the
//! flag (`rookery_http_refusals_total{reason="websocket_origin"}`). An upgrade without an
//! `Origin` header passes: browsers always send one (RFC 6455 4.1, 10.2), and a client that
//! is not a browser could send any value anyway, so its absence proves nothing.
//!
//! Why off by default: XMPP authenticates with SASL inside the stream, never with cookies or
//! credentials a browser adds by itself, so a page from another origin gains nothing that the
//! user's own client lacks. An operator who wants its service used only from its own web
//! client turns it on.
//!
//! What it does not do: wildcards or patterns (list each origin), CORS for the upload routes
//! (`routes` allows any origin there: the signed URLs are the capability).
//!
//! Invariants: origins compare as their ASCII-lowercase serialization `scheme://host[:port]`
//! (RFC 6454 6.1, without a trailing `/`), normalized once at start; at most
//! [`MAX_ALLOWED_ORIGINS`] are kept.

/// The most origins `--ws-allowed-origin` may list.
pub const MAX_ALLOWED_ORIGINS: usize = 256;
/// The longest origin accepted in the list.
const MAX_ORIGIN_BYTES: usize = 512;

/// The origins allowed to upgrade; empty allows any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedOrigins {
    origins: Vec<String>,
}

impl AllowedOrigins {
    /// Every origin allowed (the default).
    pub fn any() -> AllowedOrigins {
        AllowedOrigins::default()
    }

    /// Parses the configured list (`https://chat.example.org`, `http://127.0.0.1:8080`); the
    /// error names the entry and the form expected.
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<AllowedOrigins, String> {
        if list.len() > MAX_ALLOWED_ORIGINS {
            return Err(format!(
                "{} origins listed; at most {MAX_ALLOWED_ORIGINS}",
                list.len()
            ));
        }
        let mut origins = Vec::with_capacity(list.len());
        for entry in list {
            let origin = normalize(entry.as_ref()).ok_or_else(|| {
                format!(
                    "{:?} is not an origin: write scheme://host[:port], e.g. \
                     https://chat.example.org (no path)",
                    entry.as_ref()
                )
            })?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(AllowedOrigins { origins })
    }

    /// True when any origin may upgrade.
    pub fn is_any(&self) -> bool {
        self.origins.is_empty()
    }

    /// Whether an upgrade with this `Origin` header value (`None`: no header) may proceed.
    pub fn allows(&self, origin: Option<&[u8]>) -> bool {
        if self.is_any() {
            return true;
        }
        let Some(origin) = origin else {
            return true;
        };
        let origin = origin.strip_suffix(b"/").unwrap_or(origin);
        self.origins
            .iter()
            .any(|allowed| allowed.as_bytes().eq_ignore_ascii_case(origin))
    }
}

/// `scheme://authority` lowercased without a trailing `/`, or `None` if `text` is not one.
fn normalize(text: &str) -> Option<String> {
    let text = text.trim();
    let text = text.strip_suffix('/').unwrap_or(text);
    if text.len() > MAX_ORIGIN_BYTES {
        return None;
    }
    let (scheme, authority) = text.split_once("://")?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let authority_ok = !authority.is_empty()
        && authority
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '/' | '?' | '#' | '@' | ','));
    (scheme_ok && authority_ok).then(|| text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_list_allows_any_origin_and_none() {
        let any = AllowedOrigins::any();
        assert!(any.allows(Some(b"https://elsewhere.example")));
        assert!(any.allows(None));
    }

    #[test]
    fn a_list_allows_its_origins_in_any_case_and_requests_without_origin() {
        let list =
            AllowedOrigins::parse(&["https://Chat.Example.org/", "http://127.0.0.1:8080"]).unwrap();
        assert!(list.allows(Some(b"https://chat.example.org")));
        assert!(list.allows(Some(b"HTTPS://CHAT.EXAMPLE.ORG")));
        assert!(list.allows(Some(b"http://127.0.0.1:8080")));
        assert!(list.allows(None), "not a browser: nothing to check");
        for other in [
            &b"http://chat.example.org"[..],
            b"https://chat.example.org:8443",
            b"https://evil.example",
            b"http://127.0.0.1",
            b"null",
            b"",
        ] {
            assert!(!list.allows(Some(other)), "{other:?}");
        }
    }

    #[test]
    fn entries_that_are_not_origins_are_refused_with_the_form_expected() {
        for bad in [
            "chat.example.org",
            "https://",
            "https://chat.example.org/app",
            "https://a.example,https://b.example",
            "https://user@chat.example.org",
            "://chat.example.org",
            "1http://x",
        ] {
            let error = AllowedOrigins::parse(&[bad]).unwrap_err();
            assert!(error.contains("scheme://host[:port]"), "{bad}: {error}");
        }
        let many: Vec<String> = (0..=MAX_ALLOWED_ORIGINS)
            .map(|i| format!("https://{i}.example"))
            .collect();
        assert!(AllowedOrigins::parse(&many).is_err());
    }
}
