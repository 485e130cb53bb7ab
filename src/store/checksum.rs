//! Checksums of what a node writes: every file a node produces through the store (checkpoint,
//! weights, kept weights, shards, summary) is recorded with its blake3 hash in the node's
//! `checksums.json`, and read back only if it still matches. Dataset caches carry their own hash.
//!
//! Written under the node's lock, file first, then its entry: a crash between the two leaves a
//! mismatch, which reads as corrupt, so the node is recomputed: never trusted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{NodeDir, StoreError, atomic};

/// File name (relative to the node directory, `/`-separated) → blake3 hex.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub files: BTreeMap<String, String>,
}

/// The hex blake3 of `bytes`.
pub fn hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// `path` relative to the node directory, as a manifest key.
fn key(node: &NodeDir, path: &Path) -> String {
    path.strip_prefix(node.path())
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

impl Manifest {
    /// The node's manifest; empty when it has none. An unreadable manifest is empty too: every
    /// file it covered then reads as unverified, and `status --verify` says so.
    pub fn read(node: &NodeDir) -> Manifest {
        std::fs::read(node.checksums())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn write(&self, node: &NodeDir) -> Result<(), StoreError> {
        atomic::write(&node.checksums(), &super::to_json(self)?)
    }
}

/// How a file compares with its recorded checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Ok,
    /// Written before checksums were kept (or the manifest is lost): read as is.
    Unrecorded,
    Missing,
    Mismatch,
}

/// Writes `bytes` to `path` in `node` atomically and records their checksum.
pub fn write_sealed(node: &NodeDir, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    atomic::write(path, bytes)?;
    let mut manifest = Manifest::read(node);
    manifest.files.insert(key(node, path), hash(bytes));
    manifest.write(node)
}

/// Forgets `path` (after removing it).
pub fn forget(node: &NodeDir, path: &Path) -> Result<(), StoreError> {
    let mut manifest = Manifest::read(node);
    if manifest.files.remove(&key(node, path)).is_some() {
        manifest.write(node)?;
    }
    Ok(())
}

/// The bytes at `path` in `node` if they match their checksum (or none was recorded); a
/// mismatch is [`StoreError::Corrupt`].
pub fn read_sealed(node: &NodeDir, path: &Path) -> Result<Vec<u8>, StoreError> {
    let bytes = std::fs::read(path).map_err(StoreError::io(path))?;
    match Manifest::read(node).files.get(&key(node, path)) {
        Some(want) if *want != hash(&bytes) => Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: "checksum mismatch".into(),
        }),
        _ => Ok(bytes),
    }
}

/// Every recorded file of `node` and how it compares, plus `extra` files expected to exist.
pub fn verify(node: &NodeDir, extra: &[PathBuf]) -> Vec<(PathBuf, Check)> {
    let manifest = Manifest::read(node);
    let mut out: Vec<(PathBuf, Check)> = manifest
        .files
        .iter()
        .map(|(name, want)| {
            let path = node.path().join(name);
            let check = match std::fs::read(&path) {
                Ok(b) if hash(&b) == *want => Check::Ok,
                Ok(_) => Check::Mismatch,
                Err(_) => Check::Missing,
            };
            (path, check)
        })
        .collect();
    for path in extra {
        if !manifest.files.contains_key(&key(node, path)) {
            let check = if path.exists() {
                Check::Unrecorded
            } else {
                Check::Missing
            };
            out.push((path.clone(), check));
        }
    }
    out
}

/// The files of a done `node` that cannot be trusted: checksum mismatches, missing files, and
/// dataset caches whose own hash fails. Files written before checksums were kept are trusted.
pub fn problems(store: &super::Store, node: &crate::plan::Node) -> Vec<(PathBuf, Check)> {
    use crate::plan::NodeKind;
    let dir = store.node(&node.id);
    match node.kind {
        NodeKind::Dataset => [
            crate::task::Split::Train,
            crate::task::Split::Test,
            crate::task::Split::Dev,
        ]
        .into_iter()
        .map(|split| dir.data(split))
        .filter(|path| path.exists())
        .filter(|path| {
            std::fs::read(path).map_or(true, |bytes| {
                crate::task::Dataset::from_bytes(&bytes, &path.display().to_string()).is_err()
            })
        })
        .map(|path| (path, Check::Mismatch))
        .collect(),
        NodeKind::Train => verify(
            &dir,
            &[dir.model(), dir.shard(super::Shard::Metrics), dir.summary()],
        ),
        NodeKind::Evaluate => verify(&dir, &[]),
    }
    .into_iter()
    .filter(|(_, check)| matches!(check, Check::Mismatch | Check::Missing))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flipped_byte_is_caught_and_an_intact_file_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let node = NodeDir::new(dir.path().join("n"));
        let path = node.kept_weights(10);
        write_sealed(&node, &path, b"weights").unwrap();
        assert_eq!(read_sealed(&node, &path).unwrap(), b"weights");
        std::fs::write(&path, b"weighTs").unwrap();
        assert!(matches!(
            read_sealed(&node, &path),
            Err(StoreError::Corrupt { .. })
        ));
        assert_eq!(verify(&node, &[]), vec![(path.clone(), Check::Mismatch)]);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(verify(&node, &[]), vec![(path.clone(), Check::Missing)]);
        forget(&node, &path).unwrap();
        assert!(verify(&node, &[]).is_empty());
    }
}
