//! OpenPGP trust for Debian's archive: loads a keyring (binary or armored; the system's
//! `debian-archive-keyring.gpg`, a `--keyring` file, or the copy embedded in the binary) and
//! checks a cleartext-signed `InRelease` against it (RFC 9580 §7, the format apt reads).
//!
//! Pure computation over bytes; no privileges. Only the signed text is ever returned, so a
//! caller cannot parse bytes the signature does not cover.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use pgp::composed::{CleartextSignedMessage, Deserializable, SignedPublicKey};
use pgp::types::KeyDetails;

/// The system's copy, preferred when present (kept fresh by the distribution).
pub const SYSTEM_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// Debian's archive keyring, from the `debian-archive-keyring` package (see
/// keys/README.md for its version and how to refresh it).
pub const EMBEDDED_KEYRING: &[u8] = include_bytes!("../../keys/debian-archive-keyring.gpg");

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read the keyring {path}: {err}: pass a readable one with --keyring FILE")]
    ReadKeyring { path: PathBuf, err: std::io::Error },
    #[error(
        "the keyring {origin} holds no usable OpenPGP public key: pass Debian's archive keyring with --keyring FILE"
    )]
    EmptyKeyring { origin: String },
    #[error(
        "{what} is not a cleartext-signed OpenPGP message ({reason}): the mirror served something else; check the mirror URL"
    )]
    NotSigned { what: String, reason: String },
    #[error(
        "{what}: bad signature: no signature on it verifies with a key of {keyring} (signed by key id {issuers}); the file was altered or signed by a key you do not trust: nothing was stored"
    )]
    BadSignature {
        what: String,
        keyring: String,
        issuers: String,
    },
}

/// A set of trusted public keys and where they came from.
pub struct Keyring {
    pub origin: String,
    keys: Vec<SignedPublicKey>,
}

impl Keyring {
    /// `--keyring FILE` if given; else the system's keyring when present; else the embedded
    /// copy.
    pub fn load(explicit: Option<&Path>) -> Result<Keyring, VerifyError> {
        let path = match explicit {
            Some(p) => Some(p.to_owned()),
            None => Some(PathBuf::from(SYSTEM_KEYRING)).filter(|p| p.exists()),
        };
        match path {
            Some(p) => {
                let bytes = std::fs::read(&p).map_err(|err| VerifyError::ReadKeyring {
                    path: p.clone(),
                    err,
                })?;
                Keyring::from_bytes(&bytes, &p.display().to_string())
            }
            None => Keyring::from_bytes(EMBEDDED_KEYRING, "the embedded Debian archive keyring"),
        }
    }

    /// Parses binary or ASCII-armored key material; keys that fail to parse are skipped.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Keyring, VerifyError> {
        let armored = bytes
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .is_some_and(|i| bytes[i..].starts_with(b"-----BEGIN PGP"));
        let keys: Vec<SignedPublicKey> = if armored {
            SignedPublicKey::from_armor_many(Cursor::new(bytes))
                .map(|(it, _)| it.filter_map(Result::ok).collect())
                .unwrap_or_default()
        } else {
            SignedPublicKey::from_bytes_many(Cursor::new(bytes))
                .map(|it| it.filter_map(Result::ok).collect())
                .unwrap_or_default()
        };
        if keys.is_empty() {
            return Err(VerifyError::EmptyKeyring {
                origin: origin.to_owned(),
            });
        }
        Ok(Keyring {
            origin: origin.to_owned(),
            keys,
        })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks a cleartext-signed message (`what` names it in errors) and returns the signed
    /// text with `\n` line ends, plus the fingerprint of the key that verified it. Primary
    /// keys and subkeys whose binding to their primary verifies are both accepted.
    pub fn verify_cleartext(
        &self,
        what: &str,
        text: &str,
    ) -> Result<(String, String), VerifyError> {
        let (msg, _) =
            CleartextSignedMessage::from_string(text).map_err(|e| VerifyError::NotSigned {
                what: what.to_owned(),
                reason: e.to_string(),
            })?;
        for key in &self.keys {
            if let Ok(_sig) = msg.verify(key) {
                return Ok((signed_text(&msg), key.fingerprint().to_string()));
            }
            for sub in &key.public_subkeys {
                if sub.verify_bindings(&key.primary_key).is_ok() && msg.verify(sub).is_ok() {
                    return Ok((signed_text(&msg), sub.fingerprint().to_string()));
                }
            }
        }
        let issuers: Vec<String> = msg
            .signatures()
            .iter()
            .flat_map(|s| s.issuer_key_id())
            .map(|id| format!("{id:?}"))
            .collect();
        Err(VerifyError::BadSignature {
            what: what.to_owned(),
            keyring: self.origin.clone(),
            issuers: if issuers.is_empty() {
                "unknown".into()
            } else {
                issuers.join(", ")
            },
        })
    }
}

fn signed_text(msg: &CleartextSignedMessage) -> String {
    msg.signed_text().replace("\r\n", "\n")
}

impl crate::error::Classify for VerifyError {
    /// A keyring the user named that cannot be used is bad input; a signature that does not
    /// verify is a failed fetch (nothing stored).
    fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            VerifyError::ReadKeyring { .. } | VerifyError::EmptyKeyring { .. } => {
                ErrorKind::BadInput
            }
            VerifyError::NotSigned { .. } | VerifyError::BadSignature { .. } => ErrorKind::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_keyring_parses() {
        let k = Keyring::from_bytes(EMBEDDED_KEYRING, "embedded").unwrap();
        assert!(
            k.len() >= 4,
            "debian's keyring has several keys, got {}",
            k.len()
        );
    }

    #[test]
    fn garbage_is_refused() {
        let k = Keyring::from_bytes(EMBEDDED_KEYRING, "embedded").unwrap();
        let e = k
            .verify_cleartext("InRelease", "Origin: Debian\n")
            .unwrap_err();
        assert!(matches!(e, VerifyError::NotSigned { .. }), "{e}");
        assert!(Keyring::from_bytes(b"not a key", "x").is_err());
    }
}
