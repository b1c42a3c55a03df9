//! The worked examples of RFC 5802 section 5 (SCRAM-SHA-1) and RFC 7677 section 3
//! (SCRAM-SHA-256), byte for byte, on both sides, with the RFCs' fixed nonces.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rookery_sasl::{
    verify_plain, ChannelBinding, ChannelBindingOffer, ClientError, ClientExchange, Credentials,
    Mechanism, ScramCredentials, ScramHash, ServerExchange, Step,
};

struct Vector {
    mechanism: Mechanism,
    client_nonce: &'static [u8],
    server_nonce: &'static [u8],
    client_first: &'static [u8],
    server_first: &'static [u8],
    client_final: &'static [u8],
    server_final: &'static [u8],
}

const RFC5802: Vector = Vector {
    mechanism: Mechanism::ScramSha1,
    client_nonce: b"fyko+d2lbbFgONRv9qkxdawL",
    server_nonce: b"3rfcNHYJY1ZVvWVs7j",
    client_first: b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
    server_first: b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
    client_final:
        b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    server_final: b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
};

const RFC7677: Vector = Vector {
    mechanism: Mechanism::ScramSha256,
    client_nonce: b"rOprNGfwEbeRWgbNEkqO",
    server_nonce: b"%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    client_first: b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    server_first: b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    client_final: b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    server_final: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
};

/// The user "user" with password "pencil" and each RFC's salt, 4096 iterations.
fn rfc_credentials() -> Credentials {
    let salt_sha1 = STANDARD.decode("QSXCR+Q6sek8bf92").unwrap();
    let salt_sha256 = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    Credentials::new(
        ScramCredentials::derive(ScramHash::Sha1, "pencil", 4096, &salt_sha1).unwrap(),
        ScramCredentials::derive(ScramHash::Sha256, "pencil", 4096, &salt_sha256).unwrap(),
    )
    .unwrap()
}

fn check_server(vector: &Vector) {
    let credentials = rfc_credentials();
    let (mut server, step) = ServerExchange::start(
        vector.mechanism,
        ChannelBindingOffer::NotOffered,
        vector.client_first,
        vector.server_nonce,
    );
    assert_eq!(
        step,
        Step::NeedCredentials {
            authcid: "user".into(),
            authzid: None
        }
    );
    assert_eq!(
        server.credentials(Some(&credentials)),
        Step::Challenge(vector.server_first.to_vec())
    );
    assert_eq!(
        server.respond(vector.client_final),
        Step::Success {
            authcid: "user".into(),
            additional_data: vector.server_final.to_vec()
        }
    );
    assert!(server.is_done());
    assert_eq!(server.failure_detail(), None);
}

/// The vector's client ("user", password "pencil", its nonce) and its first message.
fn vector_client(vector: &Vector) -> (ClientExchange, Vec<u8>) {
    ClientExchange::start(
        vector.mechanism,
        "user",
        "pencil",
        ChannelBinding::None,
        vector.client_nonce,
    )
    .unwrap()
}

fn check_client(vector: &Vector) {
    let (mut client, first) = vector_client(vector);
    assert_eq!(first, vector.client_first);
    assert_eq!(
        client.step(vector.server_first).unwrap(),
        vector.client_final
    );
    assert_eq!(client.finish(vector.server_final), Ok(()));

    // The same exchange with one bit of the server signature flipped must not authenticate.
    let (mut client, _) = vector_client(vector);
    client.step(vector.server_first).unwrap();
    let mut signature = STANDARD.decode(&vector.server_final[2..]).unwrap();
    signature[0] ^= 1;
    let forged = format!("v={}", STANDARD.encode(signature));
    assert_eq!(
        client.finish(forged.as_bytes()),
        Err(ClientError::ServerSignatureMismatch)
    );
}

#[test]
fn rfc5802_section5_server() {
    check_server(&RFC5802);
}

#[test]
fn rfc5802_section5_client() {
    check_client(&RFC5802);
}

#[test]
fn rfc7677_section3_server() {
    check_server(&RFC7677);
}

#[test]
fn rfc7677_section3_client() {
    check_client(&RFC7677);
}

#[test]
fn rfc_credentials_verify_plain() {
    let credentials = rfc_credentials();
    assert!(verify_plain(&credentials, "pencil"));
    assert!(!verify_plain(&credentials, "pencils"));
}
