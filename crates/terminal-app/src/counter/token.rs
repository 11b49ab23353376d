//! The counter API's bearer token: a random secret in a local file that only the terminal's
//! user can read. The point-of-sale system on the same machine reads the file and sends the
//! token as `Authorization: Bearer <token>`; the server compares it in constant time.

use std::io::Write;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Bytes of randomness in a new token (64 hex digits).
const TOKEN_BYTES: usize = 32;
/// The shortest token accepted from an existing file.
pub const MIN_TOKEN_LEN: usize = 32;

/// Why the token file cannot be used.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Reading, creating or writing the file failed.
    #[error("token file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Others than the owner may read or write the file.
    #[error("token file {path} has mode {mode:03o}; only its owner may read it (chmod 600 {path})")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file's token is too short or not printable ASCII.
    #[error(
        "token file {path}: the token must be at least {MIN_TOKEN_LEN} printable ASCII \
         characters without spaces"
    )]
    Weak {
        /// The file.
        path: PathBuf,
    },
    /// No randomness for a new token.
    #[error("no random source for a new token")]
    Random,
}

/// The token, zeroized on drop; `Debug` does not show it.
pub struct ApiToken(Zeroizing<String>);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TokenError + '_ {
    move |source| TokenError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl ApiToken {
    /// A token from text (tests; the server takes it from [`ApiToken::load_or_create`]).
    pub fn new(text: &str) -> Option<Self> {
        let ok = text.len() >= MIN_TOKEN_LEN && text.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(Zeroizing::new(text.to_string())))
    }

    /// Read the token from `path`, or create the file with a new random token (mode 0600) if
    /// it does not exist. An existing file others may read is refused.
    pub fn load_or_create(path: &Path) -> Result<Self, TokenError> {
        match std::fs::symlink_metadata(path) {
            Ok(_) => Self::load(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create(path),
            Err(e) => Err(io(path)(e)),
        }
    }

    fn load(path: &Path) -> Result<Self, TokenError> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(io(path))?
                .permissions()
                .mode()
                & 0o777;
            if mode & 0o077 != 0 {
                return Err(TokenError::Permissions {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io(path))?);
        Self::new(text.trim()).ok_or_else(|| TokenError::Weak {
            path: path.to_path_buf(),
        })
    }

    fn create(path: &Path) -> Result<Self, TokenError> {
        let mut raw = Zeroizing::new([0u8; TOKEN_BYTES]);
        getrandom::fill(raw.as_mut()).map_err(|_| TokenError::Random)?;
        let text = Zeroizing::new(hex::encode(raw.as_ref()));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io(path))?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(io(path))?;
        file.write_all(text.as_bytes()).map_err(io(path))?;
        file.write_all(b"\n").map_err(io(path))?;
        file.sync_all().map_err(io(path))?;
        Ok(Self(text))
    }

    /// Whether `given` is the token, in time independent of where they differ.
    pub fn matches(&self, given: &str) -> bool {
        backend_sync::field_crypto::ct_eq(self.0.as_bytes(), given.as_bytes())
    }
}
