//! The shared, reloadable handle to the current [`TlsConfig`].
//!
//! What it does: every shard holds a clone of one [`TlsContext`]; each accepted conn reads
//! the current config once, in [`crate::TlsSession::new`] (an `arc_swap` load and an `Arc`
//! clone: no lock). On SIGHUP the server calls [`TlsContext::reload`]: the files are read
//! again and, if they load, the new config replaces the old for conns accepted afterwards.
//! Sessions already open keep the config they started with (each holds its own `Arc`).
//!
//! What it does not do: catch signals or log; the caller logs the returned warnings or error.
//! A failed reload changes nothing.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::{ConfigError, ConfigWarning, TlsConfig};

/// A cheap-to-clone handle to the TLS config new sessions use.
#[derive(Clone)]
pub struct TlsContext {
    current: Arc<ArcSwap<TlsConfig>>,
}

impl TlsContext {
    pub fn new(config: TlsConfig) -> TlsContext {
        TlsContext {
            current: Arc::new(ArcSwap::from_pointee(config)),
        }
    }

    /// The config new sessions start with now.
    pub fn current(&self) -> Arc<TlsConfig> {
        self.current.load_full()
    }

    /// Re-reads the current config's two files. On success new sessions use the new config
    /// and its warnings are returned; on error the old config stays in use.
    pub fn reload(&self) -> Result<Vec<ConfigWarning>, ConfigError> {
        let old = self.current.load();
        let config = TlsConfig::load(old.cert_chain_path(), old.key_path())?;
        Ok(self.replace(config))
    }

    /// Replaces the config (e.g. loaded from other paths); returns its warnings.
    pub fn replace(&self, config: TlsConfig) -> Vec<ConfigWarning> {
        let warnings = config.warnings().to_vec();
        self.current.store(Arc::new(config));
        warnings
    }

    /// Loads the rustls server config for one new session.
    pub(crate) fn server_config(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(self.current.load().server_config())
    }
}

impl std::fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TlsContext")
            .field(&*self.current.load())
            .finish()
    }
}
