use super::*;
use crate::content_type::ContentTypes;
use crate::filename::FilenameError;
use crate::quota::{MemoryLedger, UsageEvent};
use crate::refusal::{Condition, ErrorType};

const SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";
const NOW: u64 = 1_765_000_000;

fn issuer(policy: SlotPolicy) -> SlotIssuer {
    SlotIssuer::new(
        policy,
        SlotSigner::new(SECRET, "https://up.example.test").unwrap(),
    )
}

fn policy() -> SlotPolicy {
    SlotPolicy {
        max_file_bytes: 1_000,
        quota_bytes_per_user: 2_500,
        slot_ttl_s: 60,
        content_types: ContentTypes::Only(vec!["image/*".into(), "text/plain".into()]),
        max_open_slots_per_user: 4,
    }
}

fn romeo() -> Jid {
    Jid::parse("romeo@montague.tld/garden").unwrap()
}

fn request(size_bytes: u64) -> SlotRequest<'static> {
    SlotRequest {
        filename: "my-juliet.jpg",
        size_bytes,
        content_type: Some("image/jpeg"),
    }
}

fn random(n: u8) -> [u8; TOKEN_BYTES] {
    [n; TOKEN_BYTES]
}

#[test]
fn a_slot_is_signed_for_the_bare_jid_and_reserved() {
    let issuer = issuer(policy());
    let mut ledger = MemoryLedger::new();
    let slot = issuer
        .issue(&mut ledger, &romeo(), &request(800), NOW, random(1))
        .unwrap();
    let path = slot
        .put_url
        .strip_prefix(issuer.signer().public_url())
        .unwrap();
    let grant = issuer.signer().verify_put(path, NOW).unwrap();
    assert_eq!(grant.owner.as_str(), "romeo@montague.tld");
    assert_eq!(
        (grant.size_bytes, grant.content_type.as_str()),
        (800, "image/jpeg")
    );
    assert_eq!(grant.expires_unix_s, NOW + 60);
    let usage = ledger.usage(&romeo().to_bare(), NOW);
    assert_eq!((usage.reserved_bytes, usage.open_slots), (800, 1));
}

#[test]
fn too_large_is_refused_with_the_limit() {
    let issuer = issuer(policy());
    let mut ledger = MemoryLedger::new();
    let refusal = issuer
        .issue(&mut ledger, &romeo(), &request(1_001), NOW, random(1))
        .unwrap_err();
    assert_eq!(
        refusal,
        SlotRefusal::FileTooLarge {
            max_file_bytes: 1_000
        }
    );
    assert!(refusal
        .stanza_error()
        .to_xml()
        .contains("<max-file-size>1000</max-file-size>"));
    assert!(issuer
        .issue(&mut ledger, &romeo(), &request(1_000), NOW, random(2))
        .is_ok());
}

#[test]
fn quota_counts_reservations_and_stored_files() {
    let issuer = issuer(policy());
    let mut ledger = MemoryLedger::new();
    let bare = romeo().to_bare();
    let first = issuer
        .issue(&mut ledger, &romeo(), &request(1_000), NOW, random(1))
        .unwrap();
    ledger.apply(&UsageEvent::Stored {
        owner: bare.clone(),
        token: first.token,
        size_bytes: 1_000,
    });
    issuer
        .issue(&mut ledger, &romeo(), &request(1_000), NOW, random(2))
        .unwrap();
    let refusal = issuer
        .issue(&mut ledger, &romeo(), &request(501), NOW, random(3))
        .unwrap_err();
    assert_eq!(
        refusal,
        SlotRefusal::QuotaExceeded {
            quota_bytes: 2_500,
            used_bytes: 2_000,
            requested_bytes: 501
        }
    );
    let error = refusal.stanza_error();
    assert_eq!(
        (error.error_type, error.condition),
        (ErrorType::Wait, Condition::ResourceConstraint)
    );
    // The refusal reserved nothing; 500 still fits.
    assert!(issuer
        .issue(&mut ledger, &romeo(), &request(500), NOW, random(4))
        .is_ok());
    // Once the open reservations expire, their bytes are free again.
    let later = NOW + 60;
    assert!(issuer
        .issue(&mut ledger, &romeo(), &request(1_000), later, random(5))
        .is_ok());
    // Another user has their own quota.
    let juliet = Jid::parse("juliet@capulet.tld").unwrap();
    assert!(issuer
        .issue(&mut ledger, &juliet, &request(1_000), NOW, random(6))
        .is_ok());
}

#[test]
fn open_slots_are_bounded() {
    let issuer = issuer(policy());
    let mut ledger = MemoryLedger::new();
    for n in 0..4 {
        issuer
            .issue(&mut ledger, &romeo(), &request(0), NOW, random(n))
            .unwrap();
    }
    let refusal = issuer
        .issue(&mut ledger, &romeo(), &request(0), NOW, random(9))
        .unwrap_err();
    assert_eq!(refusal, SlotRefusal::TooManyOpenSlots { max_open_slots: 4 });
    assert_eq!(
        refusal.stanza_error().condition,
        Condition::ResourceConstraint
    );
}

#[test]
fn content_types_are_checked_against_the_policy() {
    let issuer = issuer(policy());
    let mut ledger = MemoryLedger::new();
    let html = SlotRequest {
        content_type: Some("text/html"),
        ..request(10)
    };
    let refusal = issuer
        .issue(&mut ledger, &romeo(), &html, NOW, random(1))
        .unwrap_err();
    assert_eq!(
        refusal,
        SlotRefusal::ContentTypeNotAllowed {
            essence: "text/html".into()
        }
    );
    let error = refusal.stanza_error();
    assert_eq!(
        (error.error_type, error.condition),
        (ErrorType::Modify, Condition::NotAcceptable)
    );
    assert_eq!(error.max_file_bytes, None);
    // No type given means application/octet-stream, which this policy does not allow.
    let untyped = SlotRequest {
        content_type: None,
        ..request(10)
    };
    assert!(matches!(
        issuer.issue(&mut ledger, &romeo(), &untyped, NOW, random(2)),
        Err(SlotRefusal::ContentTypeNotAllowed { .. })
    ));
    let any = self::issuer(SlotPolicy {
        content_types: ContentTypes::Any,
        ..policy()
    });
    let empty_type = SlotRequest {
        content_type: Some(""),
        ..request(10)
    };
    let slot = any
        .issue(&mut ledger, &romeo(), &empty_type, NOW, random(3))
        .unwrap();
    let path = slot
        .put_url
        .strip_prefix(any.signer().public_url())
        .unwrap();
    let grant = any.signer().verify_put(path, NOW).unwrap();
    assert_eq!(grant.content_type, "application/octet-stream");
}

#[test]
fn bad_names_and_types_are_bad_requests() {
    let issuer = issuer(policy());
    let mut ledger = MemoryLedger::new();
    let cases = [
        (
            SlotRequest {
                filename: "",
                ..request(1)
            },
            SlotRefusal::BadFilename(FilenameError::Empty),
        ),
        (
            SlotRequest {
                filename: "..",
                ..request(1)
            },
            SlotRefusal::BadFilename(FilenameError::OnlyDots),
        ),
        (
            SlotRequest {
                content_type: Some("image/png\r\nSet-Cookie: x=1"),
                ..request(1)
            },
            SlotRefusal::BadContentType,
        ),
    ];
    for (bad, expected) in cases {
        let refusal = issuer
            .issue(&mut ledger, &romeo(), &bad, NOW, random(1))
            .unwrap_err();
        assert_eq!(refusal, expected);
        let error = refusal.stanza_error();
        assert_eq!(
            (error.error_type, error.condition),
            (ErrorType::Modify, Condition::BadRequest)
        );
    }
    assert_eq!(ledger.usage(&romeo().to_bare(), NOW), Default::default());
}
