//! Who logs in: the [`Account`] the client asks for credentials when it needs them, and
//! [`Login`], a plain owned account for tests and small tools.
//!
//! Credentials are asked for once per SASL exchange and not kept by the client, so a caller
//! that derives them (the load generator computes a token per user) holds nothing per
//! client. What it does not do: randomness; a SCRAM nonce is the account's to supply.

use std::borrow::Cow;

use rookery_sasl::nonce_from_random;

/// The caller's side of a login, asked at the step that needs it.
pub trait Account {
    /// The server's domain (the stream header's `to`, at start and at each restart).
    fn domain(&self) -> &str;
    /// The SASL authentication identity (the JID's local part for XMPP servers).
    fn username(&self) -> Cow<'_, str>;
    fn password(&self) -> Cow<'_, str>;
    /// The resource to ask for when binding; `None` lets the server assign one.
    fn resource(&self) -> Option<Cow<'_, str>>;
    /// A fresh SCRAM client nonce: at least 16 printable ASCII bytes without `,` (see
    /// `rookery_sasl::nonce_from_random`). Asked once per SCRAM exchange.
    fn nonce(&mut self) -> Vec<u8>;
}

/// An account held as strings. Its SCRAM nonces come from a seed and a counter: deterministic
/// (what tests and the simulator want), predictable (what a real client must not be: seed it
/// from a random source there).
#[derive(Clone, Debug)]
pub struct Login {
    pub domain: String,
    pub username: String,
    pub password: String,
    pub resource: Option<String>,
    nonce_seed: u64,
    nonces: u64,
}

impl Login {
    pub fn new(domain: &str, username: &str, password: &str) -> Login {
        Login {
            domain: domain.to_owned(),
            username: username.to_owned(),
            password: password.to_owned(),
            resource: None,
            nonce_seed: 0,
            nonces: 0,
        }
    }

    /// Asks for `resource` at bind (`None`: server-assigned).
    pub fn with_resource(mut self, resource: Option<&str>) -> Login {
        self.resource = resource.map(str::to_owned);
        self
    }

    /// Seeds the SCRAM nonces.
    pub fn with_nonce_seed(mut self, seed: u64) -> Login {
        self.nonce_seed = seed;
        self
    }
}

impl Account for Login {
    fn domain(&self) -> &str {
        &self.domain
    }

    fn username(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.username)
    }

    fn password(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.password)
    }

    fn resource(&self) -> Option<Cow<'_, str>> {
        self.resource.as_deref().map(Cow::Borrowed)
    }

    fn nonce(&mut self) -> Vec<u8> {
        self.nonces += 1;
        let mut random = [0u8; 18];
        random[..8].copy_from_slice(&self.nonce_seed.to_le_bytes());
        random[8..16].copy_from_slice(&self.nonces.to_le_bytes());
        nonce_from_random(&random)
    }
}
