//! Why a slot request was refused, and the XEP-0363 error that says so.
//!
//! What it does: [`SlotRefusal`] names each reason; [`SlotRefusal::stanza_error`] maps it to
//! the error type, condition and text XEP-0363 section 5 calls for, and
//! [`StanzaError::to_xml`] renders the `<error/>` element (with `<file-too-large>` and
//! `<max-file-size>` when the file is too large) for the router to put in its `iq` reply.
//!
//! What it does not do: write the `iq` around it (the router echoes the request and sets
//! the addresses).
//!
//! Mapping: file too large -> `modify`/`not-acceptable` + `<file-too-large>`; type not allowed
//! -> `modify`/`not-acceptable`; quota or too many open slots -> `wait`/`resource-constraint`
//! (no `<retry/>`: when room frees depends on uploads and deletions we cannot foresee); bad
//! file name or content type -> `modify`/`bad-request`.

use std::fmt::{self, Write as _};

use crate::filename::FilenameError;

/// The namespace of XEP-0363 elements.
pub const NS_HTTP_UPLOAD: &str = "urn:xmpp:http:upload:0";
const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// Why no slot was issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotRefusal {
    BadFilename(FilenameError),
    /// The `content-type` attribute is not a media type.
    BadContentType,
    FileTooLarge {
        max_file_bytes: u64,
    },
    ContentTypeNotAllowed {
        essence: String,
    },
    QuotaExceeded {
        quota_bytes: u64,
        used_bytes: u64,
        requested_bytes: u64,
    },
    TooManyOpenSlots {
        max_open_slots: u32,
    },
}

/// `<error type='...'>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    Modify,
    Wait,
}

/// The defined condition inside the error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    BadRequest,
    NotAcceptable,
    ResourceConstraint,
}

/// An XMPP stanza error, as data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StanzaError {
    pub error_type: ErrorType,
    pub condition: Condition,
    /// Human-readable; never contains what the client sent.
    pub text: String,
    /// Set for a file too large: the `<file-too-large><max-file-size>` extension.
    pub max_file_bytes: Option<u64>,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Modify => "modify",
            ErrorType::Wait => "wait",
        }
    }
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::BadRequest => "bad-request",
            Condition::NotAcceptable => "not-acceptable",
            Condition::ResourceConstraint => "resource-constraint",
        }
    }
}

impl SlotRefusal {
    /// The XEP-0363 error for this refusal.
    pub fn stanza_error(&self) -> StanzaError {
        let (error_type, condition, max_file_bytes) = match self {
            SlotRefusal::BadFilename(_) | SlotRefusal::BadContentType => {
                (ErrorType::Modify, Condition::BadRequest, None)
            }
            SlotRefusal::FileTooLarge { max_file_bytes } => (
                ErrorType::Modify,
                Condition::NotAcceptable,
                Some(*max_file_bytes),
            ),
            SlotRefusal::ContentTypeNotAllowed { .. } => {
                (ErrorType::Modify, Condition::NotAcceptable, None)
            }
            SlotRefusal::QuotaExceeded { .. } | SlotRefusal::TooManyOpenSlots { .. } => {
                (ErrorType::Wait, Condition::ResourceConstraint, None)
            }
        };
        StanzaError {
            error_type,
            condition,
            text: self.to_string(),
            max_file_bytes,
        }
    }

    /// A short label for metrics (`reason="..."`).
    pub fn label(&self) -> &'static str {
        match self {
            SlotRefusal::BadFilename(_) => "bad_filename",
            SlotRefusal::BadContentType => "bad_content_type",
            SlotRefusal::FileTooLarge { .. } => "file_too_large",
            SlotRefusal::ContentTypeNotAllowed { .. } => "content_type_not_allowed",
            SlotRefusal::QuotaExceeded { .. } => "quota",
            SlotRefusal::TooManyOpenSlots { .. } => "open_slots",
        }
    }
}

impl fmt::Display for SlotRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlotRefusal::BadFilename(e) => write!(f, "Bad file name: {e}"),
            SlotRefusal::BadContentType => f.write_str("The content-type is not a media type"),
            SlotRefusal::FileTooLarge { max_file_bytes } => write!(
                f,
                "File too large. The maximum file size is {max_file_bytes} bytes"
            ),
            SlotRefusal::ContentTypeNotAllowed { .. } => {
                f.write_str("Files of this content type may not be uploaded here")
            }
            SlotRefusal::QuotaExceeded {
                quota_bytes,
                used_bytes,
                requested_bytes,
            } => write!(
                f,
                "Quota reached: {used_bytes} of {quota_bytes} bytes used, \
                 {requested_bytes} more requested"
            ),
            SlotRefusal::TooManyOpenSlots { max_open_slots } => write!(
                f,
                "Too many uploads in progress (at most {max_open_slots}); finish or wait for \
                 them to expire"
            ),
        }
    }
}

impl std::error::Error for SlotRefusal {}

impl StanzaError {
    /// The `<error/>` element.
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(256);
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "<error type='{}'><{} xmlns='{NS_STANZAS}'/><text xmlns='{NS_STANZAS}'>",
            self.error_type.as_str(),
            self.condition.as_str()
        );
        escape_into(&self.text, &mut out);
        out.push_str("</text>");
        if let Some(max) = self.max_file_bytes {
            let _ = write!(
                out,
                "<file-too-large xmlns='{NS_HTTP_UPLOAD}'><max-file-size>{max}</max-file-size>\
                 </file-too-large>"
            );
        }
        out.push_str("</error>");
        out
    }
}

fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_too_large_carries_the_limit() {
        let error = SlotRefusal::FileTooLarge {
            max_file_bytes: 20_000,
        }
        .stanza_error();
        assert_eq!(error.error_type, ErrorType::Modify);
        assert_eq!(error.condition, Condition::NotAcceptable);
        assert_eq!(
            error.to_xml(),
            "<error type='modify'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>File too large. The maximum file \
             size is 20000 bytes</text><file-too-large xmlns='urn:xmpp:http:upload:0'>\
             <max-file-size>20000</max-file-size></file-too-large></error>"
        );
    }

    #[test]
    fn conditions_follow_the_xep() {
        let quota = SlotRefusal::QuotaExceeded {
            quota_bytes: 10,
            used_bytes: 8,
            requested_bytes: 5,
        };
        let error = quota.stanza_error();
        assert_eq!(
            (error.error_type, error.condition),
            (ErrorType::Wait, Condition::ResourceConstraint)
        );
        assert!(!error.to_xml().contains("file-too-large"));
        let not_allowed = SlotRefusal::ContentTypeNotAllowed {
            essence: "text/html".into(),
        };
        assert_eq!(
            not_allowed.stanza_error().condition,
            Condition::NotAcceptable
        );
        let bad = SlotRefusal::BadFilename(FilenameError::Empty).stanza_error();
        assert_eq!(
            (bad.error_type, bad.condition),
            (ErrorType::Modify, Condition::BadRequest)
        );
        assert!(bad
            .to_xml()
            .starts_with("<error type='modify'><bad-request "));
    }
}
