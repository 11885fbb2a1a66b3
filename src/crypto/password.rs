//! Argon2id password hashes (libsodium `crypto_pwhash_str`, `$argon2id$v=19$m=…,t=…,p=1$…`).
//!
//! Parameters come from config; [`needs_rehash`] tells when a stored hash was made with other
//! parameters so a successful login can upgrade it.

use sodiumoxide::crypto::pwhash::argon2id13 as argon;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Passes (`t`).
    pub ops: u64,
    /// Memory in KiB (`m`).
    pub mem_kib: u64,
}

/// Hashes a password. CPU- and memory-heavy: call it on the bounded hashing pool.
pub fn hash(password: &str, p: Params) -> Result<String> {
    let hp = argon::pwhash(
        password.as_bytes(),
        argon::OpsLimit(p.ops as usize),
        argon::MemLimit((p.mem_kib * 1024) as usize),
    )
    .map_err(|()| Error::internal("argon2id hashing failed (out of memory?)"))?;
    let bytes = hp.as_ref();
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8(bytes[..end].to_vec()).map_err(Error::internal)
}

/// Verifies a password against a stored hash, in libsodium's constant time.
pub fn verify(stored: &str, password: &str) -> bool {
    let mut buf = Zeroizing::new([0u8; argon::HASHEDPASSWORDBYTES]);
    let s = stored.as_bytes();
    if s.len() >= buf.len() {
        return false;
    }
    buf[..s.len()].copy_from_slice(s);
    match argon::HashedPassword::from_slice(&buf[..]) {
        Some(hp) => argon::pwhash_verify(&hp, password.as_bytes()),
        None => false,
    }
}

/// The parameters a stored hash was made with, read from its encoded form.
pub fn params_of(stored: &str) -> Option<Params> {
    let mut parts = stored.split('$');
    let _ = parts.next()?;
    if parts.next()? != "argon2id" {
        return None;
    }
    let _version = parts.next()?;
    let mut ops = None;
    let mut mem = None;
    for kv in parts.next()?.split(',') {
        match kv.split_once('=')? {
            ("m", v) => mem = v.parse().ok(),
            ("t", v) => ops = v.parse().ok(),
            _ => {}
        }
    }
    Some(Params {
        ops: ops?,
        mem_kib: mem?,
    })
}

/// Whether a stored hash should be recomputed with the current parameters.
pub fn needs_rehash(stored: &str, current: Params) -> bool {
    params_of(stored) != Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verify_and_params() {
        crate::crypto::init().unwrap();
        let p = Params {
            ops: 2,
            mem_kib: 19_456,
        };
        let h = hash("correct horse battery staple", p).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(&h, "correct horse battery staple"));
        assert!(!verify(&h, "correct horse battery stapl"));
        assert_eq!(params_of(&h), Some(p));
        assert!(!needs_rehash(&h, p));
        assert!(needs_rehash(
            &h,
            Params {
                ops: 3,
                mem_kib: 19_456
            }
        ));
        assert!(!verify("garbage", "x"));
    }
}
