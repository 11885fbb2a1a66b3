//! Server secrets: where the pepper comes from, and key files under `data/keys/`.
//!
//! Precedence: `secrets.pepper` in config → `secrets.pepper_file` → the systemd credential
//! `pepper` (`$CREDENTIALS_DIRECTORY/pepper`, from `LoadCredential=`) → `<data_dir>/keys/pepper`,
//! generated on first start with mode 0600 in a 0700 directory. Values are base64url.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::Settings;
use crate::crypto::{self, Pepper};
use crate::error::{Error, Result};

/// The key directory.
pub fn keys_dir(settings: &Settings) -> PathBuf {
    settings.data_dir.join("keys")
}

fn parse_pepper(text: &str, source: &str) -> Result<Pepper> {
    let bytes = crypto::unb64(text)
        .ok_or_else(|| Error::internal(format!("the pepper from {source} is not base64url")))?;
    Pepper::from_bytes(bytes).map_err(|_| {
        Error::internal(format!(
            "the pepper from {source} must decode to 16–64 bytes"
        ))
    })
}

/// Reads a secret file, refusing one that others can read.
pub fn read_secret_file(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::internal(format!("cannot read {}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 && std::env::var_os("CREDENTIALS_DIRECTORY").is_none()
    {
        tracing::warn!(path = %path.display(), "secret file is readable by group or others; chmod 600 it");
    }
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| Error::internal(format!("cannot read {}: {e}", path.display())))
}

/// Writes a new secret file with mode 0600 (failing if it exists).
pub fn write_secret_file(path: &Path, contents: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::internal(format!("cannot create {}: {e}", dir.display())))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::internal(format!("cannot create {}: {e}", path.display())))?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::internal(format!("cannot write {}: {e}", path.display())))
}

/// Loads the pepper from the first source that has one, generating the key file if none does.
pub fn load_pepper(settings: &Settings) -> Result<Pepper> {
    if let Some(p) = &settings.secrets.pepper {
        return parse_pepper(p.expose(), "secrets.pepper");
    }
    if let Some(f) = &settings.secrets.pepper_file {
        return parse_pepper(&read_secret_file(f)?, "secrets.pepper_file");
    }
    if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        let p = Path::new(&dir).join("pepper");
        if p.is_file() {
            return parse_pepper(&read_secret_file(&p)?, "the systemd credential `pepper`");
        }
    }
    let path = keys_dir(settings).join("pepper");
    if path.is_file() {
        return parse_pepper(&read_secret_file(&path)?, "data/keys/pepper");
    }
    let pepper = Pepper::generate();
    if let Err(e) = write_secret_file(&path, crypto::b64(pepper.bytes()).as_bytes()) {
        // Another process may have created it first: use theirs.
        if path.is_file() {
            return parse_pepper(&read_secret_file(&path)?, "data/keys/pepper");
        }
        return Err(e);
    }
    tracing::info!(path = %path.display(), "generated a new pepper");
    Ok(pepper)
}
