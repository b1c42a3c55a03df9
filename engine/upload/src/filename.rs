//! The file name a slot request carries, made safe for a URL.
//!
//! What it does: [`sanitize`] keeps the name as the user wrote it (XEP-0363: keep the name and
//! especially the ending intact), replacing only path separators (`/`, `\`) with `_`, and
//! refuses what cannot be kept safely: an empty name, one over [`MAX_FILENAME_BYTES`], control
//! characters (a newline would split an HTTP header or a log line), bidirectional-text
//! controls (`photo\u{202E}gpj.exe` displays as `photoexe.jpg`), and names made only of
//! dots (`..` would become a dot-segment that clients resolve away).
//!
//! What it does not do: choose the file's name on disk. Files are stored under their token;
//! the name lives only in the URLs and the sidecar, so it never reaches a path lookup.

use std::fmt;

/// Longest accepted file name, in bytes of UTF-8: the common file-system limit, so a client
/// saving the download under this name can.
pub const MAX_FILENAME_BYTES: usize = 255;

/// Why a file name was refused (XEP-0363: `bad-request`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilenameError {
    Empty,
    TooLong { bytes: usize },
    ControlCharacter,
    BidiControl,
    OnlyDots,
}

impl fmt::Display for FilenameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilenameError::Empty => f.write_str("the file name is empty"),
            FilenameError::TooLong { bytes } => write!(
                f,
                "the file name is {bytes} bytes long; the limit is {MAX_FILENAME_BYTES}"
            ),
            FilenameError::ControlCharacter => {
                f.write_str("the file name contains a control character")
            }
            FilenameError::BidiControl => {
                f.write_str("the file name contains a bidirectional-text control character")
            }
            FilenameError::OnlyDots => f.write_str("the file name is made only of dots"),
        }
    }
}

impl std::error::Error for FilenameError {}

/// The name to put in the URLs, or why it cannot be used.
pub fn sanitize(filename: &str) -> Result<String, FilenameError> {
    if filename.is_empty() {
        return Err(FilenameError::Empty);
    }
    if filename.len() > MAX_FILENAME_BYTES {
        return Err(FilenameError::TooLong {
            bytes: filename.len(),
        });
    }
    if filename.chars().all(|c| c == '.') {
        return Err(FilenameError::OnlyDots);
    }
    let mut out = String::with_capacity(filename.len());
    for c in filename.chars() {
        if c.is_control() {
            return Err(FilenameError::ControlCharacter);
        }
        if is_bidi_control(c) {
            return Err(FilenameError::BidiControl);
        }
        out.push(if c == '/' || c == '\\' { '_' } else { c });
    }
    Ok(out)
}

/// The explicit directional formatting characters of Unicode's bidi algorithm (UAX #9).
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_ordinary_names_and_endings() {
        assert_eq!(sanitize("très cool.jpg").unwrap(), "très cool.jpg");
        assert_eq!(sanitize(".profile").unwrap(), ".profile");
        assert_eq!(sanitize("a..b.tar.gz").unwrap(), "a..b.tar.gz");
    }

    #[test]
    fn replaces_path_separators() {
        assert_eq!(sanitize("../etc/passwd").unwrap(), ".._etc_passwd");
        assert_eq!(sanitize("C:\\x\\y.png").unwrap(), "C:_x_y.png");
    }

    #[test]
    fn refuses_unsafe_names() {
        assert_eq!(sanitize(""), Err(FilenameError::Empty));
        assert_eq!(sanitize("."), Err(FilenameError::OnlyDots));
        assert_eq!(sanitize(".."), Err(FilenameError::OnlyDots));
        assert_eq!(sanitize("a\nb"), Err(FilenameError::ControlCharacter));
        assert_eq!(sanitize("a\u{7f}"), Err(FilenameError::ControlCharacter));
        assert_eq!(
            sanitize("photo\u{202E}gpj.exe"),
            Err(FilenameError::BidiControl)
        );
        let long = "x".repeat(MAX_FILENAME_BYTES + 1);
        assert_eq!(
            sanitize(&long),
            Err(FilenameError::TooLong {
                bytes: MAX_FILENAME_BYTES + 1
            })
        );
        assert!(sanitize(&long[1..]).is_ok());
    }
}
