//! Properties: any sequence of put / ack / commit / compact / reopen leaves, after a reopen,
//! exactly the tables of the last commit, with ids still increasing; a random history cut or
//! damaged anywhere replays to one of its committed states and never panics.

mod common;

use proptest::prelude::*;

use common::{build_history, commit, config, snapshot, stanza, write_log, Snapshot, TempDir};
use rookery_store::{MsgId, Store};

#[derive(Debug, Clone)]
enum Op {
    Put { owner: u8, len: u16 },
    Ack { pick: u16 },
    AckUnknown,
    Commit,
    Compact,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..4, 0u16..300).prop_map(|(owner, len)| Op::Put { owner, len }),
        4 => any::<u16>().prop_map(|pick| Op::Ack { pick }),
        1 => Just(Op::AckUnknown),
        3 => Just(Op::Commit),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

/// The model: what was committed, and the highest id ever handed out before it.
struct Model {
    committed: Snapshot,
    max_committed_id: u64,
    max_id: u64,
}

impl Model {
    fn commit(&mut self, store: &Store) {
        self.committed = snapshot(store);
        self.max_committed_id = self.max_id;
    }
}

fn reopen(store: Store, dir: &TempDir, model: &mut Model) -> Result<Store, TestCaseError> {
    drop(store);
    let store =
        Store::open(small_compaction(dir)).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(
        store.replay_report().is_clean(),
        "{}",
        store.replay_report()
    );
    prop_assert_eq!(&snapshot(&store), &model.committed);
    // Uncommitted puts are gone; their ids may be handed out again, committed ones never.
    model.max_id = model.max_committed_id;
    Ok(store)
}

fn small_compaction(dir: &TempDir) -> rookery_store::StoreConfig {
    let mut cfg = config(dir.path());
    cfg.compact_min_bytes = 0;
    cfg
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let dir = TempDir::fast("prop");
    let mut store = Store::open(small_compaction(&dir)).unwrap();
    let mut model = Model {
        committed: Snapshot::new(),
        max_committed_id: 0,
        max_id: 0,
    };
    for (i, op) in ops.iter().enumerate() {
        match *op {
            Op::Put { owner, len } => {
                let id = store
                    .put(
                        &format!("u{owner}@x"),
                        "s@x/r",
                        i as u64,
                        &stanza(i as u64, len.into()),
                    )
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(
                    id.0 > model.max_id,
                    "id {} reused (max {})",
                    id,
                    model.max_id
                );
                model.max_id = id.0;
            }
            Op::Ack { pick } => {
                let live: Vec<(String, MsgId)> = store
                    .owners()
                    .flat_map(|o| store.queue(o).map(move |m| (o.to_string(), m.id)))
                    .collect();
                if let Some((owner, id)) = live.get(usize::from(pick) % live.len().max(1)) {
                    prop_assert!(store.ack(owner, *id).unwrap());
                    prop_assert!(store.get(owner, *id).is_none());
                }
            }
            Op::AckUnknown => prop_assert!(!store.ack("u0@x", MsgId(u64::MAX)).unwrap()),
            Op::Commit => {
                commit(&mut store);
                model.commit(&store);
            }
            Op::Compact => {
                commit(&mut store);
                model.commit(&store);
                store
                    .compact()
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&snapshot(&store), &model.committed);
            }
            Op::Reopen => store = reopen(store, &dir, &mut model)?,
        }
    }
    reopen(store, &dir, &mut model).map(drop)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn reopen_gives_the_committed_tables(ops in prop::collection::vec(op(), 0..48)) {
        run(&ops)?;
    }

    #[test]
    fn any_cut_or_flip_replays_a_committed_state(
        steps in prop::collection::vec(
            prop_oneof![3 => (0u64..1000).prop_map(Ok), 1 => (0usize..50).prop_map(Err)],
            1..30,
        ),
        cut_frac in 0.0f64..=1.0,
        flip in proptest::option::of((0.0f64..1.0, 1u8..=255)),
    ) {
        let src = TempDir::fast("prop-src");
        let history = build_history(src.path(), &steps);
        let mut bytes = history.bytes.clone();
        let body = rookery_store::format::HEADER_LEN;
        let cut = body + ((bytes.len() - body) as f64 * cut_frac) as usize;
        bytes.truncate(cut);
        let mut limit = cut as u64;
        if let Some((at, mask)) = flip {
            if cut > body {
                let pos = body + ((cut - body) as f64 * at) as usize;
                bytes[pos] ^= mask;
                limit = limit.min(pos as u64);
            }
        }
        let dir = TempDir::fast("prop-cut");
        write_log(dir.path(), &bytes);
        let store = Store::open(config(dir.path())).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let k = store.replay_report().records as usize;
        prop_assert!(k <= history.records_within(limit), "{}", store.replay_report());
        prop_assert_eq!(&snapshot(&store), &history.states[k]);
        prop_assert_eq!(store.replay_report().valid_bytes, history.ends[k]);
    }
}
