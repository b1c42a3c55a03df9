//! The sidecar: a few lines of text beside each stored file, naming its owner, size, type,
//! upload time and name, so the index, the quota usage and retention are rebuilt at start
//! from the files alone.
//!
//! Format (UTF-8, `\n` after every line, fields in this order):
//!
//! ```text
//! rookery-upload-file 1
//! owner romeo%40montague.tld        (bare JID, percent-encoded)
//! size 23456
//! type image/jpeg
//! created 1765000000                (Unix seconds)
//! name tr%C3%A8s%20cool.jpg         (sanitized file name, percent-encoded)
//! ```
//!
//! Percent-encoding keeps every value on one line whatever it holds. The content type was
//! checked when the slot was minted (printable ASCII), so it is written as is.
//!
//! What it does not do: touch the disk (the store writes and reads the bytes).

use rookery_proto::Jid;
use rookery_upload::{content_type, percent};

const MAGIC: &str = "rookery-upload-file 1";

/// What the store knows about one stored file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMeta {
    pub owner: Jid,
    pub size_bytes: u64,
    pub content_type: String,
    pub created_unix_s: u64,
    /// Sanitized, not encoded.
    pub filename: String,
}

impl FileMeta {
    pub(crate) fn to_sidecar(&self) -> String {
        let mut owner = String::new();
        percent::encode_segment(self.owner.bare_str(), &mut owner);
        let mut name = String::new();
        percent::encode_segment(&self.filename, &mut name);
        format!(
            "{MAGIC}\nowner {owner}\nsize {}\ntype {}\ncreated {}\nname {name}\n",
            self.size_bytes, self.content_type, self.created_unix_s
        )
    }

    /// Parses a sidecar; `None` if it is not exactly the format above.
    pub(crate) fn from_sidecar(text: &str) -> Option<FileMeta> {
        let mut lines = text.strip_suffix('\n')?.split('\n');
        if lines.next()? != MAGIC {
            return None;
        }
        let mut field = |key: &str| lines.next()?.strip_prefix(key)?.strip_prefix(' ');
        let owner = decode(field("owner")?)?;
        let size_bytes = field("size")?.parse().ok()?;
        let content_type = content_type::check(field("type")?)?.to_owned();
        let created_unix_s = field("created")?.parse().ok()?;
        let filename = decode(field("name")?)?;
        if lines.next().is_some() {
            return None;
        }
        let owner = Jid::parse(&owner).ok().filter(Jid::is_bare)?;
        Some(FileMeta {
            owner,
            size_bytes,
            content_type,
            created_unix_s,
            filename,
        })
    }
}

fn decode(encoded: &str) -> Option<String> {
    String::from_utf8(percent::decode_segment(encoded)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> FileMeta {
        FileMeta {
            owner: Jid::parse("romeo@montague.tld").unwrap(),
            size_bytes: 23_456,
            content_type: "image/jpeg".into(),
            created_unix_s: 1_765_000_000,
            filename: "très\ncool.jpg".into(),
        }
    }

    #[test]
    fn round_trips_and_stays_line_based() {
        let text = meta().to_sidecar();
        assert_eq!(text.lines().count(), 6);
        assert!(text.contains("name tr%C3%A8s%0Acool.jpg\n"));
        assert_eq!(FileMeta::from_sidecar(&text), Some(meta()));
    }

    #[test]
    fn refuses_anything_else() {
        let text = meta().to_sidecar();
        assert_eq!(FileMeta::from_sidecar(&text[..text.len() - 1]), None);
        assert_eq!(FileMeta::from_sidecar(&format!("{text}extra\n")), None);
        assert_eq!(
            FileMeta::from_sidecar(&text.replace("size 23456", "size -1")),
            None
        );
        assert_eq!(FileMeta::from_sidecar(&text.replace(" 1\n", " 2\n")), None);
        let full_jid = text.replace("montague.tld\n", "montague.tld%2Fgarden\n");
        assert_eq!(FileMeta::from_sidecar(&full_jid), None);
        assert_eq!(FileMeta::from_sidecar(""), None);
    }
}
