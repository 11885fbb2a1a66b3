//! Who is calling: the credential resolver, the [`Principal`] it yields, and permission checks.
//!
//! One resolver decides a credential's kind from its prefix (a JWT starts with `eyJ`), checks
//! its format (and an API key's checksum) before touching the database, and yields one
//! `Principal`. Every handler, the verify API and forward-auth use that same resolver.

pub mod principal;
pub mod ratelimit;
pub mod resolver;

pub use principal::{CredentialKind, Mode, Principal};
