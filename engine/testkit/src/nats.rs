//! A real nats-server for the cluster tests (rookery-cluster's bridge, the server's cluster and
//! fault tests, rookery-load on a cluster): on a loopback port, ready when `start` returns,
//! killed by pid on drop. Needs `nats-server` on PATH (Debian's package; .ci/run installs it).

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a nats-server may take to accept connections.
const READY_WAIT: Duration = Duration::from_secs(10);

/// A running nats-server.
pub struct NatsServer {
    child: Child,
    port: u16,
}

impl NatsServer {
    /// On a free loopback port.
    pub fn start() -> NatsServer {
        NatsServer::start_on(free_port())
    }

    /// On `port` (a restart test's fixed port); panics if it does not listen within 10 s.
    pub fn start_on(port: u16) -> NatsServer {
        let child = spawn(port);
        let deadline = Instant::now() + READY_WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        NatsServer { child, port }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills nats-server (SIGKILL, by pid) and starts a new one on the same port, retrying
    /// while the old one's port is not free yet.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + READY_WAIT;
        loop {
            let mut child = spawn(self.port);
            std::thread::sleep(Duration::from_millis(300));
            if child.try_wait().expect("nats-server status").is_none() {
                self.child = child;
                return;
            }
            assert!(Instant::now() < deadline, "nats-server did not restart");
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(port: u16) -> Child {
    Command::new("nats-server")
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server on PATH (apt-get install nats-server)")
}

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback port")
        .local_addr()
        .expect("its address")
        .port()
}
