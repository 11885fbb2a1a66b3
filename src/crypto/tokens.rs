//! Credential formats: prefixes, lengths and the CRC32 checksum of API keys.
//!
//! Everything here is pure string work that runs before any database look-up, so a typo, a
//! truncated key or a wrong prefix is refused as malformed without touching the store.

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

/// Encodes a CRC32 as exactly 6 base62 characters.
pub fn crc_base62(data: &[u8]) -> String {
    let mut n = u64::from(crc32fast::hash(data));
    let mut out = [b'0'; KEY_CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out.iter().map(|b| char::from(*b)).collect()
}

/// A new API key with the given prefix (one of [`API_KEY_PREFIXES`]).
pub fn new_api_key(prefix: &str) -> SecretToken {
    let body = format!("{prefix}{}", random_base62(KEY_RANDOM_LEN));
    let sum = crc_base62(body.as_bytes());
    SecretToken(format!("{body}{sum}"))
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
    crc_base62(body.as_bytes()) == sum
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
}
