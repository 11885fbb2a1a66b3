//! Tenants (organizations) and memberships.

use super::types::TenantId;
use super::Ctx;
use crate::error::{Error, Result};
use crate::store::{self, tenants::TenantRow};

/// Turns a name into a slug: lowercase letters, digits and single dashes.
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').chars().take(48).collect()
}

/// A tenant's name (trimmed, 1–100 characters) and its slug, which needs a letter or digit.
pub fn name_and_slug(name: &str) -> Result<(String, String)> {
    let name = name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::bad_request(
            "tenant name must be 1 to 100 characters",
        ));
    }
    let slug = slugify(&name);
    if slug.is_empty() {
        return Err(Error::bad_request(
            "tenant name needs at least one letter or digit",
        ));
    }
    Ok((name, slug))
}

/// Creates a tenant; `owner` (a user id) becomes its owner.
pub async fn create(ctx: &Ctx, name: &str, owner: Option<i64>) -> Result<TenantRow> {
    let (name, slug) = name_and_slug(name)?;
    let id = TenantId::generate();
    let now = store::now();
    ctx.db
        .write(move |tx| {
            let t = store::tenants::insert(tx, id.as_str(), &name, &slug, now)?;
            if let Some(uid) = owner {
                store::tenants::set_membership(tx, uid, &t.id, "owner", now)?;
            }
            Ok(t)
        })
        .await
}

/// The `default` tenant every installation has.
pub async fn default_tenant(ctx: &Ctx) -> Result<TenantRow> {
    ctx.db
        .read(|c| store::tenants::by_slug(c, "default"))
        .await?
        .ok_or_else(|| Error::internal("the default tenant is missing"))
}

/// All tenants.
pub async fn list(ctx: &Ctx) -> Result<Vec<TenantRow>> {
    ctx.db.read(store::tenants::list).await
}

/// A tenant by id or slug.
pub async fn find(ctx: &Ctx, id_or_slug: &str) -> Result<TenantRow> {
    let k = id_or_slug.to_owned();
    ctx.db
        .read(move |c| {
            Ok(match store::tenants::get(c, &k)? {
                Some(t) => Some(t),
                None => store::tenants::by_slug(c, &k)?,
            })
        })
        .await?
        .ok_or_else(|| Error::not_found("No such tenant"))
}
