//! XEP-0363 file upload in the binary: the `--http-listen` / `--upload-*` flags checked, the
//! HTTP server (rookery-http, its own threads) started beside the shards, and what the
//! routers need: the upload service's config (same secret as the HTTP side), the per-shard
//! usage inboxes, and each shard's seed of its users' stored bytes. The same HTTP server
//! serves XMPP over WebSocket (RFC 7395) at `/xmpp-websocket`: its upgraded conns go to the
//! shards' WebSocket inboxes (see `rookery::websocket`).
//!
//! What it does not do: serve HTTP (rookery-http does), issue slots (the routers do), or
//! TLS on the HTTP port yet (the XMPP listener has no certificate flags to share; put a TLS
//! proxy in front and pass its URL as `--http-public-url`).
//!
//! Order at start (main.rs): [`start`] before the routers are built, so the ledgers are
//! seeded from the files on disk before any slot request; the seed is read once after the
//! HTTP server started, so an upload or removal in between may be counted twice or not at
//! all until the next restart (a file's size at most, in a window of microseconds).

use std::sync::Arc;

use anyhow::{bail, Context};
use rookery::usage::{UsageInbox, UsageRouter};
use rookery::websocket::{WsInbox, WsRouter};
use rookery_http::{load_or_create_secret, HttpConfig, HttpHandle, HttpServer, OwnerUsage};
use rookery_router::{Router, UploadConfig};
use rookery_upload::{ContentTypes, SlotPolicy};
use tracing::info;

use crate::config::Config;

/// The running upload side.
pub struct Upload {
    /// The HTTP server; dropped or shut down after the shards stopped.
    pub http: HttpHandle,
    /// What every router gets (`RouterConfig::upload`).
    pub config: UploadConfig,
    usage: UsageRouter,
    /// Where the HTTP server's upgraded WebSocket conns go (RFC 7395 at /xmpp-websocket).
    ws: Arc<WsRouter>,
    /// Stored bytes per owner at start, each for its home shard.
    seed: Vec<OwnerUsage>,
}

impl Upload {
    /// Seeds shard `index`'s router with its users' stored files.
    pub fn seed(&self, index: usize, router: &mut Router) {
        for owned in &self.seed {
            if self.usage.home_of(&owned.owner) == index {
                router.seed_upload_usage(&owned.owner, owned.bytes);
            }
        }
    }

    /// Shard `index`'s usage inbox.
    pub fn inbox(&self, index: usize) -> Arc<UsageInbox> {
        self.usage.inbox(index)
    }

    /// Shard `index`'s inbox of upgraded WebSocket conns.
    pub fn ws_inbox(&self, index: usize) -> Arc<WsInbox> {
        self.ws.inbox(index)
    }
}

/// The policy the flags describe.
fn policy(config: &Config) -> anyhow::Result<SlotPolicy> {
    let args = &config.args;
    if args.upload_max_bytes == 0 || args.upload_slot_ttl == 0 {
        bail!("--upload-max-bytes and --upload-slot-ttl must be at least 1");
    }
    let content_types = match args.upload_content_types.trim() {
        "any" | "*" | "*/*" => ContentTypes::Any,
        list => {
            let types: Vec<String> = list
                .split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .filter(|t| !t.is_empty())
                .collect();
            if types.is_empty() || types.iter().any(|t| !t.contains('/')) {
                bail!("--upload-content-types {list:?}: use any, or a list like image/*,video/mp4");
            }
            ContentTypes::Only(types)
        }
    };
    Ok(SlotPolicy {
        max_file_bytes: args.upload_max_bytes,
        quota_bytes_per_user: args.upload_quota_bytes,
        slot_ttl_s: args.upload_slot_ttl,
        content_types,
        max_open_slots_per_user: SlotPolicy::DEFAULT_MAX_OPEN_SLOTS_PER_USER,
    })
}

/// Starts the HTTP server when `--http-listen` is given.
pub fn start(config: &Config) -> anyhow::Result<Option<Upload>> {
    let args = &config.args;
    let Some(listen) = args.http_listen else {
        return Ok(None);
    };
    let public_url = match &args.http_public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None if listen.port() == 0 || listen.ip().is_unspecified() => bail!(
            "--http-listen {listen} needs --http-public-url (the address clients reach it at)"
        ),
        None if args.tls_cert.is_some() => format!("https://{listen}"),
        None => format!("http://{listen}"),
    };
    let domain = format!("upload.{}", config.domain.as_str());
    if args.groups_domain.as_deref() == Some(domain.as_str()) {
        bail!("--groups-domain {domain} is the upload service's domain; pick another");
    }
    let data_dir = args.data_dir.clone();
    let secret = load_or_create_secret(&data_dir).context("the upload secret")?;
    let upload_config = UploadConfig {
        domain,
        policy: policy(config)?,
        secret: secret.clone(),
        public_url: public_url.clone(),
    };
    upload_config
        .issuer()
        .map_err(|e| anyhow::anyhow!("--http-public-url {public_url:?}: {e:?}"))?;
    let usage = UsageRouter::new(config.shards() as u16, UsageInbox::CAPACITY);
    let mut http = HttpConfig::new(listen, &public_url, data_dir, secret);
    http.file_ttl_s = (args.upload_file_ttl > 0).then_some(args.upload_file_ttl);
    // HTTPS with the XMPP certificate when there is one (read at start; a restart of the
    // server picks up a renewed one for HTTP, SIGHUP does for XMPP).
    http.tls = args
        .tls_cert
        .clone()
        .zip(args.tls_key.clone())
        .map(|(cert_chain_pem, key_pem)| rookery_http::TlsFiles {
            cert_chain_pem,
            key_pem,
        });
    let sink = usage.clone();
    http.usage_sink = Some(Arc::new(move |event| sink.report(event)));
    let ws = Arc::new(WsRouter::new(config.shards(), WsInbox::CAPACITY));
    let ws_sink = Arc::clone(&ws);
    http.websocket = Some(Arc::new(move |conn| ws_sink.hand_over(conn)));
    http.websocket_origins = rookery_http::AllowedOrigins::parse(&args.ws_allowed_origin)
        .map_err(|e| anyhow::anyhow!("--ws-allowed-origin: {e}"))?;
    let handle = HttpServer::start(http).map_err(|e| anyhow::anyhow!("{e}"))?;
    let seed = handle.usage_by_owner();
    info!(
        "file upload (XEP-0363): {} at {public_url}, {} owners with files",
        upload_config.domain,
        seed.len()
    );
    Ok(Some(Upload {
        http: handle,
        config: upload_config,
        usage,
        ws,
        seed,
    }))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::config::Args;

    fn config(extra: &[&str]) -> Config {
        let mut argv = vec!["rookery", "--token-secret", "s"];
        argv.extend_from_slice(extra);
        Config::from_args(Args::parse_from(argv), &[0]).unwrap()
    }

    #[test]
    fn off_unless_an_http_address_is_given() {
        assert!(start(&config(&[])).unwrap().is_none());
    }

    #[test]
    fn an_address_clients_cannot_use_needs_a_public_url() {
        for listen in ["0.0.0.0:5280", "127.0.0.1:0"] {
            let Err(err) = start(&config(&["--http-listen", listen])) else {
                panic!("{listen} started without --http-public-url");
            };
            assert!(err.to_string().contains("--http-public-url"), "{err}");
        }
    }

    #[test]
    fn flags_make_the_policy() {
        let flags = [
            "--upload-max-bytes",
            "10",
            "--upload-quota-bytes",
            "20",
            "--upload-slot-ttl",
            "30",
            "--upload-content-types",
            " image/*, Text/Plain ",
        ];
        let made = policy(&config(&flags)).unwrap();
        assert_eq!(
            (
                made.max_file_bytes,
                made.quota_bytes_per_user,
                made.slot_ttl_s
            ),
            (10, 20, 30)
        );
        assert_eq!(
            made.content_types,
            ContentTypes::Only(vec!["image/*".into(), "text/plain".into()])
        );
        assert_eq!(
            policy(&config(&[])).unwrap().content_types,
            ContentTypes::Any
        );
        assert!(policy(&config(&["--upload-content-types", "images"])).is_err());
        assert!(policy(&config(&["--upload-slot-ttl", "0"])).is_err());
    }
}
