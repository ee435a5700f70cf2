//! First-boot provisioning: a field team writes `basis.toml` onto the SD card's boot partition
//! from a laptop; at the next `basis run` the file is checked, moved into the drop-in directory
//! as `00-first-boot.toml` and removed from the boot partition, before the configuration is
//! loaded.
//!
//! The boot partition is FAT: anyone on the board can read it and it cannot keep file modes,
//! so a file that may hold the federation secret must not stay there. A file with an error
//! stops the node instead of being skipped: a typo in a secret must not go unnoticed.
//!
//! Under systemd the node runs as an unprivileged user that may neither remove files from the
//! boot partition nor write `/etc/basis/conf.d`; the unit therefore runs `basis provision`
//! first, as root (import, then exit without starting the node).

use std::ffi::OsString;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::cli::NodeArgs;
use crate::{logging, settings};

/// Where a team puts the file: the boot partition as Raspberry Pi OS (bookworm and newer)
/// mounts it.
pub const DEFAULT_FIRST_BOOT_FILE: &str = "/boot/firmware/basis.toml";
/// Environment variable naming another first-boot file; set and empty turns the import off.
pub const FIRST_BOOT_FILE_ENV: &str = "BASIS_FIRST_BOOT_FILE";
/// Name of the imported file in the drop-in directory: first in name order, so board files
/// and later drop-ins can still refine it.
pub const INSTALLED_NAME: &str = "00-first-boot.toml";
/// Suffix given to a boot-partition file that was imported but could not be removed.
pub const IMPORTED_SUFFIX: &str = ".imported";

/// What became of the file on the boot partition after its import.
#[derive(Debug)]
pub enum BootFileFate {
    /// Removed, as intended.
    Removed,
    /// It could not be removed (the error) and was renamed to the path given.
    Renamed(io::Error, PathBuf),
    /// It could neither be removed (first error) nor renamed (second error).
    Left(io::Error, io::Error),
}

/// A completed import.
#[derive(Debug)]
pub struct Imported {
    /// The file on the boot partition.
    pub from: PathBuf,
    /// The drop-in it became.
    pub to: PathBuf,
    /// Whether an earlier import was replaced.
    pub replaced: bool,
    /// What became of `from`.
    pub fate: BootFileFate,
}

/// Runs at the start of `basis run` and as `basis provision`, before the configuration is
/// loaded: imports the first-boot file into the drop-in directory the flags select, and logs
/// what happened.
pub fn first_boot(global: &NodeArgs) -> Result<()> {
    let sources = settings::sources(global);
    // A main file named by --config that is missing is an error here too, as it is for
    // `basis config check` and `basis run`: nothing is imported beside a file that is not
    // there (a typo in the path would put the import where no node reads it).
    sources.check_main()?;
    let Some(boot_file) = boot_file_from(std::env::var_os(FIRST_BOOT_FILE_ENV)) else {
        return Ok(());
    };
    if let Some(imported) = import(&boot_file, &sources.conf_d_dir())? {
        // The logger is not set up yet at this point; set it up at the level the
        // configuration (now including the imported file) asks for.
        let level = basis_config::load(&sources)
            .map(|loaded| loaded.config.log.level)
            .unwrap_or(basis_config::LogLevel::Info);
        logging::init(level);
        report(&imported);
    }
    Ok(())
}

/// The first-boot file named by the environment variable's value: the default when unset,
/// none when set and empty.
fn boot_file_from(value: Option<OsString>) -> Option<PathBuf> {
    match value {
        None => Some(PathBuf::from(DEFAULT_FIRST_BOOT_FILE)),
        Some(v) if v.is_empty() => None,
        Some(v) => Some(PathBuf::from(v)),
    }
}

/// Logs an import; never the file's contents, which may hold a secret.
fn report(imported: &Imported) {
    let Imported {
        from,
        to,
        replaced,
        fate,
    } = imported;
    let earlier = if *replaced {
        " (replacing the earlier import)"
    } else {
        ""
    };
    log::info!(
        "first boot: imported {} as {}{earlier}",
        from.display(),
        to.display()
    );
    match fate {
        BootFileFate::Removed => log::info!(
            "first boot: removed {} (the boot partition cannot keep it private)",
            from.display()
        ),
        BootFileFate::Renamed(err, renamed) => log::warn!(
            "first boot: cannot remove {} ({err}); renamed it to {}, delete it by hand: the boot partition cannot keep it private",
            from.display(),
            renamed.display()
        ),
        BootFileFate::Left(remove, rename) => log::warn!(
            "first boot: cannot remove {} ({remove}) nor rename it ({rename}); it will be imported again at every start until it is deleted by hand",
            from.display()
        ),
    }
}

/// Imports `boot_file` into `conf_d` when it exists: checks it, installs it atomically as
/// [`INSTALLED_NAME`] and removes (else renames) the original. `Ok(None)` when there is no
/// such file. A file with an error is left where it is and the error names it.
pub fn import(boot_file: &Path, conf_d: &Path) -> Result<Option<Imported>> {
    match fs::symlink_metadata(boot_file) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "cannot look for the first-boot file {}",
                    boot_file.display()
                )
            });
        }
    }
    let text = fs::read_to_string(boot_file)
        .with_context(|| format!("cannot read the first-boot file {}", boot_file.display()))?;
    // The bytes checked are the bytes installed: no second read in between.
    basis_config::parse_str(&text, &boot_file.display().to_string()).with_context(|| {
        format!(
            "the first-boot file {} has an error; fix it (or remove it) and start again; nothing was imported",
            boot_file.display()
        )
    })?;
    ensure_dir(conf_d)?;
    let to = conf_d.join(INSTALLED_NAME);
    let replaced = fs::symlink_metadata(&to).is_ok();
    install(text.as_bytes(), conf_d, &to)?;
    let fate = dispose(boot_file, |p| fs::remove_file(p), |a, b| fs::rename(a, b));
    Ok(Some(Imported {
        from: boot_file.to_path_buf(),
        to,
        replaced,
        fate,
    }))
}

/// Creates the drop-in directory (mode 0755) when it is missing.
fn ensure_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .with_context(|| format!("cannot create the drop-in directory {}", dir.display()))?;
    // The umask (0077 under the unit) must not make it unreadable for the node's user.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot set the mode of {}", dir.display()))
}

/// Writes `bytes` to `to` atomically and durably: a temporary file in the same directory,
/// fsync, rename, fsync of the directory. A crash leaves either the old file or the new one.
fn install(bytes: &[u8], dir: &Path, to: &Path) -> Result<()> {
    let tmp = dir.join(format!(".{INSTALLED_NAME}.tmp"));
    let result = write_new(bytes, dir, &tmp).and_then(|()| {
        fs::rename(&tmp, to).with_context(|| format!("cannot rename {} into place", tmp.display()))
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync the directory {}", dir.display()))
}

/// Creates `tmp` afresh with `bytes`, private to its owner (see [`file_mode`]), synced.
fn write_new(bytes: &[u8], dir: &Path, tmp: &Path) -> Result<()> {
    // A leftover of an interrupted import would keep its old owner and mode: start afresh.
    match fs::remove_file(tmp) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("cannot remove {}", tmp.display()));
        }
        _ => {}
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    let dir_gid = fs::metadata(dir)
        .with_context(|| format!("cannot stat {}", dir.display()))?
        .gid();
    // SAFETY: getegid has no preconditions and cannot fail.
    let egid = unsafe { libc::getegid() };
    // Best effort: without the group, the file stays private to its owner (0600), which is
    // right whenever the owner is the one who runs the node.
    let mode = match std::os::unix::fs::fchown(&file, None, Some(dir_gid)) {
        Ok(()) => file_mode(dir_gid, egid),
        Err(_) => 0o600,
    };
    file.set_permissions(fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))
}

/// Mode of the installed file. It may hold the federation secret, so it is private to its
/// owner (0600); when the drop-in directory belongs to another group than the importing
/// process's (the unit imports as root into `/etc/basis/conf.d`, which is `root:basis`), that
/// group may read it too (0640), so that the node's user can load it.
fn file_mode(dir_gid: u32, egid: u32) -> u32 {
    if dir_gid == egid { 0o600 } else { 0o640 }
}

/// Removes the boot-partition file; if that fails, renames it to `<name>.imported` so that it
/// is not imported again at every start.
fn dispose(
    path: &Path,
    remove: impl FnOnce(&Path) -> io::Result<()>,
    rename: impl FnOnce(&Path, &Path) -> io::Result<()>,
) -> BootFileFate {
    let fate = match remove(path) {
        Ok(()) => BootFileFate::Removed,
        Err(remove_err) => {
            let mut name = path.as_os_str().to_owned();
            name.push(IMPORTED_SUFFIX);
            let renamed = PathBuf::from(name);
            match rename(path, &renamed) {
                Ok(()) => BootFileFate::Renamed(remove_err, renamed),
                Err(rename_err) => BootFileFate::Left(remove_err, rename_err),
            }
        }
    };
    // Best effort: make the removal itself survive a power cut.
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let _ = File::open(parent).and_then(|d| d.sync_all());
    }
    fate
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "# laptop-made\n[node]\nname = \"field-kit-7\"\n";

    struct Fixture {
        _tmp: tempfile::TempDir,
        boot: PathBuf,
        conf_d: PathBuf,
    }

    fn fixture(boot_text: Option<&str>) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("boot")).unwrap();
        let boot = tmp.path().join("boot/basis.toml");
        if let Some(text) = boot_text {
            fs::write(&boot, text).unwrap();
        }
        let conf_d = tmp.path().join("etc/basis/conf.d");
        Fixture {
            _tmp: tmp,
            boot,
            conf_d,
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn no_file_means_nothing_to_do() {
        let fx = fixture(None);
        assert!(import(&fx.boot, &fx.conf_d).unwrap().is_none());
        assert!(!fx.conf_d.exists(), "conf.d made for nothing");
    }

    #[test]
    fn valid_file_is_installed_privately_and_removed() {
        let fx = fixture(Some(VALID));
        let imported = import(&fx.boot, &fx.conf_d).unwrap().unwrap();
        let to = fx.conf_d.join(INSTALLED_NAME);
        assert_eq!(imported.to, to);
        assert!(!imported.replaced);
        assert!(
            matches!(imported.fate, BootFileFate::Removed),
            "{imported:?}"
        );
        assert_eq!(fs::read_to_string(&to).unwrap(), VALID);
        // The temporary directory has this process's group: private to the owner.
        assert_eq!(mode(&to), 0o600);
        assert_eq!(mode(&fx.conf_d), 0o755);
        assert!(!fx.boot.exists(), "the boot-partition file is still there");
        assert_eq!(names(&fx.conf_d), [INSTALLED_NAME], "leftovers in conf.d");
        assert_eq!(names(fx.boot.parent().unwrap()), Vec::<String>::new());
        // The installed file loads as a drop-in.
        let config = basis_config::check_file(&to).unwrap();
        assert_eq!(config.node.name, "field-kit-7");
    }

    #[test]
    fn invalid_file_is_refused_and_left_in_place() {
        let text = "[node]\nname = \"x\"\n[store]\nquota_mib = \"lots\"\n";
        let fx = fixture(Some(text));
        let err = import(&fx.boot, &fx.conf_d).unwrap_err();
        let message = format!("{err:#}");
        let at = format!("{}:4:13: store.quota_mib: invalid type", fx.boot.display());
        assert!(message.contains(&at), "{message}");
        assert!(message.contains("first-boot file"), "{message}");
        assert_eq!(fs::read_to_string(&fx.boot).unwrap(), text);
        assert!(!fx.conf_d.exists(), "conf.d touched by a refused import");
        let config_error = err.downcast_ref::<basis_config::ConfigError>().unwrap();
        assert_eq!(config_error.field.as_deref(), Some("store.quota_mib"));
    }

    #[test]
    fn unknown_field_and_broken_syntax_are_refused() {
        for text in ["[node]\nnmae = \"x\"\n", "[node\n", "\u{0}\u{1}"] {
            let fx = fixture(Some(text));
            let err = import(&fx.boot, &fx.conf_d).unwrap_err();
            let message = format!("{err:#}");
            assert!(
                message.contains(&format!("{}:", fx.boot.display())),
                "{message}"
            );
            assert!(fx.boot.exists());
        }
    }

    #[test]
    fn unreadable_file_is_refused() {
        let fx = fixture(None);
        fs::write(&fx.boot, [0xff, 0xfe, b'[']).unwrap();
        let err = import(&fx.boot, &fx.conf_d).unwrap_err();
        assert!(
            format!("{err:#}").contains("cannot read the first-boot file"),
            "{err:#}"
        );
        assert!(fx.boot.exists());
    }

    #[test]
    fn later_import_replaces_the_earlier_one_and_leftovers() {
        let fx = fixture(Some(VALID));
        fs::create_dir_all(&fx.conf_d).unwrap();
        fs::set_permissions(&fx.conf_d, fs::Permissions::from_mode(0o750)).unwrap();
        let to = fx.conf_d.join(INSTALLED_NAME);
        fs::write(&to, "[node]\nname = \"old\"\n").unwrap();
        let tmp = fx.conf_d.join(format!(".{INSTALLED_NAME}.tmp"));
        fs::write(&tmp, "half-written").unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(fx.conf_d.join("10-board.toml"), "[store]\nreaders = 1\n").unwrap();

        let imported = import(&fx.boot, &fx.conf_d).unwrap().unwrap();
        assert!(imported.replaced);
        assert_eq!(fs::read_to_string(&to).unwrap(), VALID);
        assert_eq!(mode(&to), 0o600);
        // An existing directory keeps its mode; other drop-ins are left alone.
        assert_eq!(mode(&fx.conf_d), 0o750);
        assert_eq!(names(&fx.conf_d), [INSTALLED_NAME, "10-board.toml"]);
    }

    #[test]
    fn a_boot_file_that_cannot_be_removed_is_renamed_or_reported() {
        let fx = fixture(Some(VALID));
        let denied = || io::Error::from(ErrorKind::PermissionDenied);

        let fate = dispose(&fx.boot, |_| Err(denied()), |a, b| fs::rename(a, b));
        let renamed = fx.boot.with_file_name("basis.toml.imported");
        match fate {
            BootFileFate::Renamed(e, path) => {
                assert_eq!(e.kind(), ErrorKind::PermissionDenied);
                assert_eq!(path, renamed);
            }
            other => panic!("{other:?}"),
        }
        assert!(renamed.exists() && !fx.boot.exists());

        fs::write(&fx.boot, VALID).unwrap();
        let fate = dispose(&fx.boot, |_| Err(denied()), |_, _| Err(denied()));
        assert!(matches!(fate, BootFileFate::Left(_, _)), "{fate:?}");
        assert!(fx.boot.exists());
    }

    #[test]
    fn group_of_another_directory_may_read() {
        assert_eq!(file_mode(1000, 1000), 0o600);
        assert_eq!(file_mode(998, 0), 0o640);

        // As root (the unit's import step), a directory of another group gets its group.
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let fx = fixture(Some(VALID));
        fs::create_dir_all(&fx.conf_d).unwrap();
        let gid = 54_321;
        std::os::unix::fs::chown(&fx.conf_d, None, Some(gid)).unwrap();
        let imported = import(&fx.boot, &fx.conf_d).unwrap().unwrap();
        let meta = fs::metadata(&imported.to).unwrap();
        assert_eq!((meta.gid(), meta.mode() & 0o7777), (gid, 0o640));
    }

    #[test]
    fn environment_names_the_file_or_turns_the_import_off() {
        assert_eq!(
            boot_file_from(None),
            Some(PathBuf::from("/boot/firmware/basis.toml"))
        );
        assert_eq!(boot_file_from(Some("".into())), None);
        assert_eq!(
            boot_file_from(Some("/media/sd/basis.toml".into())),
            Some(PathBuf::from("/media/sd/basis.toml"))
        );
    }
}
