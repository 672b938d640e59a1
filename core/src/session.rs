//! Where the signed-in user's tokens live. The app decides ([`TokenStore`]: the Keychain on
//! iOS, the Keystore on Android); [`MemoryTokenStore`] and [`FileTokenStore`] serve tests and
//! the command-line walkthrough. Tokens never go into the database or a log.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A signed-in session: the user and the token pair the server issued.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// The signed-in user.
    pub user_id: Uuid,
    /// The short-lived access token (a JWT).
    pub access_token: String,
    /// The rotating refresh token; each use spends it.
    pub refresh_token: String,
}

impl fmt::Debug for Tokens {
    /// Never prints the tokens themselves.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

/// Keeps the session's tokens where the platform keeps secrets. Calls are short and
/// synchronous; a failure is reported as a message (no token in it).
pub trait TokenStore: Send + Sync {
    /// The stored tokens, if any.
    fn load(&self) -> Result<Option<Tokens>, String>;
    /// Replaces the stored tokens.
    fn save(&self, tokens: &Tokens) -> Result<(), String>;
    /// Forgets the tokens.
    fn clear(&self) -> Result<(), String>;
}

/// Tokens in memory only: gone when the process ends.
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    tokens: Mutex<Option<Tokens>>,
}

impl MemoryTokenStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl TokenStore for MemoryTokenStore {
    fn load(&self) -> Result<Option<Tokens>, String> {
        Ok(self
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone())
    }

    fn save(&self, tokens: &Tokens) -> Result<(), String> {
        *self.tokens.lock().unwrap_or_else(PoisonError::into_inner) = Some(tokens.clone());
        Ok(())
    }

    fn clear(&self) -> Result<(), String> {
        *self.tokens.lock().unwrap_or_else(PoisonError::into_inner) = None;
        Ok(())
    }
}

/// Tokens in a JSON file readable by the owner only (mode 0600 on Unix), replaced
/// atomically (written beside it, then renamed). For the command-line walkthrough and
/// tests, not for phones: apps keep tokens in the Keychain or Keystore.
#[derive(Debug, Clone)]
pub struct FileTokenStore {
    path: PathBuf,
}

impl FileTokenStore {
    /// Tokens kept at `path` (the directory must exist).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl TokenStore for FileTokenStore {
    fn load(&self) -> Result<Option<Tokens>, String> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|err| format!("the token file is unreadable: {err}")),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(format!("cannot read the token file: {}", err.kind())),
        }
    }

    fn save(&self, tokens: &Tokens) -> Result<(), String> {
        let json = serde_json::to_vec(tokens).map_err(|err| err.to_string())?;
        let temp = self.path.with_extension("tmp");
        write_private(&temp, &json)
            .and_then(|()| std::fs::rename(&temp, &self.path))
            .map_err(|err| format!("cannot write the token file: {}", err.kind()))
    }

    fn clear(&self) -> Result<(), String> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(format!("cannot remove the token file: {}", err.kind())),
        }
    }
}

/// Writes `bytes` to a new file only its owner can read, and syncs it.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens {
            user_id: Uuid::now_v7(),
            access_token: "access-secret".into(),
            refresh_token: "refresh-secret".into(),
        }
    }

    #[test]
    fn debug_output_never_shows_a_token() {
        let shown = format!("{:?}", tokens());
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn a_file_store_round_trips_and_clears() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileTokenStore::new(dir.path().join("tokens.json"));
        assert_eq!(store.load().unwrap(), None);
        let saved = tokens();
        store.save(&saved).unwrap();
        assert_eq!(store.load().unwrap(), Some(saved));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("tokens.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "readable by others: {mode:o}");
        }
        store.clear().unwrap();
        assert_eq!(store.load().unwrap(), None);
    }
}
