//! EMFILE: with the fd table full, accept fails; the driver reports `AcceptFailed`, backs off
//! instead of spinning, and accepts the waiting conns once fds are available again.
//!
//! io_uring's accept snapshots RLIMIT_NOFILE when its SQE is prepared, so the limit is lowered
//! before the listener is armed (as in production, where it is set at start).
//!
//! Runs in a child process (the test binary re-executes itself for this one test) because it
//! lowers RLIMIT_NOFILE, which would disturb tests running in parallel.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;

use super::*;

const CHILD_ENV: &str = "ROOKERY_IO_EMFILE_CHILD";

fn run_in_child(test_path: &str, body: impl FnOnce()) {
    if std::env::var_os(CHILD_ENV).is_some() {
        body();
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test_path, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("re-run the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprint!("{stderr}");
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 passed"),
        "child did not run {test_path}:\n{stdout}"
    );
}

fn nofile() -> libc::rlimit {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out-pointer for the call.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim
}

fn set_nofile(lim: &libc::rlimit) {
    // SAFETY: valid rlimit read by the call.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, lim) }, 0);
}

fn emfile_case<D: Driver>(make: impl Fn(Limits) -> D) {
    const CLIENTS: usize = 4;
    let mut d = make(Limits::default());
    let mut h = Recorder::default();
    let (l, addr) = listener();
    let clients: Vec<socket2::Socket> = (0..CLIENTS)
        .map(|_| socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap())
        .collect();
    // Fill every hole in the fd table, then cap the table right above the highest fd and free
    // exactly one slot: one accept fits, the next one hits EMFILE.
    let highest = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .max()
        .unwrap();
    let mut fillers = Vec::new();
    loop {
        let f = File::open("/dev/null").unwrap();
        let fd = f.as_raw_fd();
        fillers.push(f);
        if fd > highest {
            break;
        }
    }
    let saved = nofile();
    let last = fillers.pop().unwrap();
    let cap = last.as_raw_fd() as libc::rlim_t + 1;
    drop(last);
    set_nofile(&libc::rlimit {
        rlim_cur: cap,
        rlim_max: saved.rlim_max,
    });
    // Listen only now: io_uring's accept reads RLIMIT_NOFILE when its SQE is prepared.
    d.listen(l).unwrap();
    for c in &clients {
        c.connect(&addr.into()).unwrap(); // completes in the listen backlog
    }
    drive(&mut d, &mut h, "EMFILE", |h| !h.accept_failed.is_empty());
    assert!(
        h.accept_failed.iter().all(|&e| e == libc::EMFILE),
        "{:?}",
        h.accept_failed
    );
    assert!(h.accepted.len() < CLIENTS);
    let failures = h.accept_failed.len();
    drive_for(&mut d, &mut h, Duration::from_millis(100));
    assert!(
        h.accept_failed.len() - failures < 20,
        "backs off instead of spinning"
    );
    set_nofile(&saved);
    drive(&mut d, &mut h, "accepts after fds free up", |h| {
        h.accepted.len() == CLIENTS
    });
    drop(fillers);
}

#[test]
fn poll_emfile() {
    run_in_child("emfile::poll_emfile", || {
        emfile_case(|l| rookery_io::PollDriver::new(l).unwrap())
    });
}

#[test]
fn uring_emfile() {
    if let Some(why) = uring_unavailable() {
        eprintln!("SKIP uring_emfile: {why}");
        return;
    }
    run_in_child("emfile::uring_emfile", || {
        emfile_case(|l| rookery_io::UringDriver::new(l).unwrap())
    });
}
