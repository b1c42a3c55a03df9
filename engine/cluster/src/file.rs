//! The cluster file: one TOML file every node of a cluster reads.
//!
//! ```toml
//! nats = ["nats://127.0.0.1:4222"]   # one URL or a list
//! name = "rookery"                   # optional: the NATS subject prefix (default "rookery")
//! vshards = 4096                     # optional (default 4096)
//!
//! [[node]]
//! id = 1                             # a small integer, unique
//! c2s = "127.0.0.1:5222"             # the address clients use for this node
//! shards = 2                         # its shard count (default 1)
//!
//! [[node]]
//! id = 2
//! c2s = "127.0.0.1:5232"
//! shards = 2
//! ```
//!
//! What it does: parses and checks the file, naming the problem and the fix on any error.
//!
//! What it does not do: start anything, or read the node's own flags (`--node`, `--listen`,
//! `--data-dir`: the server checks that its `--shards` matches the file's `shards`).
//!
//! Invariants of a loaded file: node ids are unique and non-zero, every node has at least one
//! shard, `vshards` is at least the total number of shards (every shard owns a vshard), at
//! least one NATS URL.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::NodeId;

/// Default number of virtual shards.
pub const DEFAULT_VSHARDS: u32 = 4096;
/// Most virtual shards (the placement table keeps one entry each).
pub const MAX_VSHARDS: u32 = 1 << 20;
/// Default subject prefix.
pub const DEFAULT_NAME: &str = "rookery";

/// A loaded, checked cluster file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterFile {
    /// NATS server URLs (the client picks and fails over among them).
    pub nats: Vec<String>,
    /// Subject prefix: node N listens on `<name>.node.<N>`.
    pub name: String,
    pub vshards: u32,
    /// The nodes, in file order.
    pub nodes: Vec<NodeSpec>,
}

/// One `[[node]]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSpec {
    pub id: NodeId,
    /// The address clients are sent to (RFC 6120 see-other-host) for users homed here.
    pub c2s: String,
    pub shards: u16,
}

/// What is wrong with a cluster file.
#[derive(Debug)]
pub enum FileError {
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    Syntax {
        path: PathBuf,
        detail: String,
    },
    Invalid {
        path: PathBuf,
        detail: String,
    },
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::Read { path, source } => {
                write!(
                    f,
                    "cannot read the cluster file {}: {source}",
                    path.display()
                )
            }
            FileError::Syntax { path, detail } => write!(
                f,
                "the cluster file {} is not valid TOML of the expected shape: {detail}",
                path.display()
            ),
            FileError::Invalid { path, detail } => {
                write!(
                    f,
                    "the cluster file {} is inconsistent: {detail}",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for FileError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    nats: Urls,
    name: Option<String>,
    vshards: Option<u32>,
    #[serde(rename = "node", default)]
    nodes: Vec<RawNode>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Urls {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: u16,
    c2s: String,
    shards: Option<u16>,
}

impl ClusterFile {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<ClusterFile, FileError> {
        let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        ClusterFile::parse(&text).map_err(|error| match error {
            ParseError::Syntax(detail) => FileError::Syntax {
                path: path.to_path_buf(),
                detail,
            },
            ParseError::Invalid(detail) => FileError::Invalid {
                path: path.to_path_buf(),
                detail,
            },
        })
    }

    /// Parses and checks a cluster file's text.
    pub fn parse(text: &str) -> Result<ClusterFile, ParseError> {
        let raw: Raw = toml::from_str(text).map_err(|e| ParseError::Syntax(e.to_string()))?;
        let nats = match raw.nats {
            Urls::One(url) => vec![url],
            Urls::Many(urls) => urls,
        };
        let file = ClusterFile {
            nats,
            name: raw.name.unwrap_or_else(|| DEFAULT_NAME.to_owned()),
            vshards: raw.vshards.unwrap_or(DEFAULT_VSHARDS),
            nodes: raw
                .nodes
                .into_iter()
                .map(|n| NodeSpec {
                    id: NodeId(n.id),
                    c2s: n.c2s,
                    shards: n.shards.unwrap_or(1),
                })
                .collect(),
        };
        file.check().map_err(ParseError::Invalid)?;
        Ok(file)
    }

    fn check(&self) -> Result<(), String> {
        if self.nats.is_empty() || self.nats.iter().any(|u| u.trim().is_empty()) {
            return Err(
                "`nats` needs at least one URL, e.g. nats = \"nats://127.0.0.1:4222\"".into(),
            );
        }
        let valid_name = !self.name.is_empty()
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_name {
            return Err(format!(
                "`name` {:?} must be letters, digits, '-' or '_' (it prefixes NATS subjects)",
                self.name
            ));
        }
        if self.nodes.is_empty() {
            return Err("no [[node]] table: list every node with its id, c2s and shards".into());
        }
        let mut ids: Vec<u16> = self.nodes.iter().map(|n| n.id.0).collect();
        ids.sort_unstable();
        if ids[0] == 0 {
            return Err("node id 0 is reserved: number nodes from 1".into());
        }
        if let Some(pair) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("node id {} appears twice", pair[0]));
        }
        if let Some(node) = self.nodes.iter().find(|n| n.shards == 0) {
            return Err(format!(
                "{} has shards = 0: a node runs at least one",
                node.id
            ));
        }
        if let Some(node) = self
            .nodes
            .iter()
            .find(|n| n.c2s.parse::<std::net::SocketAddr>().is_err() && !n.c2s.contains(':'))
        {
            return Err(format!(
                "{} has c2s = {:?}: give host:port, the address clients connect to",
                node.id, node.c2s
            ));
        }
        let total: u32 = self.nodes.iter().map(|n| u32::from(n.shards)).sum();
        if self.vshards < total || self.vshards > MAX_VSHARDS {
            return Err(format!(
                "vshards = {} must be between the total shard count ({total}) and {MAX_VSHARDS}",
                self.vshards
            ));
        }
        Ok(())
    }

    /// The node with `id`, if listed.
    pub fn node(&self, id: NodeId) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The NATS subject node `id` listens on.
    pub fn subject(&self, id: NodeId) -> String {
        format!("{}.node.{}", self.name, id.0)
    }
}

/// What `parse` found wrong (the path is added by `load`).
#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    Syntax(String),
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        nats = "nats://127.0.0.1:4222"
        [[node]]
        id = 1
        c2s = "127.0.0.1:5222"
        shards = 2
        [[node]]
        id = 2
        c2s = "node2.example.net:5222"
    "#;

    #[test]
    fn a_good_file_loads_with_defaults() {
        let file = ClusterFile::parse(GOOD).unwrap();
        assert_eq!(file.nats, ["nats://127.0.0.1:4222"]);
        assert_eq!(
            (file.name.as_str(), file.vshards),
            ("rookery", DEFAULT_VSHARDS)
        );
        assert_eq!(file.nodes.len(), 2);
        assert_eq!(file.node(NodeId(2)).unwrap().shards, 1);
        assert_eq!(file.subject(NodeId(2)), "rookery.node.2");
    }

    #[test]
    fn bad_files_name_the_problem() {
        let cases = [
            (
                "nats = []\n[[node]]\nid = 1\nc2s = \"a:1\"",
                "at least one URL",
            ),
            ("nats = \"n\"", "no [[node]]"),
            ("nats = \"n\"\n[[node]]\nid = 0\nc2s = \"a:1\"", "reserved"),
            (
                "nats = \"n\"\n[[node]]\nid = 1\nc2s = \"a:1\"\n[[node]]\nid = 1\nc2s = \"b:1\"",
                "twice",
            ),
            (
                "nats = \"n\"\n[[node]]\nid = 1\nc2s = \"a:1\"\nshards = 0",
                "shards = 0",
            ),
            (
                "nats = \"n\"\n[[node]]\nid = 1\nc2s = \"nowhere\"",
                "host:port",
            ),
            (
                "nats = \"n\"\nvshards = 1\n[[node]]\nid = 1\nc2s = \"a:1\"\nshards = 2",
                "vshards",
            ),
            (
                "nats = \"n\"\nname = \"a.b\"\n[[node]]\nid = 1\nc2s = \"a:1\"",
                "name",
            ),
        ];
        for (text, needle) in cases {
            let error = ClusterFile::parse(text).unwrap_err();
            let ParseError::Invalid(detail) = error else {
                panic!("{text}: {error:?}");
            };
            assert!(detail.contains(needle), "{text}: {detail}");
        }
        let syntax = ClusterFile::parse("nats = \"n\"\nnodes = 3").unwrap_err();
        assert!(matches!(syntax, ParseError::Syntax(_)), "{syntax:?}");
    }
}
