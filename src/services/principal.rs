//! The authenticated caller, whatever credential it presented: a plain value the resolver in
//! [`crate::auth`] produces and the services take, kept here so no service imports a layer above.

use serde::Serialize;

use crate::error::{Error, Result};

/// Which kind of credential authenticated the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// `sk_…` / `pk_…` API key.
    ApiKey,
    /// EdDSA access JWT.
    Jwt,
    /// `dst_sess_…` browser or handshake session.
    Session,
    /// `dst_run_…` run session.
    RunSession,
    /// `pt_…` customer portal token.
    PortalToken,
}

impl CredentialKind {
    /// The name used in verify answers and forward-auth headers.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::ApiKey => "api_key",
            CredentialKind::Jwt => "jwt",
            CredentialKind::Session => "session",
            CredentialKind::RunSession => "run_session",
            CredentialKind::PortalToken => "portal_token",
        }
    }
}

pub use super::types::Mode;

/// The authenticated caller.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Principal {
    /// How they authenticated.
    pub kind: CredentialKind,
    /// Stable subject: `user:<id>`, `customer:<brand>:<email>`…
    pub subject: String,
    /// The user, if the credential belongs to one.
    pub user_id: Option<i64>,
    /// The user's name, if any.
    pub username: Option<String>,
    /// The tenant the credential acts in.
    pub tenant_id: Option<String>,
    /// Live or test data.
    pub mode: Mode,
    /// Scopes granted by the credential (empty means the user's full rights).
    pub scopes: Vec<String>,
    /// Administrator rights.
    pub is_admin: bool,
    /// Named permissions of the user.
    pub permissions: Vec<String>,
    /// When the credential expires (Unix seconds), if it does.
    pub expires_at: Option<i64>,
    /// Id of the credential (key id, session id…), for audit and revocation.
    pub credential_id: Option<String>,
}

impl Principal {
    /// Whether the caller holds a permission (admins hold all; portal tokens none).
    pub fn has_permission(&self, perm: &str) -> bool {
        if self.kind == CredentialKind::PortalToken {
            return false;
        }
        self.is_admin || self.permissions.iter().any(|p| p == perm)
    }

    /// 403 naming the missing permission unless the caller holds it.
    pub fn require(&self, perm: &str) -> Result<()> {
        if self.has_permission(perm) {
            Ok(())
        } else {
            Err(Error::forbidden(format!(
                "You do not have permission to perform this action: requires `{perm}`"
            )))
        }
    }

    /// 403 unless the caller acts as a user (not a portal customer or a run).
    pub fn require_user(&self) -> Result<i64> {
        match (self.kind, self.user_id) {
            (CredentialKind::PortalToken, _) => {
                Err(Error::forbidden("Portal tokens cannot use this endpoint"))
            }
            (_, Some(id)) => Ok(id),
            (_, None) => Err(Error::forbidden("This endpoint needs a user credential")),
        }
    }
}
