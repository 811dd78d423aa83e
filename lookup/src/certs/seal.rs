//! Private keys at rest: AES-256-GCM under the key-encryption key (KEK)
//! from `--kek-file`, with what the key belongs to as associated data, so a
//! sealed value moved to another row does not open.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, Key, KeyInit, Nonce};
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use base64::Engine;
use std::fmt;
use std::path::Path;

/// The version tag of a sealed value: `v1.` then base64(nonce || ciphertext).
const PREFIX: &str = "v1.";
const NONCE: usize = 12;

#[derive(Clone)]
pub struct Kek(Aes256Gcm);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealError {
    /// The KEK file is missing, unreadable or not 64 hex digits.
    Kek(String),
    /// The value is not one this code sealed, or not under this KEK and
    /// associated data.
    Open,
    Random,
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealError::Kek(m) => f.write_str(m),
            SealError::Open => f.write_str("a sealed key does not open under this key-encryption key"),
            SealError::Random => f.write_str("no randomness for a nonce"),
        }
    }
}

impl std::error::Error for SealError {}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kek(..)")
    }
}

impl Kek {
    /// 32 bytes written as 64 hex digits (`openssl rand -hex 32`);
    /// surrounding whitespace ignored.
    pub fn from_file(path: &Path) -> Result<Kek, SealError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| SealError::Kek(format!("--kek-file {}: {e}", path.display())))?;
        Kek::from_hex(text.trim()).map_err(|m| SealError::Kek(format!("--kek-file {}: {m}", path.display())))
    }

    pub fn from_hex(hex: &str) -> Result<Kek, String> {
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("must hold 32 bytes as 64 hex digits (openssl rand -hex 32)".into());
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(Kek(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key))))
    }

    pub fn seal(&self, plaintext: &[u8], aad: &str) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE];
        getrandom::fill(&mut nonce).map_err(|_| SealError::Random)?;
        let sealed = self
            .0
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: aad.as_bytes() })
            .map_err(|_| SealError::Open)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", B64.encode(out)))
    }

    pub fn open(&self, sealed: &str, aad: &str) -> Result<Vec<u8>, SealError> {
        let raw = sealed.strip_prefix(PREFIX).ok_or(SealError::Open)?;
        let bytes = B64.decode(raw).map_err(|_| SealError::Open)?;
        if bytes.len() < NONCE {
            return Err(SealError::Open);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE);
        self.0
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: aad.as_bytes() })
            .map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn seals_and_opens_only_with_its_key_and_subject() {
        let kek = Kek::from_hex(HEX).expect("kek");
        let sealed = kek.seal(b"-----BEGIN PRIVATE KEY-----", "cert:a").expect("seal");
        assert!(!sealed.contains("PRIVATE"));
        assert_eq!(kek.open(&sealed, "cert:a").expect("open"), b"-----BEGIN PRIVATE KEY-----");
        assert_eq!(kek.open(&sealed, "cert:b"), Err(SealError::Open));
        let other = Kek::from_hex(&HEX.replace("1f", "20")).expect("kek");
        assert_eq!(other.open(&sealed, "cert:a"), Err(SealError::Open));
        for junk in ["", "v1.", "v1.!!", "v2.AAAA", "v1.AAAA"] {
            assert_eq!(kek.open(junk, "cert:a"), Err(SealError::Open), "{junk}");
        }
    }

    #[test]
    fn refuses_a_bad_kek() {
        for bad in ["", "00", &HEX[..62], &HEX.replace('0', "g")] {
            assert!(Kek::from_hex(bad).is_err(), "{bad}");
        }
    }
}
