//! End to end, once per binary: start the relay on an ephemeral loopback port, log two
//! clients in over real sockets, relay a message between them, send one to nobody, close a
//! stream, then SIGTERM the relay and read its exit line.
//!
//! The clients are plain blocking sockets speaking the bytes rookery-load speaks (stream
//! header, SASL PLAIN, restart, bind, presence); every read has a timeout, and the relay is
//! killed if a test fails before it stops it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

const DOMAIN: &str = "example.test";
const TIMEOUT: Duration = Duration::from_secs(10);

/// The relay process; killed on drop unless it already exited.
struct Relay {
    child: Child,
    stderr: BufReader<ChildStderr>,
    addr: SocketAddr,
}

impl Relay {
    fn start(bin: &str) -> Relay {
        let mut child = Command::new(bin)
            .args(["--listen", "127.0.0.1:0", "--domain", DOMAIN])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin}: {e}"));
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let addr = loop {
            line.clear();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "{bin} exited before ready"
            );
            if let Some(rest) = line.split("ready: listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        Relay {
            child,
            stderr,
            addr,
        }
    }

    /// SIGTERM, then the exit line (`stats: ...`); asserts a clean exit.
    fn stop(mut self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let mut rest = String::new();
        self.stderr.read_to_string(&mut rest).unwrap();
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "exit {exit:?}; stderr: {rest}");
        rest.lines()
            .find(|l| l.contains("stats: "))
            .unwrap_or_else(|| panic!("no stats line in {rest:?}"))
            .to_string()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

struct Client {
    stream: TcpStream,
    seen: String,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        Client {
            stream,
            seen: String::new(),
        }
    }

    fn send(&mut self, bytes: &str) {
        self.stream.write_all(bytes.as_bytes()).unwrap();
    }

    /// Reads until `what` has arrived; returns everything read up to and including it.
    fn expect(&mut self, what: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        let mut buf = [0u8; 4096];
        while !self.seen.contains(what) {
            assert!(
                Instant::now() < deadline,
                "waiting for {what:?}, got {:?}",
                self.seen
            );
            let n = self.stream.read(&mut buf).unwrap();
            assert!(n > 0, "EOF waiting for {what:?}, got {:?}", self.seen);
            self.seen.push_str(std::str::from_utf8(&buf[..n]).unwrap());
        }
        let end = self.seen.find(what).unwrap() + what.len();
        self.seen.drain(..end).collect()
    }

    fn header(&mut self) {
        self.send(&format!(
            "<?xml version='1.0'?><stream:stream to='{DOMAIN}' xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
        ));
    }

    /// The login rookery-load plays; returns the bound JID.
    fn login(addr: SocketAddr, user: &str) -> (Client, String) {
        let mut c = Client::connect(addr);
        c.header();
        assert!(c
            .expect("</stream:features>")
            .contains("<mechanism>PLAIN</mechanism>"));
        let plain = base64_plain(user);
        c.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{plain}</auth>"
        ));
        c.expect("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
        c.header();
        assert!(c.expect("</stream:features>").contains("xmpp-bind"));
        c.send(
            "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <resource>load</resource></bind></iq><presence/>",
        );
        let bound = c.expect("</iq>");
        let jid = bound
            .split("<jid>")
            .nth(1)
            .unwrap()
            .split("</jid>")
            .next()
            .unwrap();
        let jid = jid.to_string();
        (c, jid)
    }
}

/// SASL PLAIN's initial response for USER (any password: the relays accept all).
fn base64_plain(user: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0secret"))
}

fn relays_one_message(bin: &str) {
    let relay = Relay::start(bin);
    let (mut alice, alice_jid) = Client::login(relay.addr, "user1");
    let (mut bob, bob_jid) = Client::login(relay.addr, "user2");
    assert_eq!(alice_jid, "user1@example.test/load");
    assert_eq!(bob_jid, "user2@example.test/load");

    alice.send(
        "<message to='user2@example.test/load' type='chat'><body>rl r=1 s=0 q=1</body></message>\
         <message to='user9@example.test/load' type='chat'><body>to nobody</body></message>",
    );
    let got = bob.expect("</message>");
    assert_eq!(
        got,
        "<message to='user2@example.test/load' type='chat' from='user1@example.test/load'>\
         <body>rl r=1 s=0 q=1</body></message>"
    );
    // The bare JID reaches the bound session too, and the reply goes back by full JID.
    bob.send("<message to='User1@example.test'><body>back</body></message>");
    assert!(alice
        .expect("</message>")
        .contains("from='user2@example.test/load'"));
    alice.send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert_eq!(alice.expect("/>"), "<iq type='result' id='p1'/>");

    alice.send("</stream:stream>");
    alice.expect("</stream:stream>");
    let mut rest = [0u8; 16];
    assert_eq!(
        alice.stream.read(&mut rest).unwrap(),
        0,
        "the relay closes after its close tag"
    );
    // alice is gone: a message to her is dropped, not delivered.
    bob.send("<message to='user1@example.test/load'><body>late</body></message>");
    bob.send("<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>");
    bob.expect("<iq type='result' id='p2'/>");

    let stats = relay.stop();
    assert!(
        stats.contains("conns_accepted=2 sessions_bound=2"),
        "{stats}"
    );
    assert!(stats.contains("messages_relayed=2 "), "{stats}");
    assert!(stats.contains("dropped_unknown_destination=2 "), "{stats}");
}

#[test]
fn relay_tokio_relays() {
    relays_one_message(env!("CARGO_BIN_EXE_relay-tokio"));
}

#[cfg(target_os = "linux")]
#[test]
fn relay_monoio_relays() {
    relays_one_message(env!("CARGO_BIN_EXE_relay-monoio"));
}

#[cfg(target_os = "linux")]
#[test]
fn relay_glommio_relays() {
    relays_one_message(env!("CARGO_BIN_EXE_relay-glommio"));
}
