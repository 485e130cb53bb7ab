//! Per-node advisory locks, so two `mechlab run`s (or two Slurm tasks) sharing one results
//! directory never execute the same node at once. The OS releases the lock if the process dies.

use std::fs::File;
use std::path::Path;

use fs4::fs_std::FileExt;

use super::StoreError;

/// Holds a node's lock file exclusively until dropped.
#[derive(Debug)]
pub struct NodeLock {
    file: File,
}

impl NodeLock {
    /// Takes the lock without waiting; `Ok(None)` means another process holds it.
    pub fn try_acquire(path: &Path) -> Result<Option<NodeLock>, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
        }
        let path = path.to_path_buf();
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(StoreError::io(&path))?;
        match FileExt::try_lock_exclusive(&file) {
            Ok(true) => Ok(Some(NodeLock { file })),
            Ok(false) => Ok(None),
            Err(e) => Err(StoreError::Io { path, source: e }),
        }
    }
}

impl Drop for NodeLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_fails_until_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node").join("lock");
        let first = NodeLock::try_acquire(&path).unwrap();
        assert!(first.is_some());
        assert!(NodeLock::try_acquire(&path).unwrap().is_none());
        drop(first);
        assert!(NodeLock::try_acquire(&path).unwrap().is_some());
    }
}
