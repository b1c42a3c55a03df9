//! Wire form of `Mail`: every variant round-trips, and garbage is an error, never a panic.

use proptest::prelude::*;

use super::*;

fn jid() -> impl Strategy<Value = Jid> {
    let local = proptest::option::of("[a-z0-9]{1,8}");
    let resource = proptest::option::of("[A-Za-z0-9 ]{1,8}");
    (local, "[a-z]{1,6}\\.[a-z]{2,3}", resource).prop_map(|(local, domain, resource)| {
        Jid::new(local.as_deref(), &domain, resource.as_deref()).expect("a valid JID")
    })
}

fn kind() -> impl Strategy<Value = StanzaKind> {
    (0..KINDS.len()).prop_map(|i| KINDS[i].0)
}

fn ty() -> impl Strategy<Value = StanzaType> {
    (0..TYPES.len()).prop_map(|i| TYPES[i].0)
}

fn location() -> impl Strategy<Value = Location> {
    (any::<u16>(), any::<u16>()).prop_map(|(node, shard)| Location {
        node: NodeId(node),
        shard: ShardId(shard),
    })
}

fn ack() -> impl Strategy<Value = AckRef> {
    (location(), any::<u64>(), any::<u64>()).prop_map(|(origin, session, stanza)| AckRef {
        origin,
        session: SessionRef(session),
        stanza,
    })
}

fn gather() -> impl Strategy<Value = GatherRef> {
    (location(), any::<u64>()).prop_map(|(origin, id)| GatherRef { origin, id })
}

fn recipient() -> impl Strategy<Value = Recipient> {
    (0..3u8, jid()).prop_map(|(tag, jid)| match tag {
        0 => Recipient::Available(jid),
        1 => Recipient::Session(jid),
        _ => Recipient::Member(jid),
    })
}

fn stanza() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..64)
}

fn fanout() -> impl Strategy<Value = Fanout> {
    let recipients = proptest::collection::vec(recipient(), 0..5);
    let head = (jid(), kind(), ty(), stanza());
    (head, recipients, proptest::option::of(gather())).prop_map(
        |((from, kind, ty, stanza), recipients, gather)| Fanout {
            from,
            kind,
            ty,
            stanza: Arc::from(stanza),
            recipients: Arc::from(recipients),
            gather,
        },
    )
}

fn node_fanout() -> impl Strategy<Value = NodeFanout> {
    let part = (any::<u16>(), proptest::collection::vec(recipient(), 0..4))
        .prop_map(|(shard, list)| (ShardId(shard), Arc::from(list)));
    let parts = proptest::collection::vec(part, 0..4);
    let head = (jid(), kind(), ty(), stanza());
    (head, parts, proptest::option::of(gather())).prop_map(
        |((from, kind, ty, stanza), parts, gather)| NodeFanout {
            from,
            kind,
            ty,
            stanza: Arc::from(stanza),
            parts,
            gather,
        },
    )
}

fn mail() -> impl Strategy<Value = Mail> {
    let deliver = (
        jid(),
        jid(),
        kind(),
        ty(),
        stanza(),
        proptest::option::of(ack()),
    )
        .prop_map(|(to, from, kind, ty, stanza, ack)| Mail::Deliver {
            to,
            from,
            kind,
            ty,
            stanza: stanza.into(),
            ack,
        });
    prop_oneof![
        deliver,
        ack().prop_map(Mail::Committed),
        fanout().prop_map(|f| Mail::Fanout(Box::new(f))),
        node_fanout().prop_map(|f| Mail::NodeFanout(Box::new(f))),
        (gather(), any::<u32>()).prop_map(|(gather, refused)| Mail::Gathered { gather, refused }),
    ]
}

fn encoded(mail: &Mail) -> Vec<u8> {
    let mut out = Vec::new();
    mail.encode(&mut out);
    out
}

proptest! {
    #[test]
    fn every_mail_round_trips(mail in mail()) {
        let bytes = encoded(&mail);
        prop_assert_eq!(Mail::decode(&bytes), Ok(mail));
    }

    #[test]
    fn a_cut_mail_is_truncated(mail in mail(), cut in any::<prop::sample::Index>()) {
        let bytes = encoded(&mail);
        let at = cut.index(bytes.len());
        prop_assert!(Mail::decode(&bytes[..at]).is_err());
    }

    #[test]
    fn garbage_is_an_error_or_a_mail_never_a_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        // Whatever it decodes to, decoding returned: no panic, no huge reservation.
        let _ = Mail::decode(&bytes);
    }

    #[test]
    fn a_corrupted_byte_never_panics(mail in mail(), at in any::<prop::sample::Index>(), b in any::<u8>()) {
        let mut bytes = encoded(&mail);
        let i = at.index(bytes.len());
        bytes[i] = b;
        let _ = Mail::decode(&bytes);
    }
}

#[test]
fn version_tag_and_trailing_bytes_are_checked() {
    let mail = Mail::Gathered {
        gather: GatherRef {
            origin: Location::local(3),
            id: 7,
        },
        refused: 2,
    };
    let mut bytes = encoded(&mail);
    assert_eq!(bytes.len(), 2 + 4 + 8 + 4);
    bytes.push(0);
    assert_eq!(Mail::decode(&bytes), Err(WireError::Trailing(1)));
    bytes.pop();
    bytes[0] = 9;
    assert_eq!(Mail::decode(&bytes), Err(WireError::Version(9)));
    bytes[0] = MAIL_VERSION;
    bytes[1] = 77;
    assert_eq!(
        Mail::decode(&bytes),
        Err(WireError::Unknown {
            what: "tag",
            value: 77
        })
    );
    assert_eq!(Mail::decode(&[]), Err(WireError::Truncated));
    assert!(WireError::Version(9).to_string().contains("every node"));
}

#[test]
fn a_huge_recipient_count_reserves_nothing_and_fails() {
    let fanout = Fanout {
        from: Jid::parse("a@b.c/d").expect("valid"),
        kind: StanzaKind::Presence,
        ty: StanzaType::Available,
        stanza: Arc::from(&b"<presence/>"[..]),
        recipients: Arc::from(Vec::new()),
        gather: None,
    };
    let mut bytes = encoded(&Mail::Fanout(Box::new(fanout)));
    // The count sits before the final gather flag.
    let count_at = bytes.len() - 5;
    bytes[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(Mail::decode(&bytes), Err(WireError::Truncated));
}

#[test]
fn a_node_fanout_splits_into_one_fanout_per_shard_sharing_the_stanza() {
    let jid = |s: &str| Jid::parse(s).expect("valid");
    let node = NodeFanout {
        from: jid("room@groups.b.c/nick"),
        kind: StanzaKind::Message,
        ty: StanzaType::Groupchat,
        stanza: Arc::from(&b"<message type='groupchat'/>"[..]),
        parts: vec![
            (ShardId(0), Arc::from(vec![Recipient::Member(jid("a@b.c"))])),
            (
                ShardId(3),
                Arc::from(vec![Recipient::Session(jid("d@b.c/r"))]),
            ),
        ],
        gather: Some(GatherRef {
            origin: Location::local(1),
            id: 9,
        }),
    };
    let parts: Vec<(ShardId, Fanout)> = node.split().collect();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[1].0, ShardId(3));
    assert_eq!(
        &*parts[1].1.recipients,
        [Recipient::Session(jid("d@b.c/r"))]
    );
    assert!(parts
        .iter()
        .all(|(_, f)| Arc::ptr_eq(&f.stanza, &node.stanza)));
    assert!(parts.iter().all(|(_, f)| f.gather == node.gather));
}
