//! SCRAM message syntax (RFC 5802 section 7): the four messages parsed into borrowed parts.
//!
//! What it does not do: judge the content (nonces, channel binding, proofs): the exchanges
//! do. Parsing is strict where the grammar is: attributes in their order, no duplicates, no
//! `m=` (reserved mandatory extension: RFC 5802 section 5.1 says its presence MUST fail),
//! canonical padded base64, no NUL, UTF-8, at most [`MAX_MESSAGE_BYTES`]. Unknown optional
//! extensions (an attribute name SCRAM does not define, after the mandatory ones) are
//! skipped, as the grammar allows.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::channel::CbindFlag;
use crate::failure::{reject, Failure, Reject};
use crate::prep;
use crate::MAX_MESSAGE_BYTES;

/// Attribute names RFC 5802 defines; an extension may not reuse one.
const DEFINED: &[u8] = b"acemnprsiv";

/// A client-first message: gs2 header and client-first-message-bare.
#[derive(Debug)]
pub(crate) struct ClientFirst<'a> {
    pub flag: CbindFlag<'a>,
    /// Decoded from `a=`; `None` when absent.
    pub authzid: Option<String>,
    /// The gs2 header as sent, with its trailing `,`: echoed inside `c=`.
    pub gs2_header: &'a str,
    /// client-first-message-bare as sent: part of AuthMessage.
    pub bare: &'a str,
    /// Decoded from `n=` (not yet SASLprep'd).
    pub username: String,
    pub nonce: &'a str,
}

/// A client-final message.
#[derive(Debug)]
pub(crate) struct ClientFinal<'a> {
    /// Decoded `c=`: gs2 header followed by the channel binding data.
    pub binding: Vec<u8>,
    pub nonce: &'a str,
    /// client-final-message-without-proof: part of AuthMessage.
    pub without_proof: &'a str,
    pub proof: Vec<u8>,
}

/// A server-first message.
#[derive(Debug)]
pub(crate) struct ServerFirst<'a> {
    /// The whole message as sent: part of AuthMessage.
    pub text: &'a str,
    pub nonce: &'a str,
    pub salt: Vec<u8>,
    pub iterations: u32,
}

/// A server-final message.
#[derive(Debug)]
pub(crate) enum ServerFinal {
    Verifier(Vec<u8>),
    Error(String),
}

fn malformed(detail: &'static str) -> Reject {
    reject(Failure::MalformedRequest, detail)
}

/// The message as text: bounded, UTF-8, no NUL (value-char excludes it).
fn text(message: &[u8]) -> Result<&str, Reject> {
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(malformed("message longer than MAX_MESSAGE_BYTES"));
    }
    let text = std::str::from_utf8(message).map_err(|_| malformed("message is not UTF-8"))?;
    if text.contains('\0') {
        return Err(malformed("message contains NUL"));
    }
    Ok(text)
}

/// Splits `a=value,b=value` into `(name, value)` pairs: one ASCII letter, `=`, a non-empty
/// value.
fn attributes(text: &str) -> Result<Vec<(u8, &str)>, Reject> {
    text.split(',')
        .map(|part| match part.as_bytes() {
            [name, b'=', _, ..] if name.is_ascii_alphabetic() => Ok((*name, &part[2..])),
            _ => Err(malformed("attribute is not letter=value")),
        })
        .collect()
}

/// Checks trailing optional extensions: none may be a defined attribute.
fn extensions(rest: &[(u8, &str)]) -> Result<(), Reject> {
    for (name, _) in rest {
        if *name == b'm' {
            return Err(malformed("mandatory extension m= is not supported"));
        }
        if DEFINED.contains(name) {
            return Err(malformed("duplicate or misplaced SCRAM attribute"));
        }
    }
    Ok(())
}

fn base64(value: &str, detail: &'static str) -> Result<Vec<u8>, Reject> {
    STANDARD
        .decode(value)
        .map_err(|_| reject(Failure::IncorrectEncoding, detail))
}

fn cbind_flag(flag: &str) -> Result<CbindFlag<'_>, Reject> {
    match flag {
        "n" => Ok(CbindFlag::N),
        "y" => Ok(CbindFlag::Y),
        _ => {
            let name = flag
                .strip_prefix("p=")
                .filter(|name| !name.is_empty())
                .filter(|name| {
                    name.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
                })
                .ok_or(malformed("gs2 channel binding flag is not n, y or p=name"))?;
            Ok(CbindFlag::P(name))
        }
    }
}

pub(crate) fn parse_client_first(message: &[u8]) -> Result<ClientFirst<'_>, Reject> {
    let text = text(message)?;
    let mut parts = text.splitn(3, ',');
    let (Some(flag), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed("client-first has no complete gs2 header"));
    };
    let gs2_header = &text[..flag.len() + authzid.len() + 2];
    let flag = cbind_flag(flag)?;
    let authzid = match authzid {
        "" => None,
        _ => Some(
            authzid
                .strip_prefix("a=")
                .and_then(prep::decode_saslname)
                .ok_or(malformed(
                    "gs2 authzid is not a=saslname (=2C, =3D escapes)",
                ))?,
        ),
    };
    let attrs = attributes(bare)?;
    let [(b'n', username), (b'r', nonce), rest @ ..] = attrs.as_slice() else {
        if attrs.first().is_some_and(|(name, _)| *name == b'm') {
            return Err(malformed("mandatory extension m= is not supported"));
        }
        return Err(malformed("client-first needs n= then r="));
    };
    extensions(rest)?;
    let username = prep::decode_saslname(username).ok_or(malformed(
        "username is not a valid saslname (=2C, =3D escapes)",
    ))?;
    if !prep::is_printable_nonce(nonce.as_bytes()) {
        return Err(malformed("client nonce is not printable ASCII"));
    }
    Ok(ClientFirst {
        flag,
        authzid,
        gs2_header,
        bare,
        username,
        nonce,
    })
}

pub(crate) fn parse_client_final(message: &[u8]) -> Result<ClientFinal<'_>, Reject> {
    let text = text(message)?;
    let attrs = attributes(text)?;
    let [(b'c', binding), (b'r', nonce), middle @ .., (b'p', proof)] = attrs.as_slice() else {
        if attrs.iter().any(|(name, _)| *name == b'm') {
            return Err(malformed("mandatory extension m= is not supported"));
        }
        return Err(malformed("client-final needs c=, r=, then p= last"));
    };
    extensions(middle)?;
    let without_proof = &text[..text.len() - proof.len() - ",p=".len()];
    Ok(ClientFinal {
        binding: base64(binding, "c= is not valid base64")?,
        nonce,
        without_proof,
        proof: base64(proof, "p= is not valid base64")?,
    })
}

pub(crate) fn parse_server_first(message: &[u8]) -> Result<ServerFirst<'_>, Reject> {
    let text = text(message)?;
    let attrs = attributes(text)?;
    let [(b'r', nonce), (b's', salt), (b'i', iterations), rest @ ..] = attrs.as_slice() else {
        if attrs.first().is_some_and(|(name, _)| *name == b'm') {
            return Err(malformed("mandatory extension m= is not supported"));
        }
        return Err(malformed("server-first needs r=, s=, then i="));
    };
    extensions(rest)?;
    if !iterations.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("i= is not a decimal number"));
    }
    Ok(ServerFirst {
        text,
        nonce,
        salt: base64(salt, "s= is not valid base64")?,
        iterations: iterations
            .parse()
            .map_err(|_| malformed("i= does not fit 32 bits"))?,
    })
}

pub(crate) fn parse_server_final(message: &[u8]) -> Result<ServerFinal, Reject> {
    let attrs = attributes(text(message)?)?;
    let [(name, value), rest @ ..] = attrs.as_slice() else {
        return Err(malformed("server-final is empty"));
    };
    extensions(rest)?;
    match name {
        b'v' => Ok(ServerFinal::Verifier(base64(
            value,
            "v= is not valid base64",
        )?)),
        b'e' => Ok(ServerFinal::Error((*value).to_owned())),
        _ => Err(malformed("server-final needs v= or e=")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail<T: std::fmt::Debug>(result: Result<T, Reject>) -> &'static str {
        result.unwrap_err().detail
    }

    #[test]
    fn client_first_parts() {
        let first = parse_client_first(b"n,a=us=2Cer,n=a=3Db,r=abc,x=ext").unwrap();
        assert_eq!(first.flag, CbindFlag::N);
        assert_eq!(first.authzid.as_deref(), Some("us,er"));
        assert_eq!(first.gs2_header, "n,a=us=2Cer,");
        assert_eq!(first.bare, "n=a=3Db,r=abc,x=ext");
        assert_eq!(first.username, "a=b");
        assert_eq!(first.nonce, "abc");
        let plus = parse_client_first(b"p=tls-exporter,,n=u,r=x").unwrap();
        assert_eq!(plus.flag, CbindFlag::P("tls-exporter"));
        assert_eq!(plus.gs2_header, "p=tls-exporter,,");
    }

    #[test]
    fn client_first_refusals() {
        let cases: &[&[u8]] = &[
            b"n,,",
            b"n,",
            b"x,,n=u,r=a",
            b"p=,,n=u,r=a",
            b"p=tls_exporter,,n=u,r=a",
            b"n,b=u,n=u,r=a",
            b"n,,m=x,n=u,r=a",
            b"n,,r=a,n=u",
            b"n,,n=u",
            b"n,,n=u,r=a,r=b",
            b"n,,n=u,r=a,m=x",
            b"n,,n=u=,r=a",
            b"n,,n=,r=a",
            b"n,,n=u,r=a b",
            b"n,,n=u,r=a,,",
            b"n,,n=u\0,r=a",
            b"n,,n=\xff,r=a",
        ];
        for case in cases {
            let result = parse_client_first(case);
            assert_eq!(
                result.map(|_| ()).map_err(|r| r.failure),
                Err(Failure::MalformedRequest),
                "{}",
                String::from_utf8_lossy(case)
            );
        }
        assert_eq!(
            detail(parse_client_first(b"n,,m=x,n=u,r=a")),
            "mandatory extension m= is not supported"
        );
        let long = [b"n,,n=u,r=".as_slice(), &[b'a'; MAX_MESSAGE_BYTES]].concat();
        assert_eq!(
            detail(parse_client_first(&long)),
            "message longer than MAX_MESSAGE_BYTES"
        );
    }

    #[test]
    fn client_final_parts_and_refusals() {
        let last = parse_client_final(b"c=biws,r=abc,x=1,p=AAAA").unwrap();
        assert_eq!(last.binding, b"n,,");
        assert_eq!(last.without_proof, "c=biws,r=abc,x=1");
        assert_eq!(last.proof, [0, 0, 0]);
        let bad_base64 = parse_client_final(b"c=biw,r=abc,p=AAAA").unwrap_err();
        assert_eq!(bad_base64.failure, Failure::IncorrectEncoding);
        assert_eq!(
            parse_client_final(b"c=biws,r=a,p=AAB=")
                .unwrap_err()
                .failure,
            Failure::IncorrectEncoding
        );
        for case in [
            b"r=abc,c=biws,p=AAAA".as_slice(),
            b"c=biws,p=AAAA",
            b"c=biws,r=abc",
            b"c=biws,r=abc,p=AAAA,x=1",
            b"c=biws,r=abc,r=abc,p=AAAA",
            b"c=biws,r=abc,m=x,p=AAAA",
            b"c=biws,r=abc,p=",
        ] {
            assert_eq!(
                parse_client_final(case).unwrap_err().failure,
                Failure::MalformedRequest,
                "{}",
                String::from_utf8_lossy(case)
            );
        }
    }

    #[test]
    fn server_messages() {
        let first = parse_server_first(b"r=abc,s=QSXCR+Q6sek8bf92,i=4096").unwrap();
        assert_eq!((first.nonce, first.iterations), ("abc", 4096));
        assert_eq!(first.salt.len(), 12);
        assert!(parse_server_first(b"r=abc,s=QSXCR+Q6sek8bf92,i=+4096").is_err());
        assert!(parse_server_first(b"r=abc,s=QSXCR+Q6sek8bf92,i=99999999999").is_err());
        assert!(parse_server_first(b"m=x,r=abc,s=QSXCR+Q6sek8bf92,i=1").is_err());
        assert!(
            matches!(parse_server_final(b"v=AAAA"), Ok(ServerFinal::Verifier(v)) if v == [0, 0, 0])
        );
        assert!(
            matches!(parse_server_final(b"e=invalid-proof"), Ok(ServerFinal::Error(e)) if e == "invalid-proof")
        );
        assert!(parse_server_final(b"").is_err());
        assert!(parse_server_final(b"x=1").is_err());
    }
}
