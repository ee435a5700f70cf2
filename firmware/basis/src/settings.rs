//! Turns the global flags and the environment into the configuration in effect.

use std::path::PathBuf;

use anyhow::{Result, bail};
use basis_config::{Config, Sources};

use crate::cli::NodeArgs;

/// The configuration in effect and the paths derived from it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The merged configuration.
    pub config: Config,
    /// Configuration files that were read, in order.
    pub files: Vec<PathBuf>,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The control socket.
    pub socket: PathBuf,
}

impl Settings {
    /// The node key file.
    pub fn key_file(&self) -> PathBuf {
        self.data_dir.join("node.key")
    }

    /// The database file.
    pub fn db_file(&self) -> PathBuf {
        self.data_dir.join("basis.db")
    }
}

/// The sources named by the flags (and `BASIS_CONFIG`).
pub fn sources(global: &NodeArgs) -> Sources {
    let mut sources = Sources::default();
    if let Some(main) = &global.config {
        sources.main = main.clone();
        sources.main_required = true;
    }
    sources.conf_d = global.conf_d.clone();
    sources.env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    sources.overrides = global.set.clone();
    if let Some(dir) = &global.data_dir {
        sources
            .overrides
            .push(("node.data_dir".into(), dir.display().to_string()));
    }
    sources
}

/// Loads the layered configuration and resolves the data directory and control socket.
pub fn load(global: &NodeArgs) -> Result<Settings> {
    let loaded = basis_config::load(&sources(global))?;
    let is_root = is_root();
    let data_dir = loaded
        .config
        .resolve_data_dir(&|name| std::env::var(name).ok(), is_root);
    let socket = loaded.config.control_socket(&data_dir);
    Ok(Settings {
        config: loaded.config,
        files: loaded.files,
        data_dir,
        socket,
    })
}

/// Like [`load`], for an admin command that works with a running node (`status`, `metrics`,
/// `peers`, `dev append`, `store check`, `id`): when no flag or `BASIS_CONFIG` names the
/// configuration or the data directory and no node's socket is at the default place, the
/// node found through its pointer file (see [`crate::running`]) is used; several such nodes
/// are an error that lists the --data-dir of each.
pub fn load_for_running(global: &NodeArgs) -> Result<Settings> {
    let mut settings = load(global)?;
    let named = global.config.is_some()
        || global.conf_d.is_some()
        || global.data_dir.is_some()
        || !global.set.is_empty();
    if named || std::fs::symlink_metadata(&settings.socket).is_ok() {
        return Ok(settings);
    }
    let Some(dir) = crate::running::dir(&|name| std::env::var(name).ok(), is_root()) else {
        return Ok(settings);
    };
    match crate::running::running(&dir).as_slice() {
        [] => {}
        [only] => {
            settings.data_dir = only.data_dir.clone();
            settings.socket = only.socket.clone();
        }
        several => {
            let list: Vec<String> = several
                .iter()
                .map(|p| format!("--data-dir {}", p.data_dir.display()))
                .collect();
            bail!(
                "no node runs with the data directory {}, but {} others do; say which with one of: {}",
                settings.data_dir.display(),
                several.len(),
                list.join(", ")
            );
        }
    }
    Ok(settings)
}

/// Whether this process runs as root (by its effective user id).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
