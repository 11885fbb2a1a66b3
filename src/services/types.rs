//! Newtypes parsed at the edge: services never take raw strings for these.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;

use crate::error::{Error, Result};

/// A string schema stating a rule that a `parse` below enforces, so that OpenAPI clients see
/// what the server will refuse with 400 (the API tests hold the two to the same answers).
pub fn string_schema(description: &str, min: usize, max: usize, pattern: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .min_length(Some(min))
        .max_length(Some(max))
        .pattern(Some(pattern))
        .into()
}

/// A valid user name: 1–64 characters of letters, digits, `.`, `_`, `-`, `@`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Parses and validates.
    pub fn parse(s: &str) -> Result<Username> {
        let s = s.trim();
        if s.is_empty() || s.len() > 64 {
            return Err(Error::bad_request("username must be 1 to 64 characters"));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
        {
            return Err(Error::bad_request(
                "username may contain only letters, digits and . _ - @",
            ));
        }
        Ok(Username(s.to_owned()))
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl utoipa::PartialSchema for Username {
    fn schema() -> RefOr<Schema> {
        string_schema(
            "A user name: 1–64 letters, digits, `.`, `_`, `-` or `@`",
            1,
            64,
            "^[A-Za-z0-9._@-]{1,64}$",
        )
    }
}

impl utoipa::ToSchema for Username {}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A plausible e-mail address (one `@`, a dot in the domain, no spaces, at most 254 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Parses and validates; the address is kept as given, compared case-insensitively.
    pub fn parse(s: &str) -> Result<Email> {
        let s = s.trim();
        let ok = s.len() <= 254
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            && s.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            });
        if !ok {
            return Err(Error::bad_request("email is not a valid e-mail address"));
        }
        Ok(Email(s.to_owned()))
    }
    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// [`Email::parse`]'s rule: one `@` after a non-empty local part, a domain with a dot neither
/// first nor last, no white space or control character anywhere.
const EMAIL_PATTERN: &str = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f.][^@\s\x00-\x1f\x7f-\x9f]*\.[^@\s\x00-\x1f\x7f-\x9f]*[^@\s\x00-\x1f\x7f-\x9f.]$";

impl utoipa::PartialSchema for Email {
    fn schema() -> RefOr<Schema> {
        string_schema(
            "An e-mail address: one `@`, a dot inside the domain, no white space or control \
             characters, at most 254 bytes",
            5,
            254,
            EMAIL_PATTERN,
        )
    }
}

impl utoipa::ToSchema for Email {}

/// A password as typed. Never printed; checked for strength before it is stored.
#[derive(Clone)]
pub struct Password(SecretString);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***SECRET***)")
    }
}

impl Password {
    /// Wraps a password without judging it (for sign-in).
    pub fn new(s: String) -> Password {
        Password(SecretString::from(s))
    }
    /// The password.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
    /// Checks a new password: length bounds (never truncated) and zxcvbn strength.
    pub fn check_new(
        &self,
        policy: &crate::config::PasswordSettings,
        user_inputs: &[&str],
    ) -> Result<()> {
        let pw = self.expose();
        let chars = pw.chars().count();
        if chars < policy.min_length {
            return Err(Error::bad_request(format!(
                "password must be at least {} characters",
                policy.min_length
            )));
        }
        if chars > policy.max_length {
            return Err(Error::bad_request(format!(
                "password must be at most {} characters",
                policy.max_length
            )));
        }
        // zxcvbn's cost grows with length; judge the first 256 characters (a longer password
        // is strong by length alone). The whole password is still what gets hashed.
        let judged: String = pw.chars().take(256).collect();
        let score = zxcvbn::zxcvbn(&judged, user_inputs).score() as u8;
        if score < policy.min_score {
            return Err(Error::bad_request(format!(
                "password is too easy to guess (strength {score} of 4, need {}); use a longer passphrase",
                policy.min_score
            )));
        }
        Ok(())
    }
}

/// Live or test data.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Production data.
    Live,
    /// Test data, fully separate.
    Test,
}

impl Mode {
    /// `live` or `test`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Live => "live",
            Mode::Test => "test",
        }
    }
    /// Parses `live` / `test`.
    pub fn parse(s: &str) -> Result<Mode> {
        match s {
            "live" => Ok(Mode::Live),
            "test" => Ok(Mode::Test),
            _ => Err(Error::bad_request("mode must be `live` or `test`")),
        }
    }
}

/// A tenant id: `ten_` + 16 lowercase hex characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TenantId(String);

impl TenantId {
    /// Parses and validates.
    pub fn parse(s: &str) -> Result<TenantId> {
        let ok = s.strip_prefix("ten_").is_some_and(|h| {
            h.len() == 16
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if !ok {
            return Err(Error::bad_request(
                "tenant id must look like ten_0123456789abcdef",
            ));
        }
        Ok(TenantId(s.to_owned()))
    }
    /// A new random id.
    pub fn generate() -> TenantId {
        let bytes = crate::crypto::random_bytes(8);
        TenantId(format!(
            "ten_{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ))
    }
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl utoipa::PartialSchema for TenantId {
    fn schema() -> RefOr<Schema> {
        string_schema(
            "A tenant (organization) id: `ten_` and 16 lowercase hex digits",
            20,
            20,
            "^ten_[0-9a-f]{16}$",
        )
    }
}

impl utoipa::ToSchema for TenantId {}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        assert!(Username::parse("alice").is_ok());
        assert!(Username::parse("al ice").is_err());
        assert!(Username::parse("").is_err());
        assert!(Email::parse("a@b.co").is_ok());
        assert!(Email::parse("a@b").is_err());
        assert!(Email::parse("a b@c.d").is_err());
        assert!(TenantId::parse("ten_0123456789abcdef").is_ok());
        assert!(TenantId::parse("ten_0123").is_err());
        assert!(TenantId::parse(TenantId::generate().as_str()).is_ok());
    }

    #[test]
    fn password_policy() {
        let p = crate::config::PasswordSettings::default();
        assert!(Password::new("short".into()).check_new(&p, &[]).is_err());
        assert!(Password::new("password".into()).check_new(&p, &[]).is_err());
        assert!(Password::new("x".repeat(2000)).check_new(&p, &[]).is_err());
        Password::new("correct horse battery staple".into())
            .check_new(&p, &[])
            .unwrap();
        Password::new("a7#Kq!v9 Lm2$pX4 zR8&wN1 ".repeat(3))
            .check_new(&p, &[])
            .unwrap();
        assert!(!format!("{:?}", Password::new("hunter2hunter2".into())).contains("hunter2"));
    }
}
