//! The ring and membership arithmetic, and option validation.

use super::*;

#[test]
fn ring_contacts_are_symmetric_distinct_and_indexed_both_ways() {
    for (clients, contacts) in [(5u32, 4u32), (50, 4), (7, 2), (1000, 50), (11, 10)] {
        let ring = Ring { clients, contacts };
        for c in 0..clients {
            let mut seen = std::collections::HashSet::new();
            for pos in 0..contacts {
                let other = ring.contact(c, pos);
                assert_ne!(other, c, "nobody is their own contact");
                assert!(
                    seen.insert(other),
                    "contact {other} of {c} twice ({clients}, {contacts})"
                );
                assert_eq!(ring.position(c, other), Some(pos));
                assert!(ring.position(other, c).is_some(), "symmetric");
            }
            let count = (0..clients)
                .filter(|&o| ring.position(c, o).is_some())
                .count();
            assert_eq!(count, contacts as usize, "exactly K contacts");
        }
    }
    let ring = Ring {
        clients: 50,
        contacts: 4,
    };
    // Client 0's contacts: 1, 2, then 49, 48.
    let all: Vec<u32> = (0..4).map(|p| ring.contact(0, p)).collect();
    assert_eq!(all, vec![1, 2, 49, 48]);
    assert_eq!(ring.position(0, 3), None);
    assert_eq!(ring.position(0, 0), None);
    assert_eq!(ring.position(0, 50), None, "out of range");
    let big = Ring {
        clients: u32::MAX,
        contacts: 2,
    };
    assert_eq!(big.contact(u32::MAX - 1, 0), 0, "wraps without overflow");
    assert_eq!(big.position(u32::MAX - 1, 0), Some(0));
}

#[test]
fn group_members_wrap_and_map_back() {
    let groups = Groups {
        clients: 25,
        groups: 3,
        members: 10,
    };
    // Group 2 holds clients 20..25 then 0..5.
    let members: Vec<u32> = (0..10).map(|m| groups.member(2, m)).collect();
    assert_eq!(members, vec![20, 21, 22, 23, 24, 0, 1, 2, 3, 4]);
    for g in 0..3 {
        for m in 0..10 {
            assert_eq!(groups.position(g, groups.member(g, m)), Some(m));
        }
    }
    assert_eq!(groups.groups_of(0).collect::<Vec<_>>(), vec![0, 2]);
    assert_eq!(groups.groups_of(15).collect::<Vec<_>>(), vec![1]);
    assert_eq!(groups.position(1, 9), None);
    assert_eq!(groups.position(3, 0), None, "no such group");
    // Each client is in about G*S/N groups; every membership is counted once.
    let total: usize = (0..25).map(|c| groups.groups_of(c).count()).sum();
    assert_eq!(total, 30);
}

fn args() -> FanoutArgs {
    FanoutArgs::default()
}

#[test]
fn options_are_validated_per_scenario() {
    let presence = resolve(Scenario::Presence, &args(), 100, "d")
        .unwrap()
        .unwrap();
    assert_eq!(presence.per_change(), DEFAULT_CONTACTS);
    assert_eq!(presence.rows(100), 100);
    assert_eq!(presence.probe_ms(), DEFAULT_PROBE_MS);
    for bad in [3, 0, 100, 102] {
        let a = FanoutArgs {
            contacts: Some(bad),
            ..args()
        };
        assert!(resolve(Scenario::Presence, &a, 100, "d").is_err(), "{bad}");
    }
    let group = resolve(Scenario::Group, &args(), 100, "Ex.Test")
        .unwrap()
        .unwrap();
    assert_eq!(
        group,
        Fanout::Group {
            groups: DEFAULT_GROUPS,
            members: DEFAULT_MEMBERS,
            muc_domain: "groups.Ex.Test".into(),
            setup_ms: DEFAULT_SETUP_MS,
            presence_broadcast: None,
        }
    );
    let roles = |spec: &str| FanoutArgs {
        presence_broadcast: Some(spec.into()),
        ..args()
    };
    let moderated = resolve(Scenario::Group, &roles("Moderator, visitor"), 100, "d");
    assert!(matches!(
        moderated.unwrap(),
        Some(Fanout::Group { presence_broadcast: Some(ref r), .. }) if r == "moderator,visitor"
    ));
    assert!(resolve(Scenario::Group, &roles("none"), 100, "d").is_ok());
    assert!(resolve(Scenario::Group, &roles("admins"), 100, "d").is_err());
    assert!(resolve(Scenario::Presence, &roles("none"), 100, "d").is_err());
    assert_eq!((group.rows(100), group.per_change()), (10, 100));
    let too_big = FanoutArgs {
        members: Some(101),
        ..args()
    };
    assert!(resolve(Scenario::Group, &too_big, 100, "d").is_err());
    let bad_domain = FanoutArgs {
        muc_domain: Some("x y".into()),
        ..args()
    };
    assert!(resolve(Scenario::Group, &bad_domain, 100, "d").is_err());
    let crossed = FanoutArgs {
        contacts: Some(4),
        ..args()
    };
    assert!(resolve(Scenario::Group, &crossed, 100, "d").is_err());
    assert!(resolve(Scenario::Chat, &crossed, 100, "d").is_err());
    assert_eq!(resolve(Scenario::Chat, &args(), 100, "d").unwrap(), None);
}

#[test]
fn join_errors_are_named_by_condition() {
    assert_eq!(
        JoinError::from_condition("service-unavailable"),
        JoinError::ServiceUnavailable
    );
    assert_eq!(
        JoinError::from_condition("item-not-found"),
        JoinError::ItemNotFound
    );
    assert_eq!(JoinError::from_condition("timeout"), JoinError::Other);
    assert_eq!(JoinError::from_condition("gone"), JoinError::Other);
}
