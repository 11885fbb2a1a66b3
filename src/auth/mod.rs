//! Who is calling: the credential resolver, the [`Principal`] it yields, and permission checks.
//!
//! One resolver decides a credential's kind from its prefix (a JWT starts with `eyJ`), checks
//! its format (and an API key's checksum) before touching the database, and yields one
//! `Principal`. Every handler, the verify API and forward-auth use that same resolver.

pub mod ratelimit;
pub mod resolver;

// The principal is a plain value the services also build and take, so it lives below them in
// `services::principal`; this layer decides which one a request gets.
pub use crate::services::principal::{CredentialKind, Mode, Principal};
