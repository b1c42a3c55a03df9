//! Against the real server over loopback: a chat spread over two worker processes counts
//! exactly like one process (every login, every message, every receipt), and a reconnect
//! storm loops logins at the rate it is allowed. Small loads, bounded in time.

mod common;

use common::{load_args, run_load, Server};

#[test]
fn two_processes_count_like_one() {
    let server = Server::start();
    let chat = [
        "--rate",
        "2",
        "--duration",
        "3s",
        "--processes",
        "2",
        "--receipts",
    ];
    let args = load_args("chat", &server.addr, "40", "400", &chat);
    let (summary, dir, text) = run_load("procs", &args, 0);
    assert!(
        text.contains("40 clients over 2 processes (RLIMIT_NOFILE hard"),
        "{text}"
    );
    assert_eq!(summary["processes"]["count"], 2);
    let counts = &summary["counts"];
    assert_eq!(counts["logins"], 40, "{counts}");
    assert_eq!(counts["errors_total"], 0, "{counts}");
    let messages = &counts["messages"];
    let sent = messages["sent"].as_u64().expect("sent");
    // 40 clients x 2 msg/s x 3 s, give or take the random phases at the edges.
    assert!((200..=260).contains(&sent), "sent {sent}");
    assert_eq!(messages["delivered"].as_u64(), Some(sent), "{messages}");
    for zero in ["lost", "duplicated", "unexpected", "out_of_order"] {
        assert_eq!(messages[zero], 0, "{zero}: {messages}");
    }
    let receipts = &counts["receipts"];
    assert_eq!(receipts["sent"].as_u64(), Some(sent), "{receipts}");
    assert_eq!(receipts["delivered"].as_u64(), Some(sent), "{receipts}");
    assert_eq!(receipts["lost"], 0, "{receipts}");
    let latency = &summary["latency_us"];
    assert_eq!(latency["e2e_corrected"]["count"].as_u64(), Some(sent));
    assert_eq!(latency["receipt_rtt"]["count"].as_u64(), Some(sent));
    assert_eq!(latency["login"]["count"], 40);
    // The per-second series adds up to the totals, and the interval logs hold every value.
    let series = summary["series_per_second"].as_array().expect("series");
    assert_eq!(series.last().expect("a point")["sent"].as_u64(), Some(sent));
    let hlog = std::fs::read_to_string(dir.join("e2e_corrected.hlog")).expect("hlog");
    assert!(
        hlog.lines()
            .filter(|l| l.starts_with("Tag=e2e_corrected,"))
            .count()
            >= 3
    );
    for svg in ["latency-percentiles.svg", "timeline.svg"] {
        let text = std::fs::read_to_string(dir.join(svg)).expect(svg);
        assert!(
            text.starts_with("<svg") && text.contains("<polyline"),
            "{svg}"
        );
    }
    let _ = std::fs::remove_dir_all(dir.parent().expect("output folder"));
}

#[test]
fn storm_reconnects_at_the_allowed_rate() {
    let server = Server::start();
    let flags = [
        "--duration",
        "2s",
        "--reconnect-rate",
        "150",
        "--max-errors",
        "0",
    ];
    let args = load_args("storm", &server.addr, "30", "300", &flags);
    let (summary, dir, text) = run_load("storm", &args, 0);
    assert!(text.contains("logins/s mean"), "{text}");
    let storm = &summary["storm"];
    let logins = storm["logins"].as_u64().expect("storm logins");
    // 150 reconnects/s for 2 s, plus the pacer's 10 ms burst; each one logs in.
    assert!(
        (240..=310).contains(&logins),
        "storm logins {logins}: {storm}"
    );
    let peak = storm["logins_per_s_peak"].as_u64().expect("peak");
    assert!((100..=170).contains(&peak), "peak {peak}: {storm}");
    assert_eq!(summary["counts"]["errors_total"], 0);
    // Only the storm's logins are timed; the ramp is the warm-up.
    assert_eq!(
        summary["latency_us"]["login"]["count"].as_u64(),
        Some(logins)
    );
    assert_eq!(summary["counts"]["logins"].as_u64(), Some(30 + logins));
    let _ = std::fs::remove_dir_all(dir.parent().expect("output folder"));
}
