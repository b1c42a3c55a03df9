//! Shared by `conformance.rs` and `files.rs`: `per_backend!`, which instantiates each generic
//! test once per backend (`poll::name`, and `uring::name` on Linux), the io_uring skip probe
//! it calls, and the deterministic byte patterns both suites send and write.
//!
//! Not a test binary of its own (it lives under `support/`); each suite includes it with
//! `#[path]` and `#[macro_use]`, before the macro's first use. Test names stay
//! `poll::<name>` / `uring::<name>`. io_uring tests print `SKIP` and pass when
//! `select_backend(Uring)` fails on this machine.

/// One `#[test]` per backend for each generic `fn name<D: Driver>(make: impl Fn(Limits) -> D)`
/// at the including file's root. `per_backend!(also MODULE with LIMITS_FN; names...)` adds one
/// more io_uring module whose driver gets its limits from `LIMITS_FN(limits)` (a variant, e.g.
/// inline file writes), test names `MODULE::<name>`.
macro_rules! per_backend {
    (also $module:ident with $adjust:ident; $($name:ident),* $(,)?) => {
        per_backend!($($name),*);
        per_backend!(@uring $module, super::$adjust; $($name),*);
    };
    (@uring $module:ident, $adjust:path; $($name:ident),*) => {
        #[cfg(target_os = "linux")]
        mod $module {
            $(
                #[test]
                fn $name() {
                    if let Some(why) = super::backends::uring_unavailable() {
                        eprintln!("SKIP {}::{}: {why}", stringify!($module), stringify!($name));
                        return;
                    }
                    super::$name(|l| rookery_io::UringDriver::new($adjust(l)).expect("uring driver"));
                }
            )*
        }
    };
    ($($name:ident),* $(,)?) => {
        mod poll {
            $(
                #[test]
                fn $name() {
                    super::$name(|l| rookery_io::PollDriver::new(l).expect("poll driver"));
                }
            )*
        }

        per_backend!(@uring uring, ::std::convert::identity; $($name),*);
    };
}

/// Why io_uring tests must skip here, if they must.
#[cfg(target_os = "linux")]
pub fn uring_unavailable() -> Option<String> {
    use rookery_io::{BackendChoice, Limits};
    rookery_io::select_backend(BackendChoice::Uring, &Limits::default())
        .err()
        .map(|e| e.to_string())
}

/// `len` pseudo-random bytes (xorshift32) fixed by `seed`, so a reordered or torn transfer
/// shows up as a mismatch.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}
