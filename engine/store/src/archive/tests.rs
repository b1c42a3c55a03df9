use super::*;

const T0: u64 = 1_700_000_000_000;

fn file_config(dir: &std::path::Path) -> ArchiveConfig {
    ArchiveConfig {
        dir: Some(dir.to_path_buf()),
        retention_ms: 0,
        segment_bytes: 1024,
        memory_max_bytes: 0,
    }
}

/// Appends `n` messages alternating alice<->bob and alice<->carol, one second apart.
fn fill(archive: &mut Archive, n: u64, from_ms: u64) -> Vec<u64> {
    let mut ids = Vec::new();
    for i in 0..n {
        let with = if i % 2 == 0 { "bob@x/phone" } else { "carol@x" };
        let id = archive.next_id();
        let stanza = format!("<message><body>m{i}</body></message>");
        let record = (id, from_ms + i * 1000, Direction::Incoming);
        archive
            .append(record, "alice@x", with, stanza.as_bytes())
            .expect("append");
        let id2 = archive.next_id();
        archive
            .append(
                (id2, from_ms + i * 1000, Direction::Outgoing),
                "zed@x",
                "alice@x",
                b"<m/>",
            )
            .expect("append other owner");
        ids.push(id);
    }
    ids
}

fn bodies(page: &Page) -> Vec<String> {
    page.messages
        .iter()
        .map(|m| String::from_utf8_lossy(&m.stanza).into_owned())
        .map(|s| {
            s.trim_start_matches("<message><body>")
                .trim_end_matches("</body></message>")
                .to_owned()
        })
        .collect()
}

fn q(owner: &str) -> Query<'_> {
    Query {
        owner,
        max: 100,
        ..Query::default()
    }
}

#[test]
fn writes_reopens_and_queries_across_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut archive = Archive::open(file_config(dir.path())).expect("open");
    let ids = fill(&mut archive, 40, T0);
    assert!(
        archive.stats().segments > 3,
        "1 KiB segments roll over: {:?}",
        archive.stats()
    );
    let all = archive.query(&q("alice@x")).expect("query");
    assert_eq!(all.messages.len(), 40);
    assert!(all.complete);
    drop(archive);

    let archive = Archive::open(file_config(dir.path())).expect("reopen");
    let all = archive.query(&q("alice@x")).expect("query");
    assert_eq!(bodies(&all)[..3], ["m0", "m1", "m2"]);
    assert_eq!(all.messages.len(), 40);
    assert_eq!(archive.query(&q("zed@x")).expect("zed").messages.len(), 40);
    assert_eq!(
        archive.query(&q("nobody@x")).expect("none").messages.len(),
        0
    );
    // by with: bare matches every resource; full only itself
    let bob = archive
        .query(&Query {
            with: Some("bob@x"),
            ..q("alice@x")
        })
        .expect("with");
    assert_eq!(bob.messages.len(), 20);
    let phone = Query {
        with: Some("bob@x/phone"),
        ..q("alice@x")
    };
    assert_eq!(archive.query(&phone).expect("full").messages.len(), 20);
    let tablet = Query {
        with: Some("bob@x/tablet"),
        ..q("alice@x")
    };
    assert_eq!(archive.query(&tablet).expect("other").messages.len(), 0);
    // by time
    let window = Query {
        start_ms: Some(T0 + 10_000),
        end_ms: Some(T0 + 12_000),
        ..q("alice@x")
    };
    assert_eq!(
        bodies(&archive.query(&window).expect("time")),
        ["m10", "m11", "m12"]
    );
    // by id
    let after = Query {
        after_id: Some(ids[37]),
        ..q("alice@x")
    };
    assert_eq!(
        bodies(&archive.query(&after).expect("after")),
        ["m38", "m39"]
    );
    let before = Query {
        before_id: Some(ids[2]),
        from_end: true,
        ..q("alice@x")
    };
    assert_eq!(
        bodies(&archive.query(&before).expect("before")),
        ["m0", "m1"]
    );
    // ids keep increasing after a reopen
    assert!(archive.next_id() > *ids.last().expect("ids"));
}

#[test]
fn pages_forward_and_from_the_end() {
    let mut archive = Archive::open(ArchiveConfig {
        segment_bytes: 512,
        ..ArchiveConfig::memory()
    })
    .expect("open");
    fill(&mut archive, 7, T0);
    let mut seen = Vec::new();
    let mut after = None;
    for _ in 0..10 {
        let page = archive
            .query(&Query {
                after_id: after,
                max: 2,
                ..q("alice@x")
            })
            .expect("page");
        seen.extend(bodies(&page));
        after = page.messages.last().map(|m| m.id);
        if page.complete {
            break;
        }
    }
    assert_eq!(seen, ["m0", "m1", "m2", "m3", "m4", "m5", "m6"]);
    let last = archive
        .query(&Query {
            from_end: true,
            max: 2,
            ..q("alice@x")
        })
        .expect("last");
    assert_eq!(bodies(&last), ["m5", "m6"]);
    assert!(!last.complete);
    let first = last.messages[0].id;
    let prev = archive
        .query(&Query {
            from_end: true,
            before_id: Some(first),
            max: 5,
            ..q("alice@x")
        })
        .expect("prev");
    assert_eq!(bodies(&prev), ["m0", "m1", "m2", "m3", "m4"]);
    assert!(prev.complete);
}

#[test]
fn retention_drops_whole_old_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ArchiveConfig {
        retention_ms: 2 * DAY_MS,
        segment_bytes: 1 << 20,
        ..file_config(dir.path())
    };
    let mut archive = Archive::open(config.clone()).expect("open");
    fill(&mut archive, 3, T0);
    fill(&mut archive, 3, T0 + DAY_MS);
    let segs = |dir: &std::path::Path| {
        std::fs::read_dir(dir)
            .expect("ls")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".seg"))
            })
            .count()
    };
    assert_eq!(segs(dir.path()), 2, "one segment per day");
    // Day 3: the first day is past two days of retention.
    fill(&mut archive, 1, T0 + 3 * DAY_MS);
    assert_eq!(archive.stats().segments_dropped, 1);
    assert_eq!(segs(dir.path()), 2);
    let all = archive.query(&q("alice@x")).expect("query");
    assert_eq!(bodies(&all), ["m0", "m1", "m2", "m0"]);
    drop(archive);
    let archive = Archive::open(config).expect("reopen");
    assert_eq!(
        archive.query(&q("alice@x")).expect("query").messages.len(),
        4
    );
}

#[test]
fn a_torn_tail_is_cut_at_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ArchiveConfig {
        segment_bytes: 1 << 20,
        ..file_config(dir.path())
    };
    let mut archive = Archive::open(config.clone()).expect("open");
    fill(&mut archive, 3, T0);
    drop(archive);
    let seg = std::fs::read_dir(dir.path())
        .expect("ls")
        .next()
        .expect("a file")
        .expect("entry")
        .path();
    let mut bytes = std::fs::read(&seg).expect("read");
    bytes.extend_from_slice(&[9, 0, 0, 0, 1, 2]);
    std::fs::write(&seg, bytes).expect("tear");
    let mut archive = Archive::open(config).expect("reopen");
    assert_eq!(
        archive.query(&q("alice@x")).expect("query").messages.len(),
        3
    );
    fill(&mut archive, 1, T0 + 5000);
    assert_eq!(
        archive.query(&q("alice@x")).expect("query").messages.len(),
        4
    );
}

#[test]
fn memory_archive_stays_under_its_cap() {
    let config = ArchiveConfig {
        segment_bytes: 1024,
        memory_max_bytes: 4096,
        ..ArchiveConfig::memory()
    };
    let mut archive = Archive::open(config).expect("open");
    fill(&mut archive, 200, T0);
    assert!(
        archive.stats().bytes <= 4096 + 1024,
        "{:?}",
        archive.stats()
    );
    assert!(archive.stats().segments_dropped > 0);
}

/// Records wait in memory for one write: the file does not grow until `flush` (or 64 KiB),
/// queries see them meanwhile, and what was flushed is what a crash (no drop) leaves.
#[test]
fn records_are_held_until_flushed_and_queried_meanwhile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = ArchiveConfig {
        segment_bytes: 4 << 20,
        ..file_config(dir.path())
    };
    let segment_len = || -> u64 {
        let entries = std::fs::read_dir(dir.path()).expect("dir");
        entries
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum()
    };
    let mut archive = Archive::open(config.clone()).expect("open");
    fill(&mut archive, 3, T0);
    assert_eq!(segment_len(), 0, "held, not written");
    assert_eq!(
        archive.query(&q("alice@x")).expect("query").messages.len(),
        3
    );
    archive.flush().expect("flush");
    let flushed = segment_len();
    assert!(flushed > 0, "one write for the held records");
    fill(&mut archive, 2, T0 + 10_000);
    assert_eq!(
        segment_len(),
        flushed,
        "the next ones wait for the next flush"
    );
    let page = archive.query(&q("alice@x")).expect("query");
    assert_eq!(
        bodies(&page),
        ["m0", "m1", "m2", "m0", "m1"],
        "file and memory, in order"
    );
    // A crash: the process dies without dropping the archive.
    std::mem::forget(archive);
    let reopened = Archive::open(config.clone()).expect("reopen");
    assert_eq!(
        reopened.query(&q("alice@x")).expect("query").messages.len(),
        3
    );
    drop(reopened);

    // Past 64 KiB held, an append writes them without a flush.
    let mut archive = Archive::open(config).expect("open");
    let before = segment_len();
    let stanza = vec![b'x'; 1024];
    for _ in 0..70 {
        let id = archive.next_id();
        let record = (id, T0 + 20_000, Direction::Incoming);
        archive
            .append(record, "big@x", "bob@x", &stanza)
            .expect("append");
    }
    assert!(
        segment_len() >= before + 64 * 1024,
        "64 KiB held makes a write"
    );
}
