//! The card's file system (ISO/IEC 7816-4 §5.3): a tree of dedicated files (MF, DDF, ADF) and
//! elementary files of three structures: transparent, linear fixed records and cyclic records.
//!
//! Nodes live in an arena and refer to each other by index, so the whole tree serializes as
//! plain data for persistence.

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

/// Index of a node in the arena.
pub type NodeId = usize;

/// Who may do an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Anyone.
    #[default]
    Always,
    /// After the PIN was verified in this session.
    Pin,
    /// After EXTERNAL AUTHENTICATE with the card's maintenance key in this session (the
    /// issuer's counter or HSM, not the cardholder).
    Maintenance,
    /// Nobody (through the APDU interface).
    Never,
}

/// Structure and content of an elementary file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "structure", rename_all = "lowercase")]
pub enum EfBody {
    /// A byte string.
    Transparent {
        /// Content.
        data: Vec<u8>,
        /// Fixed size of the file (writes may not grow it).
        size: usize,
    },
    /// Records in order, record number 1 first.
    Linear {
        /// Records.
        records: Vec<Vec<u8>>,
        /// Most records the file holds.
        max_records: usize,
        /// Longest record.
        max_record_len: usize,
    },
    /// A ring of records; record 1 is the most recent.
    Cyclic {
        /// Records, most recent first.
        records: Vec<Vec<u8>>,
        /// Ring size.
        max_records: usize,
        /// Longest record.
        max_record_len: usize,
    },
}

impl EfBody {
    /// Records of a record file (`None` for a transparent file).
    pub fn records(&self) -> Option<&[Vec<u8>]> {
        match self {
            Self::Transparent { .. } => None,
            Self::Linear { records, .. } | Self::Cyclic { records, .. } => Some(records),
        }
    }
}

/// What a node is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum NodeKind {
    /// A dedicated file (MF, DDF or ADF).
    Df {
        /// Application identifier / DF name, if selectable by name.
        aid: Option<Vec<u8>>,
        /// Children.
        children: Vec<NodeId>,
    },
    /// An elementary file.
    Ef {
        /// Short file identifier.
        sfi: Option<u8>,
        /// Content.
        body: EfBody,
        /// Read access.
        read: Access,
        /// Update access.
        update: Access,
    },
}

/// What [`FileSystem::add_ef`] needs to create an elementary file.
#[derive(Debug, Clone)]
pub struct EfSpec<'a> {
    /// File identifier.
    pub fid: u16,
    /// Human name.
    pub name: &'a str,
    /// Short file identifier.
    pub sfi: Option<u8>,
    /// Structure and content.
    pub body: EfBody,
    /// Read access.
    pub read: Access,
    /// Update access.
    pub update: Access,
}

/// One file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// File identifier.
    pub fid: u16,
    /// Human name ("SSSE", "EF05").
    pub name: String,
    /// Parent DF (`None` for the MF).
    pub parent: Option<NodeId>,
    /// What it is.
    pub kind: NodeKind,
}

/// Errors from file-system operations, each mapping to one status word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsError {
    /// No such file (6A82).
    FileNotFound,
    /// No such record (6A83).
    RecordNotFound,
    /// Wrong file structure for the command (6981).
    WrongStructure,
    /// Offset outside the file (6B00).
    OffsetOutOfRange,
    /// Data does not fit (6A84 or 6700).
    NoSpace,
    /// Record length wrong for the file (6700).
    WrongRecordLength,
}

/// The tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSystem {
    nodes: Vec<Node>,
}

impl Drop for FileSystem {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let NodeKind::Ef { body, .. } = &mut n.kind {
                match body {
                    EfBody::Transparent { data, .. } => data.zeroize(),
                    EfBody::Linear { records, .. } | EfBody::Cyclic { records, .. } => {
                        for r in records {
                            r.zeroize();
                        }
                    }
                }
            }
        }
    }
}

/// The MF's node id.
pub const MF: NodeId = 0;

impl FileSystem {
    /// A file system holding only the MF (`3F00`).
    pub fn new() -> Self {
        Self {
            nodes: vec![Node {
                fid: 0x3f00,
                name: "MF".into(),
                parent: None,
                kind: NodeKind::Df {
                    aid: None,
                    children: Vec::new(),
                },
            }],
        }
    }

    /// A node.
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id)
    }

    /// A node, mutably.
    pub fn node_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        self.nodes.get_mut(id)
    }

    fn add(&mut self, parent: NodeId, node: Node) -> Result<NodeId, FsError> {
        let id = self.nodes.len();
        match self.nodes.get_mut(parent).map(|p| &mut p.kind) {
            Some(NodeKind::Df { children, .. }) => children.push(id),
            _ => return Err(FsError::WrongStructure),
        }
        self.nodes.push(node);
        Ok(id)
    }

    /// Add a DF under `parent`.
    pub fn add_df(
        &mut self,
        parent: NodeId,
        fid: u16,
        name: &str,
        aid: Option<Vec<u8>>,
    ) -> Result<NodeId, FsError> {
        self.add(
            parent,
            Node {
                fid,
                name: name.into(),
                parent: Some(parent),
                kind: NodeKind::Df {
                    aid,
                    children: Vec::new(),
                },
            },
        )
    }

    /// Add an EF under `parent`.
    pub fn add_ef(&mut self, parent: NodeId, ef: EfSpec<'_>) -> Result<NodeId, FsError> {
        self.add(
            parent,
            Node {
                fid: ef.fid,
                name: ef.name.into(),
                parent: Some(parent),
                kind: NodeKind::Ef {
                    sfi: ef.sfi,
                    body: ef.body,
                    read: ef.read,
                    update: ef.update,
                },
            },
        )
    }

    /// Children of a DF.
    pub fn children(&self, df: NodeId) -> &[NodeId] {
        match self.nodes.get(df).map(|n| &n.kind) {
            Some(NodeKind::Df { children, .. }) => children,
            _ => &[],
        }
    }

    /// Whether `id` is a DF.
    pub fn is_df(&self, id: NodeId) -> bool {
        matches!(
            self.nodes.get(id).map(|n| &n.kind),
            Some(NodeKind::Df { .. })
        )
    }

    /// The child of `df` with file identifier `fid`.
    pub fn child_by_fid(&self, df: NodeId, fid: u16) -> Option<NodeId> {
        self.children(df)
            .iter()
            .copied()
            .find(|&c| self.nodes.get(c).is_some_and(|n| n.fid == fid))
    }

    /// The EF of `df` with short file identifier `sfi`.
    pub fn child_by_sfi(&self, df: NodeId, sfi: u8) -> Option<NodeId> {
        self.children(df).iter().copied().find(|&c| {
            matches!(self.nodes.get(c).map(|n| &n.kind), Some(NodeKind::Ef { sfi: Some(s), .. }) if *s == sfi)
        })
    }

    /// DFs whose name starts with `prefix`, in tree order (for SELECT by name, first and next
    /// occurrence).
    pub fn dfs_by_name(&self, prefix: &[u8]) -> Vec<NodeId> {
        let mut out = Vec::new();
        self.walk(MF, &mut |id, node| {
            if let NodeKind::Df { aid: Some(aid), .. } = &node.kind
                && !prefix.is_empty()
                && aid.starts_with(prefix)
            {
                out.push(id);
            }
        });
        out
    }

    fn walk(&self, id: NodeId, f: &mut impl FnMut(NodeId, &Node)) {
        if let Some(node) = self.nodes.get(id) {
            f(id, node);
            for &c in self.children(id) {
                self.walk(c, f);
            }
        }
    }

    /// The DF holding `id` (itself if it is a DF).
    pub fn df_of(&self, id: NodeId) -> NodeId {
        if self.is_df(id) {
            id
        } else {
            self.nodes.get(id).and_then(|n| n.parent).unwrap_or(MF)
        }
    }
}

impl Default for FileSystem {
    fn default() -> Self {
        Self::new()
    }
}

/// Read a record by number (1-based).
pub fn record(body: &EfBody, number: usize) -> Result<&[u8], FsError> {
    let records = body.records().ok_or(FsError::WrongStructure)?;
    number
        .checked_sub(1)
        .and_then(|i| records.get(i))
        .map(Vec::as_slice)
        .ok_or(FsError::RecordNotFound)
}

/// Numbers (1-based) of records whose first byte (the TLV tag) equals `id`.
pub fn records_with_id(body: &EfBody, id: u8) -> Result<Vec<usize>, FsError> {
    let records = body.records().ok_or(FsError::WrongStructure)?;
    Ok(records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.first() == Some(&id))
        .map(|(i, _)| i + 1)
        .collect())
}

/// Replace record `number` (1-based) of a linear or cyclic file.
pub fn update_record(body: &mut EfBody, number: usize, data: &[u8]) -> Result<(), FsError> {
    let (records, max_len) = match body {
        EfBody::Transparent { .. } => return Err(FsError::WrongStructure),
        EfBody::Linear {
            records,
            max_record_len,
            ..
        }
        | EfBody::Cyclic {
            records,
            max_record_len,
            ..
        } => (records, *max_record_len),
    };
    if data.len() > max_len {
        return Err(FsError::WrongRecordLength);
    }
    let slot = number
        .checked_sub(1)
        .and_then(|i| records.get_mut(i))
        .ok_or(FsError::RecordNotFound)?;
    slot.zeroize();
    *slot = data.to_vec();
    Ok(())
}

/// Append a record: at the end of a linear file, or as the new record 1 of a cyclic file
/// (dropping the oldest when full).
pub fn append_record(body: &mut EfBody, data: &[u8]) -> Result<(), FsError> {
    match body {
        EfBody::Transparent { .. } => Err(FsError::WrongStructure),
        EfBody::Linear {
            records,
            max_records,
            max_record_len,
        } => {
            if data.len() > *max_record_len {
                return Err(FsError::WrongRecordLength);
            }
            if records.len() >= *max_records {
                return Err(FsError::NoSpace);
            }
            records.push(data.to_vec());
            Ok(())
        }
        EfBody::Cyclic {
            records,
            max_records,
            max_record_len,
        } => {
            if data.len() > *max_record_len {
                return Err(FsError::WrongRecordLength);
            }
            records.insert(0, data.to_vec());
            records.truncate(*max_records);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_navigation() {
        let mut fs = FileSystem::new();
        let ddf = fs
            .add_df(MF, 0xddf1, "SSSE", Some(b"sx1.sh.".to_vec()))
            .unwrap();
        let ef = fs
            .add_ef(
                ddf,
                EfSpec {
                    fid: 0xef05,
                    name: "EF05",
                    sfi: Some(5),
                    body: EfBody::Linear {
                        records: vec![vec![1, 1, 0xaa], vec![7, 1, 0xbb]],
                        max_records: 10,
                        max_record_len: 40,
                    },
                    read: Access::Always,
                    update: Access::Never,
                },
            )
            .unwrap();
        assert_eq!(fs.child_by_fid(ddf, 0xef05), Some(ef));
        assert_eq!(fs.child_by_sfi(ddf, 5), Some(ef));
        assert_eq!(fs.dfs_by_name(b"sx1"), vec![ddf]);
        assert_eq!(fs.df_of(ef), ddf);
        let NodeKind::Ef { body, .. } = &fs.node(ef).unwrap().kind else {
            panic!()
        };
        assert_eq!(records_with_id(body, 7).unwrap(), vec![2]);
        assert_eq!(record(body, 3), Err(FsError::RecordNotFound));
        assert_eq!(record(body, 0), Err(FsError::RecordNotFound));
    }

    #[test]
    fn cyclic_files_keep_the_newest_first() {
        let mut body = EfBody::Cyclic {
            records: Vec::new(),
            max_records: 2,
            max_record_len: 4,
        };
        for i in 1..=3u8 {
            append_record(&mut body, &[i]).unwrap();
        }
        assert_eq!(body.records().unwrap(), [vec![3], vec![2]]);
        assert_eq!(
            append_record(&mut body, &[0; 5]),
            Err(FsError::WrongRecordLength)
        );
    }
}
