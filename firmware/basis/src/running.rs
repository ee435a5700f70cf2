//! How admin commands find a running node that uses another data directory than the one they
//! would work out themselves (`basis run --data-dir X`, then `basis status` with no flag).
//!
//! At start the daemon writes a small pointer file, `node-<pid>.json`, naming its data
//! directory and control socket, into a runtime directory: `$XDG_RUNTIME_DIR/basis`, else
//! `/run/basis` when it runs as root. It removes the file when it stops cleanly; a node that
//! died leaves it behind, and readers skip a pointer whose process is gone or whose socket is
//! missing. An admin command given no flag that names the configuration or the data directory
//! reads these pointers when no node answers at its default socket.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Name of the runtime directory's subdirectory.
const SUBDIR: &str = "basis";
/// Start and end of a pointer file's name (`node-<pid>.json`).
const PREFIX: &str = "node-";
const SUFFIX: &str = ".json";

/// What a pointer file says about a running node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    /// The daemon's process id.
    pub pid: u32,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its control socket.
    pub socket: PathBuf,
}

/// The runtime directory for pointers: `$XDG_RUNTIME_DIR/basis`, else `/run/basis` for root;
/// `None` for another user without `XDG_RUNTIME_DIR`.
pub fn dir(env: &dyn Fn(&str) -> Option<String>, is_root: bool) -> Option<PathBuf> {
    match env("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(runtime) => Some(Path::new(&runtime).join(SUBDIR)),
        None if is_root => Some(Path::new("/run").join(SUBDIR)),
        None => None,
    }
}

/// The pointer this daemon wrote; dropping it removes the file.
#[derive(Debug)]
pub struct Published {
    path: PathBuf,
}

impl Published {
    /// Writes the pointer for this process into `dir` (made private if missing).
    pub fn write(dir: &Path, data_dir: &Path, socket: &Path) -> Result<Published> {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let pid = std::process::id();
        let pointer = Pointer {
            pid,
            // Absolute, so that commands run from another directory find it.
            data_dir: std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.into()),
            socket: std::path::absolute(socket).unwrap_or_else(|_| socket.into()),
        };
        let path = dir.join(format!("{PREFIX}{pid}{SUFFIX}"));
        let tmp = dir.join(format!(".{PREFIX}{pid}{SUFFIX}.tmp"));
        let text = serde_json::to_string(&pointer).context("cannot encode the pointer")?;
        fs::write(&tmp, text)
            .and_then(|()| fs::rename(&tmp, &path))
            .with_context(|| format!("cannot write {}", path.display()))?;
        remove_stale(dir);
        Ok(Published { path })
    }

    /// The pointer file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The nodes whose pointers are in `dir` and that still run: the process exists and the
/// socket is there. Sorted by data directory.
pub fn running(dir: &Path) -> Vec<Pointer> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<Pointer> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(PREFIX) && n.ends_with(SUFFIX))
        })
        .filter_map(|e| serde_json::from_slice::<Pointer>(&fs::read(e.path()).ok()?).ok())
        .filter(|p| alive(p.pid) && fs::symlink_metadata(&p.socket).is_ok())
        .collect();
    found.sort_by(|a, b| a.data_dir.cmp(&b.data_dir));
    found
}

/// Removes the pointers of nodes that died without removing theirs (killed, power cut), so
/// that they do not pile up. Best effort.
fn remove_stale(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name();
        let pid = name.to_str().and_then(|n| {
            n.strip_prefix(PREFIX)?
                .strip_suffix(SUFFIX)?
                .parse::<u32>()
                .ok()
        });
        if pid.is_some_and(|pid| !alive(pid)) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Whether a process with this id exists (it may belong to another user).
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks that the process exists; it has no other effect.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().kind() == ErrorKind::PermissionDenied
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_follows_the_runtime_dir_else_run_for_root() {
        let env = |v: Option<&'static str>| {
            move |name: &str| {
                (name == "XDG_RUNTIME_DIR")
                    .then_some(v)
                    .flatten()
                    .map(str::to_string)
            }
        };
        assert_eq!(
            dir(&env(Some("/run/user/1000")), false),
            Some(PathBuf::from("/run/user/1000/basis"))
        );
        assert_eq!(dir(&env(None), true), Some(PathBuf::from("/run/basis")));
        assert_eq!(dir(&env(Some("")), false), None);
        assert_eq!(dir(&env(None), false), None);
    }

    #[test]
    fn a_pointer_is_found_while_its_node_runs_and_gone_after() {
        let tmp = tempfile::tempdir().unwrap();
        let runtime = tmp.path().join("rt/basis");
        let data = tmp.path().join("data");
        fs::create_dir(&data).unwrap();
        let socket = data.join("control.sock");
        fs::write(&socket, b"").unwrap();

        let published = Published::write(&runtime, &data, &socket).unwrap();
        assert_eq!(
            running(&runtime),
            [Pointer {
                pid: std::process::id(),
                data_dir: data.clone(),
                socket: socket.clone(),
            }]
        );
        // A pointer of a process that is gone, and one whose socket is gone, are skipped.
        let dead = Pointer {
            pid: u32::MAX,
            data_dir: data.clone(),
            socket: socket.clone(),
        };
        fs::write(
            runtime.join("node-4294967295.json"),
            serde_json::to_string(&dead).unwrap(),
        )
        .unwrap();
        fs::write(runtime.join("node-1.json"), b"not json").unwrap();
        assert_eq!(running(&runtime).len(), 1);
        // The next node to start removes the pointer of the dead one.
        let _again = Published::write(&runtime, &data, &socket).unwrap();
        assert!(!runtime.join("node-4294967295.json").exists());
        assert!(runtime.join("node-1.json").exists(), "pid 1 is alive");
        fs::remove_file(&socket).unwrap();
        assert!(running(&runtime).is_empty());

        let path = published.path().to_path_buf();
        drop(published);
        assert!(!path.exists());
    }
}
