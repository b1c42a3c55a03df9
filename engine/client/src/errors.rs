//! Stream errors (RFC 6120 4.9): the condition, the optional text, and for `see-other-host`
//! (4.9.3.19) the host to reconnect to.
//!
//! What it does not do: reconnect (the caller opens a conn to the host and starts a new
//! stream), resolve names, or check that the host is in the same cluster.

use std::borrow::Cow;

use rookery_proto::{ns, StanzaView};

use crate::text::element_text;

/// A `<stream:error/>` the server sent.
#[derive(Debug, PartialEq, Eq)]
pub struct StreamError<'a> {
    /// The defined condition (`undefined-condition` when none is given).
    pub condition: &'a str,
    /// The `<text/>` child, if any.
    pub text: Option<Cow<'a, str>>,
    /// For `see-other-host`: the element's text, `host`, `host:port` or `[v6]:port` (see
    /// [`split_host_port`]).
    pub other_host: Option<Cow<'a, str>>,
}

impl<'a> StreamError<'a> {
    /// Reads a `<stream:error/>` element.
    pub fn parse(view: &StanzaView<'a>) -> StreamError<'a> {
        let mut error = StreamError {
            condition: "undefined-condition",
            text: None,
            other_host: None,
        };
        let mut found = false;
        for child in view.children() {
            if child.xmlns != Some(ns::STREAMS_ERRORS) {
                continue; // application-specific conditions are not the defined one
            }
            match child.local_name {
                "text" => error.text = element_text(child.bytes),
                name if !found => {
                    found = true;
                    error.condition = name;
                    if name == "see-other-host" {
                        error.other_host = element_text(child.bytes)
                            .map(|host| trim_cow(host))
                            .filter(|host| !host.is_empty());
                    }
                }
                _ => {}
            }
        }
        error
    }
}

fn trim_cow(text: Cow<'_, str>) -> Cow<'_, str> {
    match text {
        Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
        Cow::Owned(s) => Cow::Owned(s.trim().to_owned()),
    }
}

/// Splits a `see-other-host` value into host and port: `host`, `host:5222`, `[::1]:5222`,
/// `[::1]`. `None` for an empty host, an unclosed bracket, or a port that is not a number.
pub fn split_host_port(value: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else if value.matches(':').count() == 1 {
        let (host, port) = value.split_once(':')?;
        (host, Some(port))
    } else {
        (value, None) // a bare name, or an IPv6 address without brackets
    };
    if host.is_empty() {
        return None;
    }
    match port {
        None => Some((host, None)),
        Some(port) => Some((host, Some(port.parse().ok()?))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_split() {
        assert_eq!(split_host_port("b.example"), Some(("b.example", None)));
        assert_eq!(
            split_host_port("b.example:5223"),
            Some(("b.example", Some(5223)))
        );
        assert_eq!(
            split_host_port("[2001:db8::1]:5222"),
            Some(("2001:db8::1", Some(5222)))
        );
        assert_eq!(split_host_port("[::1]"), Some(("::1", None)));
        assert_eq!(split_host_port("::1"), Some(("::1", None)));
        assert_eq!(split_host_port("b.example:x"), None);
        assert_eq!(split_host_port("[::1"), None);
        assert_eq!(split_host_port(":5222"), None);
        assert_eq!(split_host_port(""), None);
    }
}
