use super::*;

const SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";
const NOW: u64 = 1_765_000_000;

fn signer() -> SlotSigner {
    SlotSigner::new(SECRET, "https://upload.montague.tld:5443/").unwrap()
}

fn grant() -> PutGrant {
    PutGrant {
        token: SlotToken::from_random([7; 16]),
        owner: Jid::parse("romeo@montague.tld").unwrap(),
        filename: "très cool.jpg".into(),
        size_bytes: 23_456,
        content_type: "image/jpeg".into(),
        expires_unix_s: NOW + 300,
    }
}

/// The path a request for `url` carries, after the signer's base path.
fn path_of<'a>(signer: &SlotSigner, url: &'a str) -> &'a str {
    url.strip_prefix(signer.public_url()).unwrap()
}

#[test]
fn urls_have_the_documented_shape() {
    let signer = signer();
    let slot = signer.sign(&grant());
    let token = "07".repeat(16);
    assert_eq!(
        slot.get_url,
        format!("https://upload.montague.tld:5443/download/{token}/tr%C3%A8s%20cool.jpg")
    );
    let put_prefix = format!("https://upload.montague.tld:5443/upload/{token}/");
    assert!(slot.put_url.starts_with(&put_prefix), "{}", slot.put_url);
    assert!(slot.put_url.ends_with("/tr%C3%A8s%20cool.jpg"));
    let signed = slot.put_url[put_prefix.len()..].split('/').next().unwrap();
    assert!(signed
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert!(slot.headers.is_empty());
    assert_eq!(slot.expires_unix_s, NOW + 300);
}

#[test]
fn a_signed_put_verifies_to_its_grant() {
    let signer = signer();
    let slot = signer.sign(&grant());
    let verified = signer
        .verify_put(path_of(&signer, &slot.put_url), NOW)
        .unwrap();
    assert_eq!(verified, grant());
    // Any process holding the same secret verifies it: no state shared with the minter.
    let other = SlotSigner::new(SECRET, "https://elsewhere.example").unwrap();
    assert_eq!(
        other.verify_put(path_of(&signer, &slot.put_url), NOW),
        Ok(grant())
    );
}

#[test]
fn expiry_is_exclusive() {
    let signer = signer();
    let slot = signer.sign(&grant());
    let path = path_of(&signer, &slot.put_url);
    assert!(signer.verify_put(path, NOW + 299).is_ok());
    assert_eq!(
        signer.verify_put(path, NOW + 300),
        Err(PutError::Expired {
            expires_unix_s: NOW + 300
        })
    );
}

#[test]
fn every_altered_byte_of_the_signed_segment_is_refused() {
    let signer = signer();
    let slot = signer.sign(&grant());
    let path = path_of(&signer, &slot.put_url);
    let mut parts: Vec<String> = path.split('/').map(str::to_owned).collect();
    let signed = URL_SAFE_NO_PAD.decode(&parts[3]).unwrap();
    for i in 0..signed.len() {
        for flip in [0x01u8, 0x80] {
            let mut altered = signed.clone();
            altered[i] ^= flip;
            parts[3] = URL_SAFE_NO_PAD.encode(&altered);
            let result = signer.verify_put(&parts.join("/"), NOW);
            assert_eq!(
                result,
                Err(PutError::BadSignature),
                "byte {i} flipped by {flip:#x}"
            );
        }
    }
}

#[test]
fn altered_claims_re_encoded_are_refused() {
    // An attacker who decodes the claims, raises the size or the expiry, changes the type or
    // the owner and re-encodes them without the secret.
    let signer = signer();
    let alterations: [fn(&mut Claims); 4] = [
        |c| c.size_bytes += 1,
        |c| c.expires_unix_s += 3_600,
        |c| c.content_type = "text/html".into(),
        |c| c.owner = "tybalt@capulet.tld".into(),
    ];
    for alter in alterations {
        let slot = signer.sign(&grant());
        let path = path_of(&signer, &slot.put_url);
        let mut parts: Vec<String> = path.split('/').map(str::to_owned).collect();
        let signed = URL_SAFE_NO_PAD.decode(&parts[3]).unwrap();
        let (claims, mac) = signed.split_at(signed.len() - MAC_BYTES);
        let mut claims = Claims::decode(claims).unwrap();
        alter(&mut claims);
        let mut forged = Vec::new();
        claims.encode(&mut forged);
        forged.extend_from_slice(mac);
        parts[3] = URL_SAFE_NO_PAD.encode(&forged);
        assert_eq!(
            signer.verify_put(&parts.join("/"), NOW),
            Err(PutError::BadSignature)
        );
    }
}

#[test]
fn another_token_or_name_or_secret_is_refused() {
    let signer = signer();
    let slot = signer.sign(&grant());
    let path = path_of(&signer, &slot.put_url);
    let other_token = path.replacen(&"07".repeat(16), &"08".repeat(16), 1);
    assert_eq!(
        signer.verify_put(&other_token, NOW),
        Err(PutError::BadSignature)
    );
    let other_name = path.replace("cool.jpg", "cool.jpeg");
    assert_eq!(
        signer.verify_put(&other_name, NOW),
        Err(PutError::BadSignature)
    );
    let stranger = SlotSigner::new(&[9u8; 32], "https://upload.montague.tld").unwrap();
    assert_eq!(stranger.verify_put(path, NOW), Err(PutError::BadSignature));
}

#[test]
fn a_re_encoded_name_still_verifies() {
    let signer = signer();
    let grant = PutGrant {
        filename: "notes (1).txt".into(),
        ..grant()
    };
    let slot = signer.sign(&grant);
    let path = path_of(&signer, &slot.put_url);
    assert!(path.ends_with("/notes%20%281%29.txt"));
    let unencoded = path.replace("%28", "(").replace("%29", ")");
    assert_eq!(signer.verify_put(&unencoded, NOW), Ok(grant));
    let accented = self::grant();
    let slot = signer.sign(&accented);
    let lower_hex = path_of(&signer, &slot.put_url).replace("%C3%A8", "%c3%a8");
    assert_eq!(signer.verify_put(&lower_hex, NOW), Ok(accented));
}

#[test]
fn malformed_paths_are_refused() {
    let signer = signer();
    let slot = signer.sign(&grant());
    let path = path_of(&signer, &slot.put_url);
    let cases = [
        path.replacen("/upload/", "/download/", 1),
        format!("{path}/extra"),
        path.rsplit_once('/').unwrap().0.to_owned(),
        path.replacen(&"07".repeat(16), "07", 1),
        path.replace("%C3", "%G3"),
        format!("/upload/{}/AAAA/x", "07".repeat(16)),
        String::new(),
    ];
    for case in cases {
        assert_eq!(
            signer.verify_put(&case, NOW),
            Err(PutError::Malformed),
            "{case}"
        );
    }
}

#[test]
fn a_public_url_path_prefixes_both_urls() {
    let signer = SlotSigner::new(SECRET, "https://example.org/xmpp/files/").unwrap();
    assert_eq!(signer.public_url(), "https://example.org/xmpp/files");
    assert_eq!(signer.base_path(), "/xmpp/files");
    let slot = signer.sign(&grant());
    assert!(slot
        .get_url
        .starts_with("https://example.org/xmpp/files/download/"));
    let request_path = slot.put_url.strip_prefix("https://example.org").unwrap();
    let under_base = request_path.strip_prefix(signer.base_path()).unwrap();
    assert_eq!(signer.verify_put(under_base, NOW), Ok(grant()));
    assert_eq!(self::signer().base_path(), "");
}

#[test]
fn configuration_errors_are_named() {
    assert_eq!(
        SlotSigner::new(&[1; 31], "https://h").err(),
        Some(SignerError::SecretTooShort { bytes: 31 })
    );
    for bad in [
        "upload.example.org",
        "ftp://h",
        "https://",
        "https://h/a b",
        "https://h/?x",
    ] {
        let error = SlotSigner::new(SECRET, bad).err().unwrap();
        assert!(matches!(error, SignerError::PublicUrl { .. }), "{bad}");
        assert!(error.to_string().contains("--http-public-url"));
    }
    assert!(SlotSigner::new(SECRET, "http://127.0.0.1:5280").is_ok());
}

#[test]
fn download_paths_parse() {
    let slot = signer().sign(&grant());
    let path = path_of(&signer(), &slot.get_url);
    let parsed = parse_download_path(path).unwrap();
    assert_eq!(parsed.token, grant().token);
    assert_eq!(parsed.filename, "très cool.jpg".as_bytes());
    assert_eq!(parse_download_path("/download/xyz/a.jpg"), None);
    assert_eq!(
        parse_download_path(&format!("/download/{}", "07".repeat(16))),
        None
    );
    assert_eq!(
        parse_download_path(&format!("/download/{}/a/b", "07".repeat(16))),
        None
    );
}
