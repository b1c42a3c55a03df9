//! Test harness: a server on 127.0.0.1:0 with a manual clock, a slot issuer signing with the
//! same secret (standing in for the router), and a small hyper client.

#![allow(dead_code)] // Each test binary uses its own part of the harness.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::HeaderMap;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rookery_http::{Clock, HttpConfig, HttpHandle, HttpServer};
use rookery_proto::Jid;
use rookery_upload::{
    MemoryLedger, Slot, SlotIssuer, SlotPolicy, SlotRequest, SlotSigner, UsageEvent,
};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

pub const SECRET: &[u8; 32] = b"a test secret of 32 bytes, fixed";
pub const START_UNIX_S: u64 = 1_765_000_000;

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Relaxed);
        let name = format!("rookery-http-{tag}-{}-{n}", std::process::id());
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

type Tweak = Box<dyn Fn(&mut HttpConfig)>;

pub struct Harness {
    pub dir: TempDir,
    pub now: Arc<AtomicU64>,
    pub handle: Option<HttpHandle>,
    pub issuer: SlotIssuer,
    pub ledger: MemoryLedger,
    pub events: Arc<Mutex<Vec<UsageEvent>>>,
    pub rt: Runtime,
    policy: SlotPolicy,
    tweak: Tweak,
    next_token: u64,
}

/// An answer, body collected.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Harness {
    pub fn start(policy: SlotPolicy, tweak: impl Fn(&mut HttpConfig) + 'static) -> Harness {
        let dir = TempDir::new("it");
        let now = Arc::new(AtomicU64::new(START_UNIX_S));
        let events = Arc::new(Mutex::new(Vec::new()));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut harness = Harness {
            dir,
            now,
            handle: None,
            issuer: SlotIssuer::new(policy.clone(), SlotSigner::new(SECRET, "http://x").unwrap()),
            ledger: MemoryLedger::new(),
            events,
            rt,
            policy,
            tweak: Box::new(tweak),
            next_token: 0,
        };
        harness.launch();
        harness
    }

    fn launch(&mut self) {
        let clock_now = Arc::clone(&self.now);
        let events = Arc::clone(&self.events);
        let mut config = HttpConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            "http://127.0.0.1",
            self.dir.0.clone(),
            SECRET.to_vec(),
        );
        config.clock = Clock::from_fn(move || clock_now.load(Relaxed));
        config.usage_sink = Some(Arc::new(move |event| events.lock().unwrap().push(event)));
        // Tests run cleanup themselves; the background pass runs at start only.
        config.cleanup_interval_s = 3_600;
        (self.tweak)(&mut config);
        let base_path = config
            .public_url
            .trim_start_matches("http://127.0.0.1")
            .to_owned();
        let handle = HttpServer::start(config).unwrap();
        let public = format!("http://{}{base_path}", handle.local_addr());
        self.issuer = SlotIssuer::new(
            self.policy.clone(),
            SlotSigner::new(SECRET, &public).unwrap(),
        );
        self.handle = Some(handle);
    }

    pub fn handle(&self) -> &HttpHandle {
        self.handle.as_ref().unwrap()
    }

    pub fn addr(&self) -> SocketAddr {
        self.handle().local_addr()
    }

    pub fn upload_dir(&self) -> &Path {
        &self.dir.0
    }

    /// Stops the server and starts a new one on the same data directory.
    pub fn restart(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.shutdown();
        }
        self.launch();
    }

    pub fn advance(&self, seconds: u64) {
        self.now.fetch_add(seconds, Relaxed);
    }

    /// Mints a slot the way the router will.
    pub fn slot(&mut self, owner: &str, name: &str, size: u64, content_type: Option<&str>) -> Slot {
        self.next_token += 1;
        let mut random = [0u8; 16];
        random[..8].copy_from_slice(&self.next_token.to_be_bytes());
        random[8] = 0xa5;
        let request = SlotRequest {
            filename: name,
            size_bytes: size,
            content_type,
        };
        let owner = Jid::parse(owner).unwrap();
        let now = self.now.load(Relaxed);
        self.issuer
            .issue(&mut self.ledger, &owner, &request, now, random)
            .unwrap()
    }

    /// Sends one request on a fresh conn and collects the answer.
    pub fn request<B>(&self, method: Method, url: &str, headers: &[(&str, &str)], body: B) -> Reply
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let request = build(method, url, headers, body);
        let addr = self.addr();
        self.rt.block_on(async move {
            let response = send(addr, request).await.unwrap();
            let (parts, body) = response.into_parts();
            let body = body.collect().await.unwrap().to_bytes().to_vec();
            Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            }
        })
    }

    pub fn put(&self, url: &str, content_type: Option<&str>, body: &[u8]) -> Reply {
        let headers: Vec<(&str, &str)> = content_type
            .map(|t| ("content-type", t))
            .into_iter()
            .collect();
        self.request(Method::PUT, url, &headers, full(body))
    }

    pub fn get(&self, url: &str, headers: &[(&str, &str)]) -> Reply {
        self.request(Method::GET, url, headers, full(b""))
    }

    pub fn events(&self) -> Vec<UsageEvent> {
        self.events.lock().unwrap().clone()
    }

    /// Waits (up to 5 s) until `done` holds; the server works on its own threads.
    pub fn wait_until(&self, what: &str, done: impl Fn(&Harness) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.shutdown();
        }
    }
}

pub fn full(bytes: &[u8]) -> Full<Bytes> {
    Full::new(Bytes::copy_from_slice(bytes))
}

/// The request for `url` (its authority is the server's), with a Host header.
pub fn build<B>(method: Method, url: &str, headers: &[(&str, &str)], body: B) -> Request<B> {
    let rest = url.split_once("://").unwrap().1;
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", authority);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(body).unwrap()
}

/// Sends `request` on a new conn to `addr`.
pub async fn send<B>(addr: SocketAddr, request: Request<B>) -> hyper::Result<Response<Incoming>>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    sender.send_request(request).await
}

/// A deterministic pseudo-random byte stream (xorshift64), generated chunk by chunk so that
/// neither side ever holds the whole of it.
pub struct Pattern {
    state: u64,
}

impl Pattern {
    pub fn new(seed: u64) -> Pattern {
        Pattern { state: seed | 1 }
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            chunk.copy_from_slice(&self.state.to_le_bytes()[..chunk.len()]);
        }
    }

    pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        Pattern::new(seed).fill(&mut out);
        out
    }
}

/// A request body of `len` pattern bytes, produced 64 KiB at a time. Without an exact size
/// hint the client sends it chunked (no Content-Length).
pub struct PatternBody {
    pattern: Pattern,
    remaining: u64,
    exact_size: bool,
}

impl PatternBody {
    pub fn new(seed: u64, len: u64, exact_size: bool) -> PatternBody {
        PatternBody {
            pattern: Pattern::new(seed),
            remaining: len,
            exact_size,
        }
    }
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(64 << 10) as usize;
        let mut chunk = vec![0u8; n];
        self.pattern.fill(&mut chunk);
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact_size {
            SizeHint::with_exact(self.remaining)
        } else {
            SizeHint::default()
        }
    }
}

/// The path of a URL (what follows its authority).
pub fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").unwrap().1;
    &rest[rest.find('/').unwrap()..]
}
