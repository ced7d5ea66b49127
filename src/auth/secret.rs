//! The JWT signing secret: configured, or kept in the data directory.

use std::path::Path;
use std::sync::Arc;

use crate::sys::random_hex;

/// 256 random bits as hex: a fresh JWT secret.
pub fn random_secret() -> String {
    random_hex(32)
}

/// The JWT secret: `JWT_SECRET` if set, else the one kept in `DATA_DIR/jwt_secret`, created
/// (mode 0600) at first start so tokens survive restarts without any configuration.
///
/// # Errors
/// The data dir cannot be read or written.
pub fn load_secret(configured: Option<&str>, data_dir: &Path) -> std::io::Result<Arc<[u8]>> {
    if let Some(secret) = configured.filter(|s| !s.is_empty()) {
        return Ok(secret.as_bytes().into());
    }
    let path = data_dir.join("jwt_secret");
    match std::fs::read_to_string(&path) {
        Ok(secret) if !secret.trim().is_empty() => return Ok(secret.trim().as_bytes().into()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let secret = random_secret();
    write_private(&path, &secret)?;
    tracing::info!(path = %path.display(), "generated a JWT secret (set JWT_SECRET to manage it yourself)");
    Ok(secret.as_bytes().into())
}

/// Writes `contents` to `path`, readable by this user only (0600), and syncs it.
///
/// # Errors
/// Whatever creating, writing or syncing the file fails with.
pub(crate) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}
