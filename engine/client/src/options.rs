//! What a client may do: SASL mechanisms it accepts, whether it enables XEP-0198, and the
//! largest stanza it frames.
//!
//! What it does not do: credentials (see `account`), anything per stream.

use rookery_sasl::Mechanism;

/// Per-client settings (a few bytes are kept per client; the stanza limit lives in the
/// framer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Largest stanza the client frames; a larger one ends the stream (`ProtocolError`).
    pub max_stanza_bytes: usize,
    pub mechanisms: Mechanisms,
    pub sm: SmMode,
}

impl Default for Options {
    /// 64 KiB stanzas, every mechanism this crate speaks without TLS, no XEP-0198.
    fn default() -> Options {
        Options {
            max_stanza_bytes: 1 << 16,
            mechanisms: Mechanisms::ALL,
            sm: SmMode::Off,
        }
    }
}

/// Whether the client enables XEP-0198 stream management when the server offers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmMode {
    Off,
    /// `<enable/>`: counters and acknowledgements, no resumption.
    Enable,
    /// `<enable resume='true'/>`: the session can be resumed on a later stream.
    EnableResumable,
}

/// A set of SASL mechanisms the client accepts (chosen strongest first among those the
/// server offers). `-PLUS` mechanisms need TLS channel binding and are never chosen yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mechanisms(u8);

impl Mechanisms {
    pub const NONE: Mechanisms = Mechanisms(0);
    pub const PLAIN: Mechanisms = Mechanisms(1 << 0);
    pub const SCRAM_SHA_1: Mechanisms = Mechanisms(1 << 1);
    pub const SCRAM_SHA_256: Mechanisms = Mechanisms(1 << 2);
    /// Every mechanism usable without TLS.
    pub const ALL: Mechanisms = Mechanisms(0b111);

    /// This set plus `other`.
    pub const fn with(self, other: Mechanisms) -> Mechanisms {
        Mechanisms(self.0 | other.0)
    }

    pub fn contains(self, mechanism: Mechanism) -> bool {
        let bit = match mechanism {
            Mechanism::Plain => Mechanisms::PLAIN,
            Mechanism::ScramSha1 => Mechanisms::SCRAM_SHA_1,
            Mechanism::ScramSha256 => Mechanisms::SCRAM_SHA_256,
            Mechanism::ScramSha1Plus | Mechanism::ScramSha256Plus => return false,
        };
        self.0 & bit.0 != 0
    }

    /// The strongest mechanism of this set that `offered` names.
    pub fn choose<'a>(self, offered: impl Iterator<Item = &'a str> + Clone) -> Option<Mechanism> {
        Mechanism::ALL
            .into_iter()
            .filter(|&m| self.contains(m))
            .find(|m| offered.clone().any(|name| name == m.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chooses_the_strongest_allowed_offer() {
        let offer = [
            "PLAIN",
            "SCRAM-SHA-1",
            "SCRAM-SHA-256",
            "SCRAM-SHA-256-PLUS",
        ];
        assert_eq!(
            Mechanisms::ALL.choose(offer.iter().copied()),
            Some(Mechanism::ScramSha256)
        );
        assert_eq!(
            Mechanisms::PLAIN
                .with(Mechanisms::SCRAM_SHA_1)
                .choose(offer.iter().copied()),
            Some(Mechanism::ScramSha1)
        );
        assert_eq!(Mechanisms::PLAIN.choose(["SCRAM-SHA-1"].into_iter()), None);
        assert_eq!(Mechanisms::NONE.choose(offer.iter().copied()), None);
    }
}
