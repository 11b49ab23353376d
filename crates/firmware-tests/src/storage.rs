//! Persistence of the card's non-volatile memory.
//!
//! The whole [`CardImage`] is written at each commit. [`FileStorage`] writes atomically: a
//! temporary file in the same directory, `fsync`, `rename` over the old file, `fsync` of the
//! directory; a crash or power loss at any moment leaves either the old image or the new one,
//! never a mix. [`MemoryStorage`] keeps the image in memory and can be told to fail a given
//! commit, which is how tests tear a write.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::image::CardImage;

/// Errors of the card's storage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// Reading or writing the file failed.
    #[error("card storage {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The stored image is not readable.
    #[error("card storage {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A tear was injected: power was lost before this commit reached memory.
    #[error("write torn (injected at commit {0})")]
    Torn(u64),
}

/// Where the card image lives.
pub trait Storage: Send {
    /// The last committed image, if any.
    fn load(&mut self) -> Result<Option<CardImage>, StorageError>;
    /// Make `image` the committed state, atomically.
    fn commit(&mut self, image: &CardImage) -> Result<(), StorageError>;
}

/// An image kept in memory (serialized, so it behaves like a real store).
#[derive(Debug, Default)]
pub struct MemoryStorage {
    committed: Option<Vec<u8>>,
    commits: u64,
    tear_at: Option<u64>,
}

impl MemoryStorage {
    /// Empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Make commit number `n` (1-based, counted from now) fail as if power was lost before it.
    pub fn tear_at(&mut self, n: u64) {
        self.tear_at = Some(self.commits + n);
    }

    /// Commits so far.
    pub const fn commits(&self) -> u64 {
        self.commits
    }
}

impl Storage for MemoryStorage {
    fn load(&mut self) -> Result<Option<CardImage>, StorageError> {
        self.committed
            .as_deref()
            .map(|b| {
                serde_json::from_slice(b).map_err(|e| StorageError::Corrupt {
                    path: PathBuf::from("<memory>"),
                    reason: e.to_string(),
                })
            })
            .transpose()
    }

    fn commit(&mut self, image: &CardImage) -> Result<(), StorageError> {
        self.commits += 1;
        if self.tear_at == Some(self.commits) {
            self.tear_at = None;
            return Err(StorageError::Torn(self.commits));
        }
        let bytes = serde_json::to_vec(image).map_err(|e| StorageError::Corrupt {
            path: PathBuf::from("<memory>"),
            reason: e.to_string(),
        })?;
        self.committed = Some(bytes);
        Ok(())
    }
}

/// An image in a file, written atomically.
#[derive(Debug)]
pub struct FileStorage {
    path: PathBuf,
}

impl FileStorage {
    /// Store the image at `path` (the directory must exist).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> StorageError {
        StorageError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

impl Storage for FileStorage {
    fn load(&mut self) -> Result<Option<CardImage>, StorageError> {
        match fs::read(&self.path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StorageError::Corrupt {
                        path: self.path.clone(),
                        reason: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(e)),
        }
    }

    fn commit(&mut self, image: &CardImage) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec_pretty(image).map_err(|e| StorageError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        write_atomic(&self.path, &bytes).map_err(|e| self.io(e))
    }
}

/// Write `bytes` to `path` so that a crash leaves either the old or the new content.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "card".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    File::open(&dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Profile;

    #[test]
    fn file_storage_round_trips_and_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FileStorage::new(dir.path().join("card.json"));
        assert!(s.load().unwrap().is_none());
        let image = Profile::demo_zhangsan().build().unwrap();
        s.commit(&image).unwrap();
        assert_eq!(s.load().unwrap().unwrap(), image);
        // No temporary file left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn corrupt_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("card.json");
        fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            FileStorage::new(&path).load(),
            Err(StorageError::Corrupt { .. })
        ));
    }

    #[test]
    fn memory_storage_tears_the_chosen_commit() {
        let mut s = MemoryStorage::new();
        let image = Profile::demo_zhangsan().build().unwrap();
        s.commit(&image).unwrap();
        s.tear_at(2);
        s.commit(&image).unwrap();
        assert!(matches!(s.commit(&image), Err(StorageError::Torn(3))));
        assert_eq!(s.load().unwrap().unwrap(), image);
    }
}
