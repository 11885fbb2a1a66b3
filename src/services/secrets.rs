//! Tenant secrets, encrypted with the tenant data key (XChaCha20-Poly1305).
//!
//! The associated data binds the tenant, the mode and the name, so a ciphertext moved to
//! another row, tenant or mode no longer opens. Only a handshake session holds the data key,
//! so any other credential gets 403 [`super::handshake::NEEDS_HANDSHAKE`].

use super::handshake;
use super::principal::Principal;
use super::Ctx;
use crate::crypto;
use crate::error::{Error, Result};
use crate::store;
use crate::store::handshake::SecretMeta;

/// A secret's name: 1–128 characters of letters, digits, `.`, `_`, `-`, `/`.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'));
    if ok {
        Ok(())
    } else {
        Err(Error::bad_request(
            "secret name must be 1 to 128 characters of letters, digits and . _ - /",
        ))
    }
}

fn ad(tenant_id: &str, mode: &str, name: &str) -> Vec<u8> {
    format!("gatehouse secret v1\0{tenant_id}\0{mode}\0{name}").into_bytes()
}

/// Stores (or replaces) a secret.
pub async fn put(ctx: &Ctx, p: &Principal, name: &str, value: &str) -> Result<SecretMeta> {
    check_name(name)?;
    let (_, keys) = handshake::keys_of(ctx, p)?;
    if value.len() > ctx.settings.handshake.max_secret_bytes {
        return Err(Error::bad_request(format!(
            "secret value must be at most {} bytes",
            ctx.settings.handshake.max_secret_bytes
        )));
    }
    let mode = p.mode.as_str();
    let ct = crypto::seal(
        keys.dek.bytes(),
        value.as_bytes(),
        &ad(&keys.tenant_id, mode, name),
    );
    let (t, n, now) = (keys.tenant_id.clone(), name.to_owned(), store::now());
    ctx.db
        .write(move |tx| store::handshake::upsert_secret(tx, &t, mode, &n, &ct, now))
        .await
}

/// A secret's value and times.
pub async fn get(ctx: &Ctx, p: &Principal, name: &str) -> Result<(SecretMeta, String)> {
    check_name(name)?;
    let (_, keys) = handshake::keys_of(ctx, p)?;
    let mode = p.mode.as_str();
    let (t, n) = (keys.tenant_id.clone(), name.to_owned());
    let (meta, ct) = ctx
        .db
        .read(move |c| store::handshake::get_secret(c, &t, mode, &n))
        .await?
        .ok_or_else(|| Error::not_found("No such secret"))?;
    let plain = crypto::open(keys.dek.bytes(), &ct, &ad(&keys.tenant_id, mode, name))
        .ok_or_else(|| Error::internal("a stored secret does not decrypt"))?;
    let value = String::from_utf8(plain.to_vec())
        .map_err(|_| Error::internal("a stored secret is not UTF-8"))?;
    Ok((meta, value))
}

/// Deletes a secret.
pub async fn delete(ctx: &Ctx, p: &Principal, name: &str) -> Result<()> {
    check_name(name)?;
    let (_, keys) = handshake::keys_of(ctx, p)?;
    let mode = p.mode.as_str();
    let (t, n) = (keys.tenant_id.clone(), name.to_owned());
    if ctx
        .db
        .write(move |tx| store::handshake::delete_secret(tx, &t, mode, &n))
        .await?
    {
        Ok(())
    } else {
        Err(Error::not_found("No such secret"))
    }
}

/// Names and times of the tenant's secrets (never values).
pub async fn list(ctx: &Ctx, p: &Principal) -> Result<Vec<SecretMeta>> {
    let (_, keys) = handshake::keys_of(ctx, p)?;
    let mode = p.mode.as_str();
    let t = keys.tenant_id.clone();
    ctx.db
        .read(move |c| store::handshake::list_secrets(c, &t, mode))
        .await
}
