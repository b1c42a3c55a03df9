//! The crate's one error enum. Each variant names what failed and, in its message, the likely
//! cause and fix, because these errors reach an operator's terminal unchanged.
//!
//! Not here: findings of a host check (those are data in `CheckReport`, not errors), and values
//! the kernel refused during `apply` (reported per setting in `ApplyReport`).

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Everything that can stop a rookery-tune operation.
#[derive(Debug)]
pub enum TuneError {
    /// A file or /proc entry could not be read or written.
    Io { context: String, source: io::Error },
    /// A profile line is malformed (1-based line number).
    Parse {
        profile: String,
        line: usize,
        reason: String,
    },
    /// No shipped profile of that name and no such file.
    UnknownProfile { name: String, known: Vec<String> },
    /// A network namespace could not be created, entered or deleted.
    Netns { name: String, reason: String },
    /// An external command (`ip`, rookery, rookery-load) failed.
    Command { command: String, reason: String },
    /// The backup file is missing or unreadable.
    Backup { path: PathBuf, reason: String },
    /// The operation is not available on this OS or with these options.
    Unsupported(String),
    /// A binary that `compare` needs was not found.
    BinaryMissing {
        name: String,
        searched: Vec<PathBuf>,
    },
    /// Something did not finish in time.
    Timeout { what: String, after_ms: u64 },
}

impl TuneError {
    /// Wraps an io::Error with what was being done.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        TuneError::Io {
            context: context.into(),
            source,
        }
    }
}

impl fmt::Display for TuneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TuneError::Io { context, source } => {
                write!(f, "{context}: {source}")?;
                if source.kind() == io::ErrorKind::PermissionDenied {
                    write!(
                        f,
                        " (run as root: /proc/sys writes and netns need CAP_SYS_ADMIN)"
                    )?;
                }
                Ok(())
            }
            TuneError::Parse {
                profile,
                line,
                reason,
            } => {
                write!(f, "profile {profile}, line {line}: {reason}")
            }
            TuneError::UnknownProfile { name, known } => write!(
                f,
                "no profile {name:?}: not a file and not a shipped profile (shipped: {})",
                known.join(", ")
            ),
            TuneError::Netns { name, reason } => write!(
                f,
                "network namespace {name}: {reason} (needs root and iproute2's `ip netns`)"
            ),
            TuneError::Command { command, reason } => write!(f, "`{command}`: {reason}"),
            TuneError::Backup { path, reason } => write!(
                f,
                "backup {}: {reason} (apply writes it; revert needs the same --netns)",
                path.display()
            ),
            TuneError::Unsupported(what) => write!(f, "not supported: {what}"),
            TuneError::BinaryMissing { name, searched } => {
                let dirs: Vec<String> = searched.iter().map(|p| p.display().to_string()).collect();
                write!(
                    f,
                    "{name} not found (looked in: {}); build it with \
                     `cargo build --release --bin rookery --bin rookery-load` or pass --bin-dir",
                    dirs.join(", ")
                )
            }
            TuneError::Timeout { what, after_ms } => {
                write!(f, "{what} did not finish within {after_ms} ms")
            }
        }
    }
}

impl std::error::Error for TuneError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TuneError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
