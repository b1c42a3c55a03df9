//! Misbehaving servers: a loopback listener that, per conn in turn, answers with garbage,
//! closes at once, or accepts and never says a word. `rookery-load hold` must count each
//! client's failure by kind, never crash or hang, stop within its bounded time, and exit
//! non-zero (no client came online).

#[allow(dead_code)] // this test uses only `run_load`
mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::run_load;

const CLIENTS: u64 = 30;

/// Serves until `stop`: conn i gets garbage (i % 3 == 0), an immediate close (1) or silence (2).
fn misbehaving_server(stop: Arc<AtomicBool>) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = std::thread::spawn(move || {
        let mut silent = Vec::new();
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut conn, _)) => {
                    match n % 3 {
                        0 => {
                            let mut header = [0u8; 512];
                            let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
                            let _ = conn.read(&mut header);
                            let _ =
                                conn.write_all(b"\x00\x01 this is not XML at all <<<>>> \xff\xfe");
                            silent.push(conn);
                        }
                        1 => drop(conn),
                        _ => silent.push(conn),
                    }
                    n += 1;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    (addr, handle)
}

#[test]
fn garbage_early_close_and_stalls_are_counted_and_the_run_stops_by_itself() {
    let stop = Arc::new(AtomicBool::new(false));
    let (addr, server) = misbehaving_server(Arc::clone(&stop));
    let started = Instant::now();
    let clients = CLIENTS.to_string();
    let (summary, _, output) = run_load(
        "misbehaving",
        &[
            "hold",
            "--server",
            &addr,
            "--clients",
            &clients,
            "--connect-rate",
            "1000",
            "--duration",
            "1s",
            "--login-timeout-ms",
            "1500",
            "--connect-timeout-ms",
            "1500",
            "--threads",
            "1",
        ],
        3,
    );
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "bounded: {:?}",
        started.elapsed()
    );
    let counts = &summary["counts"];
    assert_eq!(counts["logins"], 0, "{counts}\n{output}");
    assert_eq!(
        counts["errors_total"], CLIENTS,
        "every client failed once: {counts}\n{output}"
    );
    let errors = counts["errors"].as_object().expect("errors by kind");
    assert!(
        errors.len() >= 2,
        "several kinds (protocol, closed, login timeout): {errors:?}"
    );
}
