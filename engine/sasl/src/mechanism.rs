//! The SASL mechanisms the crate speaks and their names on the wire.
//!
//! What it does not do: decide which mechanisms a server advertises (that depends on TLS and
//! on configuration: the stream layer's job); [`Mechanism::ALL`] gives the preference order.

use crate::crypto::ScramHash;

/// A SASL mechanism (RFC 4616 PLAIN, RFC 5802 SCRAM-SHA-1, RFC 7677 SCRAM-SHA-256, each SCRAM
/// also in its channel-binding `-PLUS` form, bound with RFC 9266 `tls-exporter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mechanism {
    Plain,
    ScramSha1,
    ScramSha1Plus,
    ScramSha256,
    ScramSha256Plus,
}

impl Mechanism {
    /// Every mechanism, strongest first: the order to advertise and to choose in.
    pub const ALL: [Mechanism; 5] = [
        Mechanism::ScramSha256Plus,
        Mechanism::ScramSha1Plus,
        Mechanism::ScramSha256,
        Mechanism::ScramSha1,
        Mechanism::Plain,
    ];

    /// The IANA-registered name, as in `<mechanism>` and `<auth mechanism='...'>`.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::ScramSha1Plus => "SCRAM-SHA-1-PLUS",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
        }
    }

    /// The mechanism with this exact name (SASL names are upper case; no case folding).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Whether the mechanism binds the TLS channel (`-PLUS`): it may only be offered on a
    /// TLS stream whose tls-exporter value is known.
    pub fn needs_channel_binding(self) -> bool {
        matches!(self, Mechanism::ScramSha1Plus | Mechanism::ScramSha256Plus)
    }

    /// The SCRAM hash, or `None` for PLAIN.
    pub fn scram_hash(self) -> Option<ScramHash> {
        match self {
            Mechanism::Plain => None,
            Mechanism::ScramSha1 | Mechanism::ScramSha1Plus => Some(ScramHash::Sha1),
            Mechanism::ScramSha256 | Mechanism::ScramSha256Plus => Some(ScramHash::Sha256),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_exact() {
        for mechanism in Mechanism::ALL {
            assert_eq!(Mechanism::from_name(mechanism.name()), Some(mechanism));
        }
        assert_eq!(Mechanism::from_name("scram-sha-1"), None);
        assert_eq!(Mechanism::from_name("SCRAM-SHA-512"), None);
        assert_eq!(Mechanism::from_name(""), None);
    }

    #[test]
    fn only_plus_mechanisms_need_channel_binding() {
        let plus: Vec<Mechanism> = Mechanism::ALL
            .into_iter()
            .filter(|m| m.needs_channel_binding())
            .collect();
        assert_eq!(plus, [Mechanism::ScramSha256Plus, Mechanism::ScramSha1Plus]);
        assert!(plus.iter().all(|m| m.name().ends_with("-PLUS")));
        assert_eq!(Mechanism::Plain.scram_hash(), None);
        assert_eq!(Mechanism::ScramSha1Plus.scram_hash(), Some(ScramHash::Sha1));
        assert_eq!(Mechanism::ScramSha256.scram_hash(), Some(ScramHash::Sha256));
    }
}
