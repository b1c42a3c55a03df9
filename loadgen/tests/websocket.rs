//! End to end over loopback: `rookery-load --transport websocket` against the real server's
//! `/xmpp-websocket` (RFC 7395, the shards framing it): `hold` logs every client in, `chat`
//! loses nothing, and the results say the transport.
//!
//! Bounded: each run is a few seconds, killed after `common::RUN_TIMEOUT`.

mod common;

use common::{load_args, run_load, Server};

/// A loopback port free right now (bound and released: the server binds it next).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("bound").port()
}

#[test]
fn hold_and_chat_over_websocket_lose_nothing() {
    let http = format!("127.0.0.1:{}", free_port());
    let server = Server::start_with(&["--http-listen", &http, "--shards", "2"]);
    let ws = ["--transport", "websocket"];
    let mut hold = load_args("hold", &http, "50", "500", &ws);
    hold.extend_from_slice(&["--duration", "1s"]);
    let (summary, dir, text) = run_load("ws-hold", &hold, 0);
    let counts = &summary["counts"];
    assert_eq!(counts["logins"], 50, "{counts}");
    assert_eq!(counts["errors_total"], 0, "{counts}");
    assert_eq!(summary["config"]["transport"], "websocket");
    assert!(text.contains("over websocket /xmpp-websocket"), "{text}");
    let _ = std::fs::remove_dir_all(dir.parent().expect("output folder"));

    let mut chat = load_args("chat", &http, "20", "500", &ws);
    chat.extend_from_slice(&["--rate", "5", "--duration", "2s", "--receipts"]);
    let (summary, dir, _) = run_load("ws-chat", &chat, 0);
    let (counts, messages) = (&summary["counts"], &summary["counts"]["messages"]);
    assert_eq!(counts["logins"], 20, "{counts}");
    assert_eq!(counts["errors_total"], 0, "{counts}");
    assert!(messages["sent"].as_u64().unwrap_or(0) >= 100, "{messages}");
    assert_eq!(messages["delivered"], messages["sent"], "{messages}");
    assert_eq!(messages["lost"], 0, "{messages}");
    drop(server);
    let _ = std::fs::remove_dir_all(dir.parent().expect("output folder"));
}
