//! Why the router closes a stream: the RFC 6120 section 4.9.3 condition it sends
//! (`StreamError`), what becomes of a XEP-0198 session then (`SessionEnd`), and which side
//! caused the close (`Cause`, carried by every `Effects::close` so the server counts closes
//! per cause).
//!
//! What it does not do: write bytes (see `replies::stream_error`) or close anything (the
//! stream layer does, see `stream`).
//!
//! Invariants: `end` is an exhaustive match, so a new condition cannot silently fall into
//! "detach"; every close the router asks for carries a cause.
//!
//! Choice, resume-or-terminate (XEP-0198 section 5: a session is resumable after its stream
//! "is terminated unexpectedly"): conditions that say the *bytes or the transport* failed
//! detach (the session is sound and the client may resume it): a timeout, unparsable or
//! restricted XML (`not-well-formed` included: it is what a client crashing mid-write, a
//! truncating proxy or a corrupting middlebox produces, and resuming costs nothing the
//! client could abuse: its unacked stanzas are resent, nothing is acknowledged twice), an
//! unsupported stanza type, server-side trouble. Conditions that say the *session* is over
//! terminate: it was replaced (`conflict`), the server goes down or moves it (`system-
//! shutdown`, `see-other-host`, `reset`, `host-gone`, `host-unknown`), the client broke a
//! rule that resuming would only repeat (`policy-violation`: floods, queue overflow, too
//! many SASL failures; `undefined-condition`: an `<a h>` acknowledging unsent stanzas), or
//! it is not authorized.

/// A stream error condition (RFC 6120 section 4.9.3), in the RFC's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamError {
    BadFormat,
    BadNamespacePrefix,
    Conflict,
    ConnectionTimeout,
    HostGone,
    HostUnknown,
    ImproperAddressing,
    InternalServerError,
    InvalidFrom,
    InvalidNamespace,
    InvalidXml,
    NotAuthorized,
    NotWellFormed,
    PolicyViolation,
    RemoteConnectionFailed,
    Reset,
    ResourceConstraint,
    RestrictedXml,
    SeeOtherHost,
    SystemShutdown,
    UndefinedCondition,
    UnsupportedEncoding,
    UnsupportedFeature,
    UnsupportedStanzaType,
    UnsupportedVersion,
}

/// What becomes of a stream-managed session when its stream ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// Keep it for resumption, if resumption was enabled.
    Detach,
    /// End it now.
    Terminate,
    /// The session lives on, on another conn (a resumption took it over): the old conn goes
    /// quietly, and nothing of the session ends (presence, rooms).
    Resumed,
}

/// Which side caused a close: labels the server's close counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cause {
    /// The client: its input, its silence, its closing of the stream, its limits.
    Peer,
    /// The operating system or the transport (the server's own closes; the router never
    /// sees OS errors).
    Os,
    /// A configured limit refused the conn before it did anything (per-address budget).
    Config,
    /// This shard: shutdown, a session replaced by a newer one, an internal failure.
    Shard,
}

impl Cause {
    /// Every cause, for exporters.
    pub const ALL: [Cause; 4] = [Cause::Peer, Cause::Os, Cause::Config, Cause::Shard];

    /// The cause's position in `ALL` (for per-cause counter arrays).
    pub fn index(self) -> usize {
        match self {
            Cause::Peer => 0,
            Cause::Os => 1,
            Cause::Config => 2,
            Cause::Shard => 3,
        }
    }

    /// A lowercase name for metric labels and logs.
    pub fn name(self) -> &'static str {
        match self {
            Cause::Peer => "peer",
            Cause::Os => "os",
            Cause::Config => "config",
            Cause::Shard => "shard",
        }
    }
}

/// A stream error as it goes out: the condition, an optional `<text/>`, and the cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub error: StreamError,
    /// Human text for the `<text/>` child (none today: the bytes stay as before).
    pub text: Option<&'static str>,
    pub cause: Cause,
}

impl From<StreamError> for Fault {
    fn from(error: StreamError) -> Fault {
        Fault {
            error,
            text: None,
            cause: error.cause(),
        }
    }
}

impl StreamError {
    /// Every condition, in RFC 6120 order.
    pub const ALL: [StreamError; 25] = [
        StreamError::BadFormat,
        StreamError::BadNamespacePrefix,
        StreamError::Conflict,
        StreamError::ConnectionTimeout,
        StreamError::HostGone,
        StreamError::HostUnknown,
        StreamError::ImproperAddressing,
        StreamError::InternalServerError,
        StreamError::InvalidFrom,
        StreamError::InvalidNamespace,
        StreamError::InvalidXml,
        StreamError::NotAuthorized,
        StreamError::NotWellFormed,
        StreamError::PolicyViolation,
        StreamError::RemoteConnectionFailed,
        StreamError::Reset,
        StreamError::ResourceConstraint,
        StreamError::RestrictedXml,
        StreamError::SeeOtherHost,
        StreamError::SystemShutdown,
        StreamError::UndefinedCondition,
        StreamError::UnsupportedEncoding,
        StreamError::UnsupportedFeature,
        StreamError::UnsupportedStanzaType,
        StreamError::UnsupportedVersion,
    ];

    /// The element name inside `<stream:error>`.
    pub fn condition(self) -> &'static str {
        use StreamError::*;
        match self {
            BadFormat => "bad-format",
            BadNamespacePrefix => "bad-namespace-prefix",
            Conflict => "conflict",
            ConnectionTimeout => "connection-timeout",
            HostGone => "host-gone",
            HostUnknown => "host-unknown",
            ImproperAddressing => "improper-addressing",
            InternalServerError => "internal-server-error",
            InvalidFrom => "invalid-from",
            InvalidNamespace => "invalid-namespace",
            InvalidXml => "invalid-xml",
            NotAuthorized => "not-authorized",
            NotWellFormed => "not-well-formed",
            PolicyViolation => "policy-violation",
            RemoteConnectionFailed => "remote-connection-failed",
            Reset => "reset",
            ResourceConstraint => "resource-constraint",
            RestrictedXml => "restricted-xml",
            SeeOtherHost => "see-other-host",
            SystemShutdown => "system-shutdown",
            UndefinedCondition => "undefined-condition",
            UnsupportedEncoding => "unsupported-encoding",
            UnsupportedFeature => "unsupported-feature",
            UnsupportedStanzaType => "unsupported-stanza-type",
            UnsupportedVersion => "unsupported-version",
        }
    }

    /// Resume or terminate the stream's XEP-0198 session (see the module docs).
    pub fn end(self) -> SessionEnd {
        use StreamError::*;
        match self {
            BadFormat
            | BadNamespacePrefix
            | ConnectionTimeout
            | ImproperAddressing
            | InternalServerError
            | InvalidFrom
            | InvalidNamespace
            | InvalidXml
            | NotWellFormed
            | RemoteConnectionFailed
            | ResourceConstraint
            | RestrictedXml
            | UnsupportedEncoding
            | UnsupportedFeature
            | UnsupportedStanzaType
            | UnsupportedVersion => SessionEnd::Detach,
            Conflict | HostGone | HostUnknown | NotAuthorized | PolicyViolation | Reset
            | SeeOtherHost | SystemShutdown | UndefinedCondition => SessionEnd::Terminate,
        }
    }

    /// Who causes this condition unless the caller knows better (`Fault::cause`).
    pub fn cause(self) -> Cause {
        use StreamError::*;
        match self {
            Conflict
            | HostGone
            | InternalServerError
            | Reset
            | ResourceConstraint
            | SeeOtherHost
            | SystemShutdown
            | RemoteConnectionFailed => Cause::Shard,
            _ => Cause::Peer,
        }
    }

    /// The fault with another cause.
    pub fn by(self, cause: Cause) -> Fault {
        Fault {
            cause,
            ..Fault::from(self)
        }
    }

    /// The condition of a framer error.
    pub fn of_frame(error: &rookery_proto::FrameError) -> StreamError {
        use rookery_proto::FrameError;
        match error {
            FrameError::NotWellFormed(_) => StreamError::NotWellFormed,
            FrameError::RestrictedXml(_) => StreamError::RestrictedXml,
            FrameError::TooLarge => StreamError::PolicyViolation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_are_the_rfc_names_and_distinct() {
        let mut names: Vec<&str> = StreamError::ALL.iter().map(|e| e.condition()).collect();
        assert_eq!(names[0], "bad-format");
        assert_eq!(names[24], "unsupported-version");
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 25);
    }

    #[test]
    fn the_session_ends_as_chosen() {
        use StreamError::*;
        for detach in [
            ConnectionTimeout,
            NotWellFormed,
            UnsupportedStanzaType,
            RestrictedXml,
        ] {
            assert_eq!(detach.end(), SessionEnd::Detach, "{detach:?}");
        }
        for terminate in [
            Conflict,
            SystemShutdown,
            PolicyViolation,
            UndefinedCondition,
        ] {
            assert_eq!(terminate.end(), SessionEnd::Terminate, "{terminate:?}");
        }
    }

    #[test]
    fn frame_errors_map_to_their_conditions() {
        use rookery_proto::FrameError;
        for error in [
            FrameError::NotWellFormed("x"),
            FrameError::RestrictedXml("y"),
            FrameError::TooLarge,
        ] {
            assert_eq!(StreamError::of_frame(&error).condition(), error.condition());
        }
    }

    #[test]
    fn causes_default_by_condition_and_can_be_overridden() {
        assert_eq!(Fault::from(StreamError::SystemShutdown).cause, Cause::Shard);
        assert_eq!(Fault::from(StreamError::NotWellFormed).cause, Cause::Peer);
        let refused = StreamError::PolicyViolation.by(Cause::Config);
        assert_eq!(
            (refused.error, refused.cause),
            (StreamError::PolicyViolation, Cause::Config)
        );
        let names: Vec<&str> = Cause::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names, ["peer", "os", "config", "shard"]);
        for (at, cause) in Cause::ALL.iter().enumerate() {
            assert_eq!(cause.index(), at);
        }
    }
}
