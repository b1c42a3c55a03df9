//! Server refusals at the start of an exchange: each malformed or hostile client-first or
//! PLAIN message gets its RFC 6120 condition (and the cause the logs will show).

mod support;

use rookery_sasl::{
    ChannelBindingOffer, Failure, Mechanism, ServerExchange, Step, MAX_MESSAGE_BYTES,
};
use support::*;

const OFFERED: ChannelBindingOffer = ChannelBindingOffer::TlsExporter(EXPORTER);
const NONE: ChannelBindingOffer = ChannelBindingOffer::NotOffered;
const SHA: Mechanism = Mechanism::ScramSha256;
const PLUS: Mechanism = Mechanism::ScramSha256Plus;
const BAD_USERNAME: &str = "username is not a valid saslname (=2C, =3D escapes)";
const BAD_AUTHZID: &str = "gs2 authzid is not a=saslname (=2C, =3D escapes)";
const PREP_REFUSED: &str = "SCRAM username is empty or refused by SASLprep";
const NO_N_R: &str = "client-first needs n= then r=";
const M_EXT: &str = "mandatory extension m= is not supported";
const DUPLICATE: &str = "duplicate or misplaced SCRAM attribute";
const OTHER_USER: &str =
    "authzid differs from the authcid (acting as another user is not supported)";
const UNSUPPORTED_CB: &str = "unsupported channel binding type (only tls-exporter)";
const NOT_PLAIN: &str = "PLAIN message is not authzid NUL authcid NUL password";
const PLAIN_PREP: &str = "PLAIN username is empty or refused by SASLprep";

#[rustfmt::skip]
const CLIENT_FIRST_CASES: &[(Mechanism, ChannelBindingOffer, &[u8], Failure, &str)] = &[
    (SHA, NONE, b"n,,m=ext,n=u,r=abc", Failure::MalformedRequest, M_EXT),
    (SHA, NONE, b"n,,n=u,r=abc,m=ext", Failure::MalformedRequest, M_EXT),
    (SHA, NONE, b"n,,n=u", Failure::MalformedRequest, NO_N_R),
    (SHA, NONE, b"n,,r=abc", Failure::MalformedRequest, NO_N_R),
    (SHA, NONE, b"n,,x=1,n=u,r=abc", Failure::MalformedRequest, NO_N_R),
    (SHA, NONE, b"n,,n=u,r=abc,n=v", Failure::MalformedRequest, DUPLICATE),
    (SHA, NONE, b"n,,n=u,r=abc,r=abd", Failure::MalformedRequest, DUPLICATE),
    (SHA, NONE, b"n,,n=a=2Xb,r=abc", Failure::MalformedRequest, BAD_USERNAME),
    (SHA, NONE, b"n,,n=a=b,r=abc", Failure::MalformedRequest, BAD_USERNAME),
    (SHA, NONE, b"n,,n=a\x07,r=abc", Failure::MalformedRequest, PREP_REFUSED),
    (SHA, NONE, b"n,,n=\xc2\xad,r=abc", Failure::MalformedRequest, PREP_REFUSED),
    (SHA, NONE, b"n,a=other,n=u,r=abc", Failure::InvalidAuthzid, OTHER_USER),
    (SHA, NONE, b"n,a=u=,n=u,r=abc", Failure::MalformedRequest, BAD_AUTHZID),
    (SHA, NONE, b"n,n=u,r=abc", Failure::MalformedRequest, BAD_AUTHZID),
    (SHA, NONE, b"q,,n=u,r=abc", Failure::MalformedRequest, "gs2 channel binding flag is not n, y or p=name"),
    (SHA, NONE, b"n,,", Failure::MalformedRequest, "attribute is not letter=value"),
    (SHA, NONE, b"n,,n=u,r=a\x7fb", Failure::MalformedRequest, "client nonce is not printable ASCII"),
    (SHA, NONE, b"n,,n=u,r=\xff", Failure::MalformedRequest, "message is not UTF-8"),
    (SHA, OFFERED, b"y,,n=u,r=abc", Failure::NotAuthorized, "downgrade: the client can bind (gs2 flag y) but -PLUS was offered and stripped"),
    (SHA, OFFERED, b"p=tls-exporter,,n=u,r=abc", Failure::MalformedRequest, "gs2 flag p (channel binding) with a mechanism without -PLUS"),
    (PLUS, OFFERED, b"n,,n=u,r=abc", Failure::NotAuthorized, "a -PLUS mechanism with gs2 flag n (no channel binding)"),
    (PLUS, OFFERED, b"y,,n=u,r=abc", Failure::MalformedRequest, "gs2 flag y (server does not bind) with a -PLUS mechanism"),
    (PLUS, OFFERED, b"p=tls-unique,,n=u,r=abc", Failure::NotAuthorized, UNSUPPORTED_CB),
    (PLUS, OFFERED, b"p=tls-server-end-point,,n=u,r=abc", Failure::NotAuthorized, UNSUPPORTED_CB),
    (PLUS, NONE, b"p=tls-exporter,,n=u,r=abc", Failure::InvalidMechanism, "a -PLUS mechanism was chosen but not offered (no TLS exporter value)"),
];

#[rustfmt::skip]
const PLAIN_CASES: &[(&[u8], Failure, &str)] = &[
    (b"u pw", Failure::MalformedRequest, NOT_PLAIN),
    (b"\0u", Failure::MalformedRequest, NOT_PLAIN),
    (b"\0u\0pw\0", Failure::MalformedRequest, NOT_PLAIN),
    (b"\0u\0", Failure::MalformedRequest, "PLAIN password is empty"),
    (b"\0\0pw", Failure::MalformedRequest, PLAIN_PREP),
    (b"\0u\x07\0pw", Failure::MalformedRequest, PLAIN_PREP),
    (b"\0u\xff\0pw", Failure::MalformedRequest, "PLAIN message is not UTF-8"),
    (b"v\0u\0pw", Failure::InvalidAuthzid, OTHER_USER),
    (b"v@example.com\0u\0pw", Failure::InvalidAuthzid, OTHER_USER),
    (b"u@\0u\0pw", Failure::InvalidAuthzid, OTHER_USER),
];

/// Starts `mechanism` with `first`; checks the outcome and the logged cause.
fn assert_refused(
    mechanism: Mechanism,
    offer: ChannelBindingOffer,
    first: &[u8],
    failure: Failure,
    detail: &str,
) {
    let (server, step) = ServerExchange::start(mechanism, offer, first, SERVER_NONCE);
    let shown = String::from_utf8_lossy(&first[..first.len().min(60)]).into_owned();
    assert_eq!(step, Step::Failure(failure), "{shown}");
    assert_eq!(server.failure_detail(), Some(detail), "{shown}");
    assert!(server.is_done());
}

#[test]
fn client_first_refusals() {
    for (mechanism, offer, first, failure, detail) in CLIENT_FIRST_CASES {
        assert_refused(*mechanism, *offer, first, *failure, detail);
    }
    let oversized = [b"n,,n=u,r=".as_slice(), &vec![b'a'; MAX_MESSAGE_BYTES]].concat();
    assert_refused(
        SHA,
        NONE,
        &oversized,
        Failure::MalformedRequest,
        "message longer than MAX_MESSAGE_BYTES",
    );
}

#[test]
fn plain_refusals() {
    for (message, failure, detail) in PLAIN_CASES {
        assert_refused(Mechanism::Plain, NONE, message, *failure, detail);
    }
    let long = [b"\0u\0".as_slice(), &vec![b'p'; MAX_MESSAGE_BYTES]].concat();
    assert_refused(
        Mechanism::Plain,
        NONE,
        &long,
        Failure::MalformedRequest,
        "message longer than MAX_MESSAGE_BYTES",
    );
}

#[test]
fn authzid_naming_the_authcid_is_accepted() {
    for (mechanism, first, authzid) in [
        (
            Mechanism::ScramSha1,
            b"n,a=u=2Cv,n=u=2Cv,r=abc".as_slice(),
            "u,v",
        ),
        (Mechanism::Plain, b"u,v\0u,v\0pw".as_slice(), "u,v"),
        (
            Mechanism::ScramSha256,
            b"n,a=u=2Cv@example.com,n=u=2Cv,r=abc".as_slice(),
            "u,v@example.com",
        ),
        (
            Mechanism::Plain,
            b"u,v@example.com\0u,v\0pw".as_slice(),
            "u,v@example.com",
        ),
    ] {
        let (_, step) = ServerExchange::start(mechanism, NONE, first, SERVER_NONCE);
        assert_eq!(
            step,
            Step::NeedCredentials {
                authcid: "u,v".into(),
                authzid: Some(authzid.into())
            }
        );
    }
}

#[test]
fn plain_with_the_callers_password_check() {
    for (password, expected) in [("right", true), ("wrong", false)] {
        let first = format!("\0u\0{password}");
        let (mut server, step) =
            ServerExchange::start(Mechanism::Plain, NONE, first.as_bytes(), SERVER_NONCE);
        assert!(matches!(step, Step::NeedCredentials { .. }));
        let step = server.check_password(|given| given == "right");
        let success = Step::Success {
            authcid: "u".into(),
            additional_data: Vec::new(),
        };
        assert_eq!(step == success, expected, "{password}");
        assert_eq!(step == Step::Failure(Failure::NotAuthorized), !expected);
        assert!(server.is_done());
    }
    // SCRAM needs stored credentials: the caller's check is refused there.
    let (mut scram, _) = ServerExchange::start(SHA, NONE, b"n,,n=u,r=abc", SERVER_NONCE);
    assert_eq!(
        scram.check_password(|_| true),
        Step::Failure(Failure::TemporaryAuthFailure)
    );
}

#[test]
fn a_bad_server_nonce_is_a_temporary_failure() {
    for nonce in [
        b"short".as_slice(),
        b"",
        b"0123456789abcdef,",
        b"0123456789abcdef\x80",
    ] {
        let (server, step) = ServerExchange::start(
            Mechanism::ScramSha1,
            ChannelBindingOffer::NotOffered,
            b"n,,n=u,r=abc",
            nonce,
        );
        assert_eq!(step, Step::Failure(Failure::TemporaryAuthFailure));
        assert!(server.failure_detail().unwrap().contains("caller bug"));
    }
}
