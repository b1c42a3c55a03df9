//! SIGINT and SIGTERM as a flag: the first one asks the relay to stop (each runtime checks the
//! flag every [`POLL_INTERVAL`] from a timer of its own and leaves its accept loop); a second one
//! exits at once with status 1, in case the first did not get through.
//!
//! Why a polled flag: signal-hook sets it from the handler without unsafe code here, and it
//! works the same on all three runtimes (glommio has no signal support of its own); ten
//! wake-ups a second cost nothing measurable.
//!
//! What it does not do: close conns (the runtime drops them when it stops).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};

/// How often the runtimes look at the flag.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// See the module docs.
#[derive(Clone)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// Installs the handlers for SIGINT and SIGTERM.
    pub fn install() -> io::Result<StopFlag> {
        let flag = Arc::new(AtomicBool::new(false));
        for signal in [SIGINT, SIGTERM] {
            // Registered first, so it runs before the flag is set: a second signal exits.
            signal_hook::flag::register_conditional_shutdown(signal, 1, flag.clone())?;
            signal_hook::flag::register(signal, flag.clone())?;
        }
        Ok(StopFlag(flag))
    }

    /// Whether a stop was asked for. SeqCst pairs with signal-hook's store in the handler.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
