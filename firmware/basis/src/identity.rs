//! The node's identity key: made once, kept private (mode 0600), never replaced silently.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result, bail};
use basis_core::NodeKey;

/// Loads the node key at `path`, or makes one if there is no file.
///
/// A key file that is readable by others, or that does not hold a valid key, is an error:
/// the node never makes a new identity behind the user's back.
pub fn load_or_create(path: &Path) -> Result<NodeKey> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => load(path),
        Err(e) if e.kind() == ErrorKind::NotFound => create(path),
        Err(e) => Err(e).with_context(|| format!("cannot reach the node key {}", path.display())),
    }
}

fn load(path: &Path) -> Result<NodeKey> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot reach the node key {}", path.display()))?;
    if !meta.is_file() {
        bail!("the node key {} is not a regular file", path.display());
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "the node key {} has permissions {mode:04o}; it must be readable by its owner only. Fix with: chmod 600 {}",
            path.display(),
            path.display()
        );
    }
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the node key {}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|_| "the file is not text".to_string());
    text.and_then(|t| NodeKey::from_pem(&t).map_err(|e| e.to_string()))
        .map_err(|e| {
        anyhow::anyhow!(
            "the node key {} is not a valid key ({e}); it was left as it is. Restore it from a backup, or move it away to give this node a new identity",
            path.display()
        )
    })
}

fn create(path: &Path) -> Result<NodeKey> {
    let key = NodeKey::generate()?;
    let pem = key.to_pem()?;
    let tmp = path.with_extension("key.new");
    let _ = std::fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create the node key {}", tmp.display()))?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write the node key {}", tmp.display()))?;
    drop(file);
    // A hard link never replaces an existing file: if another process made a key meanwhile,
    // keep that one.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                // Make the new directory entry durable too.
                let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
            }
            log::info!("made a new node key {}", path.display());
            Ok(key)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => load(path),
        Err(e) => Err(e).with_context(|| format!("cannot create the node key {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_loaded_with_the_same_id() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("node.key");
        let a = load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = load_or_create(&path).unwrap();
        assert_eq!(a.id(), b.id());
    }

    #[test]
    fn open_permissions_and_garbage_are_refused_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("node.key");
        load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("permissions 0644"), "{err}");

        std::fs::write(&path, b"not a key").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("not a valid key"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"not a key");
    }
}
