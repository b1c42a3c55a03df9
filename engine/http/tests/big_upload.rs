//! A 100 MB upload and download stream through bounded memory (its own test binary, so no
//! other test's allocations move the process's RSS).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{full, Harness, Pattern, PatternBody};
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, StatusCode};
use rookery_upload::SlotPolicy;

const SIZE: u64 = 100_000_000;
/// Far below the file's 100 MB: the server's batches and hyper's buffers are a few MiB.
const RSS_GROWTH_LIMIT_BYTES: u64 = 32 << 20;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Samples the RSS every 2 ms while `work` runs; returns the peak.
fn peak_rss_during<T>(work: impl FnOnce() -> T) -> (T, u64) {
    let peak = Arc::new(AtomicU64::new(rss_bytes()));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Relaxed) {
                peak.fetch_max(rss_bytes(), Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let result = work();
    done.store(true, Relaxed);
    sampler.join().unwrap();
    (result, peak.load(Relaxed).max(rss_bytes()))
}

/// Downloads and compares with the pattern as it arrives; returns the bytes compared.
async fn compare_download(h: &Harness, request: hyper::Request<Full<Bytes>>) -> u64 {
    let response = common::send(h.addr(), request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut expected = Pattern::new(7);
    let mut seen = 0u64;
    let mut pending: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.unwrap().into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        // Compare whole 8-byte words; the pattern is generated a word at a time.
        let whole = pending.len() - pending.len() % 8;
        let mut want = vec![0u8; whole];
        expected.fill(&mut want);
        assert!(
            pending[..whole] == want[..],
            "bytes differ near offset {seen}"
        );
        seen += whole as u64;
        pending.drain(..whole);
    }
    assert!(pending.is_empty());
    seen
}

#[test]
fn a_100_mb_file_streams_through_bounded_memory() {
    let policy = SlotPolicy {
        max_file_bytes: SIZE,
        ..SlotPolicy::default()
    };
    let mut h = Harness::start(policy, |_| {});
    // Warm up: threads, buffers and the allocator's arenas exist before the baseline.
    let warm = h.slot("romeo@montague.tld", "warm.bin", 4 << 20, None);
    let warm_data = Pattern::bytes(9, 4 << 20);
    assert_eq!(
        h.put(&warm.put_url, None, &warm_data).status,
        StatusCode::CREATED
    );
    assert!(h.get(&warm.get_url, &[]).body == warm_data);

    let slot = h.slot("romeo@montague.tld", "big.bin", SIZE, None);
    let baseline = rss_bytes();
    let (reply, upload_peak) = peak_rss_during(|| {
        h.request(
            Method::PUT,
            &slot.put_url,
            &[],
            PatternBody::new(7, SIZE, true),
        )
    });
    assert_eq!(reply.status, StatusCode::CREATED);
    let stored = h.upload_dir().join(format!("upload/files/{}", slot.token));
    assert_eq!(std::fs::metadata(stored).unwrap().len(), SIZE);

    let request = common::build(Method::GET, &slot.get_url, &[], full(b""));
    let (compared, download_peak) =
        peak_rss_during(|| h.rt.block_on(compare_download(&h, request)));
    assert_eq!(compared, SIZE);

    let range = h.get(&slot.get_url, &[("range", "bytes=50000000-50000099")]);
    assert_eq!(range.status, StatusCode::PARTIAL_CONTENT);
    let mut prefix = vec![0u8; 50_000_100];
    Pattern::new(7).fill(&mut prefix);
    assert!(range.body == prefix[50_000_000..]);

    let upload_growth = upload_peak.saturating_sub(baseline);
    let download_growth = download_peak.saturating_sub(baseline);
    println!(
        "RSS baseline {} MiB, growth during upload {} KiB, during download {} KiB",
        baseline >> 20,
        upload_growth >> 10,
        download_growth >> 10
    );
    assert!(
        upload_growth < RSS_GROWTH_LIMIT_BYTES,
        "upload grew RSS by {upload_growth} B"
    );
    assert!(
        download_growth < RSS_GROWTH_LIMIT_BYTES,
        "download grew RSS by {download_growth} B"
    );
}
