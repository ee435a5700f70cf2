//! Where the client keeps its files, and the user's key file with its passphrase.
//!
//! The folder (`--profile`, `$BASIS_CLIENT_DIR`, else `$XDG_CONFIG_HOME/basis/client` or
//! `~/.config/basis/client`) holds `user.key` (the user's secrets, encrypted with Argon2id and
//! XChaCha20-Poly1305), `contacts.json`, and `sessions/` (room keys, encrypted with a key
//! kept inside `user.key`). Everything is mode 0600 in a 0700 folder.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use basis_e2ee::keyfile::{self, KdfParams};
use basis_e2ee::{KeyFileError, UserSecrets};
use zeroize::Zeroizing;

/// The client's folder.
#[derive(Debug, Clone)]
pub struct ClientDir {
    path: PathBuf,
}

impl ClientDir {
    /// The folder to use: `flag` (from `--profile` or `$BASIS_CLIENT_DIR`), else the XDG
    /// location.
    pub fn resolve(flag: Option<&Path>) -> Result<ClientDir> {
        if let Some(p) = flag {
            return Ok(ClientDir { path: p.into() });
        }
        let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
            Some(x) => PathBuf::from(x),
            None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
                Some(h) => PathBuf::from(h).join(".config"),
                None => bail!("cannot tell where to keep the user key: set --profile DIR"),
            },
        };
        Ok(ClientDir {
            path: base.join("basis").join("client"),
        })
    }

    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The encrypted user key.
    pub fn key_file(&self) -> PathBuf {
        self.path.join("user.key")
    }

    /// A display name chosen while no node could be reached, published at the next
    /// command that reaches one.
    pub fn pending_name_file(&self) -> PathBuf {
        self.path.join("pending-name")
    }

    /// The contact list.
    pub fn contacts_file(&self) -> PathBuf {
        self.path.join("contacts.json")
    }

    /// Room key state, one file per room and direction.
    pub fn session_file(&self, room: &basis_core::RoomId, kind: &str) -> PathBuf {
        self.path.join("sessions").join(format!("{room}.{kind}"))
    }

    /// Creates the folder (and `sessions/`) with mode 0700 if missing.
    pub fn ensure(&self) -> Result<()> {
        for dir in [self.path.clone(), self.path.join("sessions")] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        Ok(())
    }
}

/// Writes a file atomically (temporary file, fsync, rename) with mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
    }
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// Where the passphrase comes from.
#[derive(Debug, Clone, Default)]
pub struct PassphraseSource {
    /// A file whose first line is the passphrase (`--passphrase-file`).
    pub file: Option<PathBuf>,
}

impl PassphraseSource {
    /// The passphrase: from the file, else `$BASIS_PASSPHRASE`, else asked on the terminal
    /// (twice when `confirm`).
    pub fn get(&self, prompt: &str, confirm: bool) -> Result<Zeroizing<String>> {
        if let Some(file) = &self.file {
            let text =
                Zeroizing::new(fs::read_to_string(file).with_context(|| {
                    format!("cannot read the passphrase file {}", file.display())
                })?);
            let line = text.lines().next().unwrap_or("").to_string();
            return non_empty(Zeroizing::new(line));
        }
        if let Ok(p) = std::env::var("BASIS_PASSPHRASE") {
            return non_empty(Zeroizing::new(p));
        }
        let first = Zeroizing::new(
            rpassword::prompt_password(prompt)
                .context("cannot ask for the passphrase (no terminal? use --passphrase-file or BASIS_PASSPHRASE)")?,
        );
        if confirm {
            let again = Zeroizing::new(rpassword::prompt_password("Repeat the passphrase: ")?);
            if *again != *first {
                bail!("the two passphrases differ; nothing was written");
            }
        }
        non_empty(first)
    }
}

fn non_empty(p: Zeroizing<String>) -> Result<Zeroizing<String>> {
    if p.is_empty() {
        bail!("the passphrase is empty");
    }
    Ok(p)
}

/// Key-derivation cost: `$BASIS_KDF=fast` picks a cheap setting for test scripts only.
pub fn kdf_params() -> KdfParams {
    match std::env::var("BASIS_KDF").as_deref() {
        Ok("fast") => KdfParams::INSECURE_FOR_TESTS,
        _ => KdfParams::RECOMMENDED,
    }
}

/// Reads and decrypts the user key.
pub fn load_secrets(dir: &ClientDir, pass: &PassphraseSource) -> Result<UserSecrets> {
    let path = dir.key_file();
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no user key in {}: make one with `basis user create` (or import one with `basis user import FILE`)",
            dir.path().display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let passphrase = pass.get("Passphrase of your user key: ", false)?;
    keyfile::decrypt(&text, passphrase.as_bytes()).map_err(|e| match e {
        KeyFileError::WrongPassphrase => {
            anyhow::anyhow!(
                "wrong passphrase for {} (or the file was altered)",
                path.display()
            )
        }
        other => anyhow::anyhow!("cannot read the user key {}: {other}", path.display()),
    })
}

/// Encrypts and writes the user key; refuses to replace an existing one.
pub fn save_secrets(dir: &ClientDir, secrets: &UserSecrets, passphrase: &str) -> Result<()> {
    dir.ensure()?;
    let path = dir.key_file();
    if path.exists() {
        bail!(
            "{} already holds a user key; it was left alone (use another --profile)",
            path.display()
        );
    }
    let text = keyfile::encrypt(secrets, passphrase.as_bytes(), kdf_params())
        .context("cannot encrypt the user key")?;
    write_private(&path, text.as_bytes())
}
