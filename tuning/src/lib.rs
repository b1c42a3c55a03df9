//! rookery-tune: kernel tuning profiles for connection servers, and the tools around them.
//!
//! What it does:
//! - `profile`: parses the shipped profiles (`profiles/{linux,freebsd}/*.conf`, embedded in the
//!   binary) and user files: sysctl lines, each with its comment block, plus `# limit:` lines.
//! - `check`: reads a host (live, or a fake `/proc` tree for tests) and lists, tightest first,
//!   every setting that caps a connection target, each with its exact fix.
//! - `apply`: writes a profile's sysctls (inside a network namespace or not), reads every value
//!   back, keeps a backup that `revert` restores; `diff` compares a host with a profile.
//! - `compare`: runs rookery + rookery-load under several profiles, one fresh netns each, and
//!   writes a side-by-side report (kernel bytes per connection, counters, latencies).
//!
//! What it does not do: it never writes a host-wide setting unless asked (`allow_host`), never
//! edits files under /etc, and does not raise another process's RLIMIT_NOFILE (the profile's
//! `# limit:` lines are reported with the systemd / limits.conf line to use).
//!
//! Invariants: every number the check uses comes from a named measurement in
//! /work/shared/notes/kernel-tuning.md (constants in `check::rules`); the only `unsafe` code
//! is in `sys` (getrlimit, setns, kill, FreeBSD sysctlbyname).

pub mod apply;
pub mod check;
pub mod compare;
mod error;
pub mod knobs;
pub mod netns;
pub mod procfs;
pub mod profile;
mod sys;
mod util;

pub use apply::{apply, diff, revert, Applied, ApplyOptions, ApplyReport, DiffRow, Outcome};
pub use check::{
    check_host, check_tree, server_processes_needed, CheckInput, CheckReport, Finding,
    NofileLimits, Role, Status,
};
pub use error::TuneError;
pub use knobs::{Os, Scope};
pub use profile::{Limit, Profile, Section, Setting};
pub use util::utc_stamp_at;
