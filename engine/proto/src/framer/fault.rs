//! The framer's one-byte error cause, and its mapping to the public [`FrameError`].
//!
//! Why a separate enum: `Framer` stores its fatal error in one byte (`Option<Fault>`) instead
//! of a 24-byte `Option<FrameError>`, which keeps the framer within 64 bytes.

use super::FrameError;

/// The cause of a fatal framing error, stored in one byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    TooLarge,
    TextBeforeHeader,
    TextAtStreamLevel,
    BadName,
    BadAttr,
    MissingWs,
    Unquoted,
    LtInAttr,
    BadTag,
    BadEndTag,
    Mismatch,
    Ctrl,
    BadUtf8,
    NonChar,
    BadCharRef,
    BareAmp,
    CdataEndInText,
    CdataAtStreamLevel,
    BadMarkup,
    EmptyStream,
    AfterClose,
    Comment,
    Pi,
    Dtd,
    Undeclared,
    DupAttr,
    UnboundPrefix,
    BadNsDecl,
    ReservedPrefix,
}

impl Fault {
    pub(crate) fn error(self) -> FrameError {
        use FrameError::{NotWellFormed as Nwf, RestrictedXml as Rx};
        match self {
            Fault::TooLarge => FrameError::TooLarge,
            Fault::TextBeforeHeader => Nwf("text before the stream header"),
            Fault::TextAtStreamLevel => Nwf("text at stream level"),
            Fault::BadName => Nwf("invalid name"),
            Fault::BadAttr => Nwf("malformed attribute"),
            Fault::MissingWs => Nwf("missing whitespace between attributes"),
            Fault::Unquoted => Nwf("unquoted attribute value"),
            Fault::LtInAttr => Nwf("'<' in attribute value"),
            Fault::BadTag => Nwf("malformed tag"),
            Fault::BadEndTag => Nwf("malformed end tag"),
            Fault::Mismatch => Nwf("end tag does not match start tag"),
            Fault::Ctrl => Nwf("forbidden control character"),
            Fault::BadUtf8 => Nwf("invalid UTF-8"),
            Fault::NonChar => Nwf("character not allowed in XML"),
            Fault::BadCharRef => Nwf("invalid character reference"),
            Fault::BareAmp => Nwf("'&' not starting a reference"),
            Fault::CdataEndInText => Nwf("']]>' in text"),
            Fault::CdataAtStreamLevel => Nwf("CDATA at stream level"),
            Fault::BadMarkup => Nwf("malformed markup declaration"),
            Fault::EmptyStream => Nwf("empty stream element"),
            Fault::AfterClose => Nwf("data after the stream close"),
            Fault::DupAttr => Nwf("duplicate attribute"),
            Fault::UnboundPrefix => Nwf("namespace prefix not declared in the stanza"),
            Fault::BadNsDecl => Nwf("illegal namespace declaration"),
            Fault::ReservedPrefix => Nwf("reserved prefix xml or xmlns on an element"),
            Fault::Comment => Rx("comment"),
            Fault::Pi => Rx("processing instruction"),
            Fault::Dtd => Rx("DTD or markup declaration"),
            Fault::Undeclared => Rx("undeclared entity"),
        }
    }
}
