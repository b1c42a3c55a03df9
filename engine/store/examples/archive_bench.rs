//! Fills one shard's message archive with `MESSAGES` one-to-one messages (spread over
//! `OWNERS` owners, a conversation with 10 contacts each, one segment file per 4 MiB), then
//! times XEP-0313-style queries: the newest page of 50 (what a client asks when it comes
//! back), a page of 50 after an id in the middle, and the newest page filtered by `with`.
//! Prints p50/p99 per kind and the bytes on disk per message.
//!
//! `cargo run --release -p rookery-store --example archive_bench [-- MESSAGES [DIR]]`

use std::time::Instant;

use rookery_store::archive::{Archive, ArchiveConfig, Direction, Query};

const OWNERS: u64 = 1_000;
const QUERIES: usize = 2_000;
const PAGE: usize = 50;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let messages: u64 = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let base = args.next().map_or_else(std::env::temp_dir, Into::into);
    let dir = base.join(format!("rookery-archive-bench-{}", std::process::id()));
    let config = ArchiveConfig {
        dir: Some(dir.clone()),
        retention_ms: 0,
        segment_bytes: 4 << 20,
        memory_max_bytes: 0,
    };
    let mut archive = Archive::open(config.clone())?;
    let t0 = 1_765_000_000_000u64;
    let started = Instant::now();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for n in 0..messages {
        let owner = n % OWNERS;
        let contact = (n / OWNERS) % 10;
        let stanza = format!(
            "<message to='user{owner}@example.com' type='chat' id='m{n}' \
from='contact{contact}@example.com/phone'><body>message number {n}, a short line of chat \
text</body><stanza-id xmlns='urn:xmpp:sid:0' by='user{owner}@example.com' id='{}'/></message>",
            archive.next_id()
        );
        let id = archive.next_id();
        let owner = format!("user{owner}@example.com");
        let with = format!("contact{contact}@example.com/phone");
        // 10 messages a second across the shard: ~28 hours, two day segments at least.
        let record = (id, t0 + n * 100, Direction::Incoming);
        archive.append(record, &owner, &with, stanza.as_bytes())?;
    }
    let fill = started.elapsed();
    drop(archive);
    let archive = Archive::open(config)?;
    let stats = archive.stats();
    let on_disk: u64 = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!(
        "filled {messages} messages in {:.1} s; {} segments; {on_disk} bytes on disk \
({:.1} B/message, records {:.1} B/message)",
        fill.as_secs_f64(),
        stats.segments,
        on_disk as f64 / messages as f64,
        stats.bytes as f64 / messages as f64,
    );
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mid_id = messages / 2;
    for kind in [
        "newest page",
        "page after a middle id",
        "newest page with one contact",
    ] {
        let mut times = Vec::with_capacity(QUERIES);
        let mut got = 0;
        for _ in 0..QUERIES {
            let owner = format!("user{}@example.com", next() % OWNERS);
            let with = format!("contact{}@example.com", next() % 10);
            let mut query = Query {
                owner: &owner,
                max: PAGE,
                from_end: true,
                ..Query::default()
            };
            match kind {
                "page after a middle id" => {
                    query.from_end = false;
                    query.after_id = Some(mid_id);
                }
                "newest page with one contact" => query.with = Some(&with),
                _ => {}
            }
            let started = Instant::now();
            let page = archive.query(&query)?;
            times.push(started.elapsed());
            got += page.messages.len();
        }
        times.sort_unstable();
        let at = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize];
        println!(
            "{kind}: p50 {:?} p99 {:?} ({} results/query)",
            at(0.50),
            at(0.99),
            got / QUERIES
        );
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
