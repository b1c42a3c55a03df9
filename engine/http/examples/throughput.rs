//! Upload and download throughput of one large file over loopback.
//!
//! `cargo run --release -p rookery-http --example throughput -- [SIZE_MB] [RUNS] [tls]`
//! (defaults: 100 MB, 5 runs, plain HTTP). The server runs with its defaults (2 worker
//! threads); the client is one hyper conn on a current-thread runtime in this process. An
//! upload is timed from the request to the `201` (so it includes the fsync and the commit), a
//! download from the request to the last byte. The client sends one 1 MiB buffer over and over
//! (no generation cost) and discards what it downloads. Prints each run and the median.
//!
//! Files go to a directory under the system temp dir, removed at the end.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::{Body, Frame, SizeHint};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rookery_http::{HttpConfig, HttpServer, TlsFiles};
use rookery_proto::Jid;
use rookery_upload::{MemoryLedger, SlotIssuer, SlotPolicy, SlotRequest, SlotSigner};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

const SECRET: &[u8; 32] = b"throughput example secret 32 B!!";
const BLOCK_BYTES: usize = 1 << 20;

/// `len` bytes: one shared 1 MiB block, sent again and again.
struct Repeat {
    block: Bytes,
    remaining: u64,
}

impl Body for Repeat {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(self.block.len() as u64) as usize;
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(self.block.slice(..n)))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

enum Client {
    Plain,
    Tls(tokio_rustls::TlsConnector),
}

async fn exchange<B>(
    addr: std::net::SocketAddr,
    client: &Client,
    request: Request<B>,
) -> (StatusCode, u64)
where
    B: Body<Data = Bytes, Error = Infallible> + Send + 'static,
{
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    match client {
        Client::Plain => over(tcp, request).await,
        Client::Tls(connector) => {
            let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
            over(
                connector.connect(name, tcp).await.expect("handshake"),
                request,
            )
            .await
        }
    }
}

async fn over<I, B>(io: I, request: Request<B>) -> (StatusCode, u64)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: Body<Data = Bytes, Error = Infallible> + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .expect("http handshake");
    tokio::spawn(conn);
    let response = sender.send_request(request).await.expect("request");
    let status = response.status();
    let mut body = response.into_body();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("body").into_data() {
            received += data.len() as u64;
        }
    }
    (status, received)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn tls_setup(dir: &std::path::Path) -> (TlsFiles, Client) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let files = TlsFiles {
        cert_chain_pem: dir.join("cert.pem"),
        key_pem: dir.join("key.pem"),
    };
    std::fs::write(&files.cert_chain_pem, certified.cert.pem()).expect("write cert");
    std::fs::write(&files.key_pem, certified.key_pair.serialize_pem()).expect("write key");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).expect("root");
    #[allow(deprecated)] // ring, as the workspace.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    (
        files,
        Client::Tls(tokio_rustls::TlsConnector::from(Arc::new(config))),
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size_mb: u64 = args.first().map_or(100, |a| a.parse().expect("SIZE_MB"));
    let runs: usize = args.get(1).map_or(5, |a| a.parse().expect("RUNS"));
    let use_tls = args.get(2).is_some_and(|a| a == "tls");
    let size = size_mb * 1_000_000;
    let dir = std::env::temp_dir().join(format!("rookery-throughput-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (tls, client, scheme) = if use_tls {
        let (files, client) = tls_setup(&dir);
        (Some(files), client, "https")
    } else {
        (None, Client::Plain, "http")
    };
    let mut config = HttpConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        "http://127.0.0.1",
        dir.clone(),
        SECRET.to_vec(),
    );
    config.tls = tls;
    let handle = HttpServer::start(config).expect("start");
    let addr = handle.local_addr();
    let policy = SlotPolicy {
        max_file_bytes: size,
        quota_bytes_per_user: u64::MAX,
        ..SlotPolicy::default()
    };
    let public = format!("{scheme}://{addr}");
    let issuer = SlotIssuer::new(policy, SlotSigner::new(SECRET, &public).expect("signer"));
    let mut ledger = MemoryLedger::new();
    let owner = Jid::parse("bench@example.test").expect("jid");
    let block = Bytes::from(vec![0x5a; BLOCK_BYTES]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (mut up, mut down) = (Vec::new(), Vec::new());
    println!("{size_mb} MB over {scheme} loopback, {runs} runs");
    for run in 0..runs {
        let request = SlotRequest {
            filename: "big.bin",
            size_bytes: size,
            content_type: None,
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let random = [run as u8 + 1; 16];
        let slot = issuer
            .issue(&mut ledger, &owner, &request, now, random)
            .expect("slot");
        let path = |url: &str| url[public.len()..].to_owned();
        let put = Request::put(path(&slot.put_url))
            .header("host", "localhost")
            .body(Repeat {
                block: block.clone(),
                remaining: size,
            })
            .expect("put");
        let started = Instant::now();
        let (status, _) = rt.block_on(exchange(addr, &client, put));
        let upload_s = started.elapsed().as_secs_f64();
        assert_eq!(status, StatusCode::CREATED, "upload failed");
        let get = Request::get(path(&slot.get_url))
            .header("host", "localhost")
            .body(Empty::<Bytes>::new())
            .expect("get");
        let started = Instant::now();
        let (status, received) = rt.block_on(exchange(addr, &client, get));
        let download_s = started.elapsed().as_secs_f64();
        assert_eq!(
            (status, received),
            (StatusCode::OK, size),
            "download failed"
        );
        let (up_mb_s, down_mb_s) = (size as f64 / 1e6 / upload_s, size as f64 / 1e6 / download_s);
        println!("run {run}: upload {up_mb_s:8.1} MB/s ({upload_s:.3} s)   download {down_mb_s:8.1} MB/s ({download_s:.3} s)");
        up.push(up_mb_s);
        down.push(down_mb_s);
    }
    println!(
        "median: upload {:.1} MB/s, download {:.1} MB/s",
        median(up),
        median(down)
    );
    let metrics = handle.metrics();
    println!(
        "server: {} uploads, {} bytes in, {} bytes out",
        metrics.uploads_total, metrics.upload_bytes_total, metrics.download_bytes_total
    );
    handle.shutdown();
    std::fs::remove_dir_all(&dir).expect("remove temp dir");
}
