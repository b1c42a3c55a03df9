//! Replay of torn and corrupt logs: every truncation point and every flipped byte of a real
//! history stops cleanly at the last good record, truncates there, and reports why.

mod common;

use std::fs;

use common::{
    build_history, commit, config, open, open_clean, snapshot, write_log, History, TempDir,
};
use rookery_store::{crc32c, format, OpenError, ReplayStop, StopReason, Store};

/// Puts to three owners interleaved with acks, one record per step.
fn steps() -> Vec<Result<u64, usize>> {
    let mut steps = Vec::new();
    for n in 0..24u64 {
        steps.push(Ok(n));
        if n % 3 == 2 {
            steps.push(Err(n as usize));
        }
    }
    steps
}

fn history(tag: &str) -> (TempDir, History) {
    let dir = TempDir::fast(tag);
    let history = build_history(dir.path(), &steps());
    (dir, history)
}

#[test]
fn truncation_at_every_offset_gives_the_committed_prefix() {
    let (_src, history) = history("cut-src");
    let dir = TempDir::fast("cut");
    let total = history.bytes.len() as u64;
    for cut in 0..=total {
        write_log(dir.path(), &history.bytes[..cut as usize]);
        let store = Store::open(config(dir.path())).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        let report = store.replay_report().clone();
        let path = store.log_path().unwrap().to_path_buf();
        if cut < format::HEADER_LEN as u64 {
            assert!(report.created, "cut {cut}");
            assert_eq!(report.bytes_dropped, cut);
            let torn = (cut > 0).then_some(ReplayStop {
                offset: 0,
                reason: StopReason::TornHeader { have: cut },
            });
            assert_eq!(report.stop, torn, "cut {cut}");
            assert_eq!(store.live_messages(), 0);
            assert_eq!(
                fs::metadata(&path).unwrap().len(),
                format::HEADER_LEN as u64
            );
            continue;
        }
        let k = history.records_within(cut);
        assert_eq!(report.records, k as u64, "cut {cut}");
        assert_eq!(snapshot(&store), history.states[k], "cut {cut}");
        assert_eq!(report.valid_bytes, history.ends[k], "cut {cut}");
        assert_eq!(report.bytes_dropped, cut - history.ends[k], "cut {cut}");
        assert_eq!(
            report.stop.is_none(),
            cut == history.ends[k],
            "cut {cut}: {report}"
        );
        if let Some(stop) = report.stop {
            assert_eq!(stop.offset, history.ends[k]);
            assert!(matches!(
                stop.reason,
                StopReason::TornFrame { .. } | StopReason::TornRecord { .. }
            ));
        }
        assert_eq!(
            fs::metadata(&path).unwrap().len(),
            history.ends[k],
            "truncated"
        );
    }
}

#[test]
fn a_flipped_byte_stops_replay_at_or_before_its_record() {
    let (_src, history) = history("flip-src");
    let dir = TempDir::fast("flip");
    let mut exact = 0;
    let body_start = format::HEADER_LEN;
    for pos in body_start..history.bytes.len() {
        // The record holding byte `pos`: replay must not get past it.
        let holder = history
            .ends
            .iter()
            .rposition(|&end| end <= pos as u64)
            .unwrap();
        for mask in [0x01u8, 0x80, 0xff] {
            let mut bytes = history.bytes.clone();
            bytes[pos] ^= mask;
            write_log(dir.path(), &bytes);
            let store = Store::open(config(dir.path())).unwrap();
            let report = store.replay_report();
            let replayed = report.records as usize;
            assert!(replayed <= holder, "pos {pos} mask {mask:#x}: {report}");
            assert_eq!(snapshot(&store), history.states[replayed], "pos {pos}");
            let stop = report.stop.expect("damage is reported");
            assert_eq!(stop.offset, history.ends[replayed]);
            assert_eq!(
                report.bytes_dropped,
                history.bytes.len() as u64 - stop.offset
            );
            exact += usize::from(replayed == holder);
        }
    }
    let flips = 3 * (history.bytes.len() - body_start);
    assert_eq!(exact, flips, "every flip is caught at its own record");
}

#[test]
fn a_flipped_header_byte_refuses_to_open_and_changes_nothing() {
    let (_src, history) = history("hdr-src");
    let dir = TempDir::fast("hdr");
    for pos in 0..format::HEADER_LEN {
        let mut bytes = history.bytes.clone();
        bytes[pos] ^= 0x10;
        write_log(dir.path(), &bytes);
        let err = Store::open(config(dir.path())).unwrap_err();
        if pos < 8 {
            assert!(matches!(err, OpenError::NotALog { .. }), "pos {pos}: {err}");
        } else {
            assert!(
                matches!(err, OpenError::UnsupportedVersion { .. }),
                "pos {pos}: {err}"
            );
        }
        assert_eq!(fs::read(config(dir.path()).log_path()).unwrap(), bytes);
    }
}

/// Opens `bytes` as a log and returns the report's stop and the snapshot size.
fn replay_of(dir: &TempDir, bytes: &[u8]) -> (rookery_store::ReplayReport, usize) {
    write_log(dir.path(), bytes);
    let store = open(dir.path());
    (store.replay_report().clone(), store.live_messages())
}

#[test]
fn torn_and_corrupt_tails_are_reported_precisely() {
    let (_src, history) = history("tails-src");
    let dir = TempDir::fast("tails");
    let good = &history.bytes;
    let total = good.len() as u64;
    let all = history
        .states
        .last()
        .unwrap()
        .values()
        .map(Vec::len)
        .sum::<usize>();

    let mut zeros = good.clone();
    zeros.extend_from_slice(&[0u8; 4096]);
    let (report, live) = replay_of(&dir, &zeros);
    let expected = ReplayStop {
        offset: total,
        reason: StopReason::BadLength { len: 0 },
    };
    assert_eq!(
        (report.stop, report.bytes_dropped, live),
        (Some(expected), 4096, all)
    );
    assert!(report.to_string().contains("STOPPED at offset"), "{report}");

    let mut frame = good.clone();
    frame.extend_from_slice(&[7, 0, 0]);
    let (report, _) = replay_of(&dir, &frame);
    assert_eq!(
        report.stop.map(|s| s.reason),
        Some(StopReason::TornFrame { have: 3 })
    );

    let mut record = good.clone();
    record.extend_from_slice(&100u32.to_le_bytes());
    record.extend_from_slice(&[0u8; 4 + 30]);
    let (report, _) = replay_of(&dir, &record);
    let reason = StopReason::TornRecord { len: 100, have: 30 };
    assert_eq!(report.stop.map(|s| s.reason), Some(reason));
    assert_eq!(report.bytes_dropped, 38);

    let mut huge = good.clone();
    huge.extend_from_slice(&(format::MAX_BODY_LEN + 1).to_le_bytes());
    huge.extend_from_slice(&[0u8; 64]);
    let (report, _) = replay_of(&dir, &huge);
    let reason = StopReason::BadLength {
        len: format::MAX_BODY_LEN + 1,
    };
    assert_eq!(report.stop.map(|s| s.reason), Some(reason));
}

#[test]
fn corruption_in_the_middle_keeps_the_rest_in_a_sibling_file_loudly() {
    let (_src, history) = history("middle-src");
    let dir = TempDir::fast("middle");
    let mut bytes = history.bytes.clone();
    let third = history.ends[3] as usize;
    bytes[third + 10] ^= 0x40; // inside the 4th record's body
    let (report, live) = replay_of(&dir, &bytes);
    assert_eq!(report.records, 3);
    assert_eq!(
        live,
        history.states[3].values().map(Vec::len).sum::<usize>()
    );
    let stop = report.stop.unwrap();
    assert_eq!(stop.offset, third as u64);
    assert!(matches!(stop.reason, StopReason::BadCrc { stored, computed } if stored != computed));
    assert_eq!(report.bytes_dropped, (history.bytes.len() - third) as u64);
    let kept = report.kept_in.clone().expect("the tail was kept");
    assert_eq!(kept, config(dir.path()).corrupt_path(third as u64));
    assert!(
        std::fs::read(&kept).unwrap() == bytes[third..],
        "the sibling holds exactly the bytes cut from the log"
    );
    let log_len = std::fs::metadata(config(dir.path()).log_path())
        .unwrap()
        .len();
    assert_eq!(
        log_len, third as u64,
        "the log was cut after the good records"
    );
    let text = report.to_string();
    assert!(
        text.contains("bad CRC") && text.contains("disk damage"),
        "{text}"
    );
    assert!(text.contains(&kept.display().to_string()), "{text}");
}

#[test]
fn a_malformed_record_with_a_good_crc_stops_replay() {
    let dir = TempDir::fast("malformed");
    let mut bytes = format::header().to_vec();
    format::encode_ack(&mut bytes, 1);
    let good_len = bytes.len() as u64;
    let body = [format::KIND_ACK, 1, 2, 3]; // an Ack payload must be 8 bytes
    bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&crc32c(&body).to_le_bytes());
    bytes.extend_from_slice(&body);
    let (report, _) = replay_of(&dir, &bytes);
    assert_eq!(report.records, 1);
    assert_eq!(report.ignored, 1, "an ack of an unknown id changes nothing");
    let expected = ReplayStop {
        offset: good_len,
        reason: StopReason::Malformed { kind: 2 },
    };
    assert_eq!(report.stop, Some(expected));
}

#[test]
fn a_repaired_log_takes_new_records_and_replays_clean() {
    let (_src, history) = history("repair-src");
    let dir = TempDir::fast("repair");
    let cut = history.bytes.len() - 5;
    write_log(dir.path(), &history.bytes[..cut]);
    let expected = {
        let mut store = open(dir.path());
        assert!(!store.replay_report().is_clean());
        store.put("new@x", "a@x/r", 1, b"after repair").unwrap();
        commit(&mut store);
        snapshot(&store)
    };
    let store = open_clean(dir.path());
    assert_eq!(snapshot(&store), expected);
}
