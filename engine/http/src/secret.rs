//! The upload secret: the HMAC key the router signs slots with and this server checks them
//! with, kept in `<data_dir>/upload/secret` so slots minted before a restart stay valid.
//!
//! What it does: [`load_or_create_secret`] reads the file, or creates it with
//! [`SECRET_BYTES`] bytes from the OS random source, mode 0600, fsynced. Two processes racing
//! to create it both end up reading the one that won (`create_new`).
//!
//! What it does not do: rotate the key (delete the file and restart: open slots then fail with
//! 403, stored files are unaffected since downloads are not signed).

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use rookery_upload::MIN_SECRET_BYTES;

/// Bytes in a created secret: HMAC-SHA256's key size.
pub const SECRET_BYTES: usize = 32;

/// Why the secret could not be had.
#[derive(Debug)]
pub enum SecretError {
    Io { path: PathBuf, source: io::Error },
    TooShort { path: PathBuf, bytes: usize },
    Random(String),
}

/// Reads `<data_dir>/upload/secret`, creating it on first use.
pub fn load_or_create_secret(data_dir: &Path) -> Result<Vec<u8>, SecretError> {
    let dir = data_dir.join("upload");
    let path = dir.join("secret");
    let io_error = |source| SecretError::Io {
        path: path.clone(),
        source,
    };
    match fs::read(&path) {
        Ok(secret) => return checked(secret, &path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(e)),
    }
    fs::create_dir_all(&dir).map_err(io_error)?;
    let mut secret = vec![0u8; SECRET_BYTES];
    getrandom::fill(&mut secret).map_err(|e| SecretError::Random(e.to_string()))?;
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path);
    let mut file = match created {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return checked(fs::read(&path).map_err(io_error)?, &path)
        }
        Err(e) => return Err(io_error(e)),
    };
    file.write_all(&secret).map_err(io_error)?;
    file.sync_all().map_err(io_error)?;
    Ok(secret)
}

fn checked(secret: Vec<u8>, path: &Path) -> Result<Vec<u8>, SecretError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(SecretError::TooShort {
            path: path.to_path_buf(),
            bytes: secret.len(),
        });
    }
    Ok(secret)
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretError::Io { path, source } => write!(
                f,
                "the upload secret {}: {source} (check the data directory's permissions)",
                path.display()
            ),
            SecretError::TooShort { path, bytes } => write!(
                f,
                "the upload secret {} has {bytes} bytes, fewer than {MIN_SECRET_BYTES}; delete \
                 it to have a new one created (open upload slots will then be refused)",
                path.display()
            ),
            SecretError::Random(detail) => {
                write!(f, "the OS random source failed: {detail}")
            }
        }
    }
}

impl std::error::Error for SecretError {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn created_once_then_read_back() {
        let dir = std::env::temp_dir().join(format!("rookery-secret-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let first = load_or_create_secret(&dir).unwrap();
        assert_eq!(first.len(), SECRET_BYTES);
        let path = dir.join("upload/secret");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(load_or_create_secret(&dir).unwrap(), first);
        fs::write(&path, b"short").unwrap();
        let error = load_or_create_secret(&dir).unwrap_err();
        assert!(matches!(error, SecretError::TooShort { bytes: 5, .. }));
        assert!(error.to_string().contains("delete"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
