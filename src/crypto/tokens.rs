//! Credential formats: prefixes, lengths, the CRC32 checksum of API keys and the row id that
//! session tokens carry.
//!
//! Everything here is pure string work that runs before any database look-up, so a typo, a
//! truncated key or a wrong prefix is refused as malformed without touching the store.
//!
//! Session tokens are split tokens: after the prefix, 11 base62 characters are the session's row
//! id (the selector the store reads the row by) and the other 32 are random (≈190 bits); the row
//! keeps the keyed hash of the whole token (the verifier). The visible format is the same
//! `prefix` + 43 base62 as every other opaque token.

use std::fmt;

use super::{random_base62, BASE62};

/// A secret credential string. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken(String);

impl SecretToken {
    /// Wraps a value.
    pub fn new(s: String) -> Self {
        SecretToken(s)
    }
    /// The value, for the one place that needs it (the response that shows it once, hashing).
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// The masked form shown in listings: prefix, an ellipsis, the last four characters.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretToken({})", self.masked())
    }
}

impl Drop for SecretToken {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// Masks a credential: `sk_live_…wxyz`.
pub fn mask(token: &str) -> String {
    let prefix_end = token.rfind('_').map(|i| i + 1).unwrap_or(0);
    let tail: String = token
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{}…{}", &token[..prefix_end], tail)
}

/// Random characters in an API key body.
pub const KEY_RANDOM_LEN: usize = 32;
/// Checksum characters at the end of an API key.
pub const KEY_CHECKSUM_LEN: usize = 6;
/// Random characters in session, magic-link and portal tokens.
pub const TOKEN_RANDOM_LEN: usize = 43;

/// The kinds of API key prefix.
pub const API_KEY_PREFIXES: [&str; 4] = ["sk_live_", "sk_test_", "pk_live_", "pk_test_"];

/// The CRC32 of `data` as exactly 6 base62 characters (on the stack: verify checks one per
/// request).
pub fn crc_base62(data: &[u8]) -> [u8; KEY_CHECKSUM_LEN] {
    let mut n = u64::from(crc32fast::hash(data));
    let mut out = [b'0'; KEY_CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// A new API key with the given prefix (one of [`API_KEY_PREFIXES`]).
pub fn new_api_key(prefix: &str) -> SecretToken {
    let mut key = format!("{prefix}{}", random_base62(KEY_RANDOM_LEN));
    let sum = crc_base62(key.as_bytes());
    key.extend(sum.iter().map(|&b| char::from(b)));
    SecretToken(key)
}

/// Whether `s` is an API key of valid shape and checksum.
pub fn api_key_well_formed(s: &str) -> bool {
    let Some(prefix) = API_KEY_PREFIXES.iter().find(|p| s.starts_with(**p)) else {
        return false;
    };
    if s.len() != prefix.len() + KEY_RANDOM_LEN + KEY_CHECKSUM_LEN
        || !s[prefix.len()..].bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return false;
    }
    let (body, sum) = s.split_at(s.len() - KEY_CHECKSUM_LEN);
    crc_base62(body.as_bytes()) == sum.as_bytes()
}

/// A new opaque token: `prefix` + 43 base62 characters (≈256 bits).
pub fn new_token(prefix: &str) -> SecretToken {
    SecretToken(format!("{prefix}{}", random_base62(TOKEN_RANDOM_LEN)))
}

/// Whether `s` is `prefix` followed by exactly 43 base62 characters.
pub fn token_well_formed(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == TOKEN_RANDOM_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// Base62 characters of the row id at the start of a session token (any `u64` fits in 11).
pub const TOKEN_ID_LEN: usize = 11;

/// Encodes `id` as exactly [`TOKEN_ID_LEN`] base62 characters, most significant first.
fn id_base62(mut id: u64) -> String {
    let mut out = [b'0'; TOKEN_ID_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(id % 62) as usize];
        id /= 62;
    }
    out.iter().map(|b| char::from(*b)).collect()
}

/// The value of one base62 character, in [`BASE62`] order.
fn base62_value(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'A'..=b'Z' => Some(u64::from(b - b'A') + 10),
        b'a'..=b'z' => Some(u64::from(b - b'a') + 36),
        _ => None,
    }
}

/// A new token carrying a row id: `prefix` + the id in [`TOKEN_ID_LEN`] base62 characters + 32
/// random ones (≈190 bits). 43 characters after the prefix, like [`new_token`], so
/// [`token_well_formed`] accepts it.
pub fn new_token_with_id(prefix: &str, id: u64) -> SecretToken {
    SecretToken(format!(
        "{prefix}{}{}",
        id_base62(id),
        random_base62(TOKEN_RANDOM_LEN - TOKEN_ID_LEN)
    ))
}

/// The row id a token carries: its first [`TOKEN_ID_LEN`] characters after `prefix`, read as
/// base62. `None` if the prefix differs, or they are not base62 or exceed `u64`. A token made
/// before ids were carried reads as an arbitrary number; only the keyed hash proves a token.
pub fn token_id(s: &str, prefix: &str) -> Option<u64> {
    let digits = s.strip_prefix(prefix)?.as_bytes().get(..TOKEN_ID_LEN)?;
    digits.iter().try_fold(0u64, |n, b| {
        n.checked_mul(62)?.checked_add(base62_value(*b)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_roundtrip_and_typos() {
        crate::crypto::init().unwrap();
        for p in API_KEY_PREFIXES {
            let k = new_api_key(p);
            assert!(api_key_well_formed(k.expose()), "{}", k.expose());
            assert_eq!(k.expose().len(), p.len() + 38);
            let mut typo = k.expose().to_owned().into_bytes();
            let i = p.len() + 3;
            typo[i] = if typo[i] == b'a' { b'b' } else { b'a' };
            assert!(!api_key_well_formed(std::str::from_utf8(&typo).unwrap()));
            assert!(!api_key_well_formed(&k.expose()[..k.expose().len() - 1]));
        }
        assert!(!api_key_well_formed("xx_live_abc"));
    }

    #[test]
    fn masking_and_debug() {
        let t = SecretToken::new("sk_live_abcdefghwxyz".into());
        assert_eq!(t.masked(), "sk_live_…wxyz");
        assert!(!format!("{t:?}").contains("abcdefgh"));
    }

    #[test]
    fn opaque_tokens() {
        crate::crypto::init().unwrap();
        let t = new_token("dst_sess_");
        assert!(token_well_formed(t.expose(), "dst_sess_"));
        assert!(!token_well_formed(t.expose(), "dst_run_"));
        assert!(!token_well_formed("dst_sess_short", "dst_sess_"));
    }

    #[test]
    fn id_tokens_round_trip() {
        crate::crypto::init().unwrap();
        for id in [0, 1, 61, 62, 1 << 40, (1 << 40) + 12_345, 1 << 53, u64::MAX] {
            for prefix in ["dst_sess_", "dst_run_"] {
                let t = new_token_with_id(prefix, id);
                assert!(token_well_formed(t.expose(), prefix), "{}", t.expose());
                assert_eq!(token_id(t.expose(), prefix), Some(id));
            }
        }
        let (a, b) = (
            new_token_with_id("dst_sess_", 7),
            new_token_with_id("dst_sess_", 7),
        );
        assert_eq!(a.expose()[..20], b.expose()[..20], "same id, same selector");
        assert_ne!(a.expose()[20..], b.expose()[20..], "the rest is random");
    }

    #[test]
    fn token_id_is_fixed_width_base62() {
        assert_eq!(id_base62(0), "00000000000");
        assert_eq!(id_base62(61), "0000000000z");
        assert_eq!(id_base62(62), "00000000010");
        assert_eq!(id_base62(1 << 40), "0000JMAIjoW");
        assert_eq!(id_base62(u64::MAX), "LygHa16AHYF");
        for id in [0, 1, 1 << 40, u64::MAX] {
            assert_eq!(id_base62(id).len(), TOKEN_ID_LEN);
        }
        assert_eq!(token_id("dst_sess_0000JMAIjoW", "dst_sess_"), Some(1 << 40));
    }

    #[test]
    fn token_id_rejects_what_is_not_an_id() {
        let rest = "A".repeat(32);
        // Not base62, too short, another prefix.
        assert_eq!(
            token_id(&format!("dst_sess_0000-000001{rest}"), "dst_sess_"),
            None
        );
        assert_eq!(
            token_id(&format!("dst_sess_0000_000001{rest}"), "dst_sess_"),
            None
        );
        assert_eq!(
            token_id(&format!("dst_sess_00000000é1{rest}"), "dst_sess_"),
            None
        );
        assert_eq!(token_id("dst_sess_0000000001", "dst_sess_"), None);
        assert_eq!(
            token_id(&format!("dst_run_00000000001{rest}"), "dst_sess_"),
            None
        );
        // Base62 beyond u64 (a token from before ids were carried may read so).
        assert_eq!(
            token_id(&format!("dst_sess_LygHa16AHYG{rest}"), "dst_sess_"),
            None
        );
        assert_eq!(
            token_id(&format!("dst_sess_zzzzzzzzzzz{rest}"), "dst_sess_"),
            None
        );
        assert_eq!(
            token_id(&format!("dst_sess_LygHa16AHYF{rest}"), "dst_sess_"),
            Some(u64::MAX)
        );
    }
}
