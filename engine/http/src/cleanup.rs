//! Retention and leftovers: removing files past `file_ttl_s` and orphan temp files.
//!
//! What it does: [`run`] removes every stored file uploaded `file_ttl_s` or more ago (index
//! first, so it stops being served, then sidecar and bytes), reporting a
//! `UsageEvent::Removed` for each, and removes temp files no upload owns any more. The
//! server runs it at start and every `cleanup_interval_s` on the blocking pool;
//! `HttpHandle::run_cleanup` runs it on demand.
//!
//! Unfinished uploads need no scan: each is bounded by its own idle and total timeouts
//! (upload.rs) and its temp file is removed when its claim is dropped, even when the request
//! is dropped mid-way; temp files of a previous run are removed at start (store/scan.rs).
//!
//! What it does not do: evict by quota or free space (the quota is enforced when slots are
//! issued, by the router's ledger).

use std::time::Duration;

use tokio::sync::watch;

use crate::metrics::Counters;
use crate::server::State;
use std::sync::Arc;

/// What one cleanup pass removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanupReport {
    pub files_expired: u64,
    pub temps_removed: u64,
}

/// One pass. Blocking (unlinks).
pub(crate) fn run(state: &State) -> CleanupReport {
    let mut report = CleanupReport::default();
    let now = state.clock.now_unix_s();
    if let Some(ttl) = state.file_ttl_s {
        if let Some(cutoff) = now.checked_sub(ttl) {
            for token in state.store.created_before(cutoff) {
                if let Some(event) = state.store.remove(&token) {
                    report.files_expired += 1;
                    state.report(event);
                }
            }
        }
    }
    Counters::add(&state.counters.files_expired, report.files_expired);
    match state.store.remove_orphan_temps() {
        Ok(removed) => report.temps_removed = removed,
        Err(e) => tracing::warn!("upload cleanup: listing the temp directory failed: {e}"),
    }
    if report != CleanupReport::default() {
        tracing::info!(
            "upload cleanup: {} files past retention and {} orphan temp files removed",
            report.files_expired,
            report.temps_removed
        );
    }
    report
}

/// Runs [`run`] now and every `interval` until `stop` changes.
pub(crate) async fn periodic(
    state: Arc<State>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        let state = Arc::clone(&state);
        if let Err(e) = tokio::task::spawn_blocking(move || run(&state)).await {
            tracing::error!("upload cleanup pass panicked: {e}");
        }
    }
}
