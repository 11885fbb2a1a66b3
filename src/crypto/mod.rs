//! The only code that touches libsodium (through `sodiumoxide`), HKDF and the Noise library.
//!
//! Everything cryptographic the rest of Gatehouse needs goes through here, so the binding can
//! be swapped in one place: random tokens, the keyed BLAKE2b-256 hash that stores every secret
//! credential, constant-time comparison, Argon2id password hashes and AEAD sealing.

pub mod handshake;
pub mod jwt;
pub mod password;
pub mod tokens;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sodiumoxide::crypto::aead::xchacha20poly1305_ietf as aead;
use sodiumoxide::crypto::generichash;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Initialises libsodium; call once before anything else here.
pub fn init() -> Result<()> {
    sodiumoxide::init().map_err(|()| Error::internal("libsodium failed to initialise"))
}

/// `n` random bytes from the OS CSPRNG.
pub fn random_bytes(n: usize) -> Vec<u8> {
    sodiumoxide::randombytes::randombytes(n)
}

/// The base62 alphabet used by every token format.
pub const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `n` uniformly random base62 characters.
pub fn random_base62(n: usize) -> String {
    (0..n)
        .map(|_| {
            let i = sodiumoxide::randombytes::randombytes_uniform(62) as usize;
            char::from(BASE62[i])
        })
        .collect()
}

/// Constant-time equality of two byte strings.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && sodiumoxide::utils::memcmp(a, b)
}

/// base64url without padding.
pub fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Decodes base64url without padding.
pub fn unb64(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim()).ok()
}

/// The server pepper: the key of every keyed credential hash. Never printed.
#[derive(Clone)]
pub struct Pepper(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Pepper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pepper(***SECRET***)")
    }
}

impl Pepper {
    /// Length of a freshly generated pepper.
    pub const LEN: usize = 32;

    /// Wraps key bytes (16 to 64 bytes, BLAKE2b's key range).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Pepper> {
        if !(16..=64).contains(&bytes.len()) {
            return Err(Error::internal("pepper must be 16 to 64 bytes"));
        }
        Ok(Pepper(Zeroizing::new(bytes)))
    }

    /// A new random pepper.
    pub fn generate() -> Pepper {
        Pepper(Zeroizing::new(random_bytes(Self::LEN)))
    }

    /// The raw key, for writing the key file.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Keyed BLAKE2b-256 of `data`: how every secret credential is stored and looked up.
    pub fn hash(&self, data: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        if let Ok(d) = generichash::hash(data, Some(32), Some(&self.0)) {
            out.copy_from_slice(d.as_ref());
        }
        out
    }

    /// A sub-key for a purpose, derived from the pepper (BLAKE2b keyed by the pepper).
    pub fn derive(&self, purpose: &str) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.hash(format!("gatehouse derive v1:{purpose}").as_bytes()))
    }
}

/// XChaCha20-Poly1305 sealing with associated data: output is nonce ‖ ciphertext ‖ tag.
pub fn seal(key: &[u8; 32], plaintext: &[u8], ad: &[u8]) -> Vec<u8> {
    let k = aead::Key(*key);
    let n = aead::gen_nonce();
    let mut out = n.0.to_vec();
    out.extend(aead::seal(plaintext, Some(ad), &n, &k));
    out
}

/// Opens what [`seal`] produced; `None` if the key, data or associated data are wrong.
pub fn open(key: &[u8; 32], sealed: &[u8], ad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < aead::NONCEBYTES + aead::TAGBYTES {
        return None;
    }
    let (n, c) = sealed.split_at(aead::NONCEBYTES);
    let n = aead::Nonce::from_slice(n)?;
    let k = aead::Key(*key);
    aead::open(c, Some(ad), &n, &k).ok().map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_roundtrip_and_ad_binding() {
        init().unwrap();
        let key = [7u8; 32];
        let s = seal(&key, b"hello", b"ad");
        assert_eq!(&open(&key, &s, b"ad").unwrap()[..], b"hello");
        assert!(open(&key, &s, b"other").is_none());
        assert!(open(&[8u8; 32], &s, b"ad").is_none());
    }

    #[test]
    fn pepper_debug_hides_value_and_hash_is_keyed() {
        init().unwrap();
        let p = Pepper::generate();
        assert!(!format!("{p:?}").contains(&format!("{:?}", p.bytes())));
        let q = Pepper::generate();
        assert_ne!(p.hash(b"x"), q.hash(b"x"));
        assert_eq!(p.hash(b"x"), p.hash(b"x"));
    }
}
