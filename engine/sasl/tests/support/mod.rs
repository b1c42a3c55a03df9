//! Helpers shared by the integration tests: credentials, nonces, and a driver that runs a
//! client against a server in memory.

#![allow(dead_code)]

use rookery_sasl::{
    ChannelBinding, ChannelBindingOffer, ClientError, ClientExchange, Credentials, Mechanism,
    ServerExchange, Step,
};

pub const SERVER_NONCE: &[u8] = b"SERVERnonce0123456789";
pub const CLIENT_NONCE: &[u8] = b"clientNONCE9876543210";
/// Few iterations keep the tests fast; the count does not change the protocol.
pub const ITERATIONS: u32 = 64;
pub const EXPORTER: [u8; 32] = [0x42; 32];
pub const OTHER_EXPORTER: [u8; 32] = [0x24; 32];

pub fn credentials(password: &str) -> Credentials {
    Credentials::derive(
        password,
        ITERATIONS,
        b"salt-for-sha-1!!",
        b"salt-for-sha-256",
    )
    .unwrap()
}

/// How a login ended on each side.
#[derive(Debug)]
pub struct Outcome {
    pub server: Step,
    pub detail: Option<&'static str>,
    /// `Some` once the client saw the server's success and checked it.
    pub client: Option<Result<(), ClientError>>,
}

/// Runs one login: the client logs in as `username`/`password`; the server holds `stored`
/// for every user (`None`: the user is unknown).
pub fn login(
    mechanism: Mechanism,
    offer: ChannelBindingOffer,
    binding: ChannelBinding,
    username: &str,
    password: &str,
    stored: Option<&Credentials>,
) -> Outcome {
    let (mut client, first) =
        ClientExchange::start(mechanism, username, password, binding, CLIENT_NONCE).unwrap();
    let (mut server, mut step) = ServerExchange::start(mechanism, offer, &first, SERVER_NONCE);
    loop {
        step = match step {
            Step::NeedCredentials { .. } => server.credentials(stored),
            Step::Challenge(challenge) => match client.step(&challenge) {
                Ok(response) => server.respond(&response),
                Err(error) => panic!("client refused a challenge: {error}"),
            },
            Step::Success {
                ref additional_data,
                ..
            } => {
                let client = Some(client.finish(additional_data));
                return Outcome {
                    server: step,
                    detail: server.failure_detail(),
                    client,
                };
            }
            Step::Failure(_) => {
                return Outcome {
                    server: step,
                    detail: server.failure_detail(),
                    client: None,
                }
            }
        };
    }
}

/// [`login`] without channel binding on either side (none offered, none possible).
pub fn login_unbound(
    mechanism: Mechanism,
    username: &str,
    password: &str,
    stored: Option<&Credentials>,
) -> Outcome {
    let (offer, binding) = (ChannelBindingOffer::NotOffered, ChannelBinding::None);
    login(mechanism, offer, binding, username, password, stored)
}

/// A client that cannot bind starting `mechanism` with [`CLIENT_NONCE`]; returns it and its
/// first message.
pub fn unbound_client(
    mechanism: Mechanism,
    username: &str,
    password: &str,
) -> (ClientExchange, Vec<u8>) {
    ClientExchange::start(
        mechanism,
        username,
        password,
        ChannelBinding::None,
        CLIENT_NONCE,
    )
    .unwrap()
}

/// [`scram_challenged`] on a server that offers no channel binding.
pub fn unbound_challenged(
    mechanism: Mechanism,
    first: &[u8],
    stored: Option<&Credentials>,
) -> (ServerExchange, Vec<u8>) {
    scram_challenged(mechanism, ChannelBindingOffer::NotOffered, first, stored)
}

/// Starts a SCRAM exchange with `first` and answers the credentials request; returns the
/// server and its challenge.
pub fn scram_challenged(
    mechanism: Mechanism,
    offer: ChannelBindingOffer,
    first: &[u8],
    stored: Option<&Credentials>,
) -> (ServerExchange, Vec<u8>) {
    let (mut server, step) = ServerExchange::start(mechanism, offer, first, SERVER_NONCE);
    assert!(matches!(step, Step::NeedCredentials { .. }), "{step:?}");
    let Step::Challenge(challenge) = server.credentials(stored) else {
        panic!("no challenge");
    };
    (server, challenge)
}
