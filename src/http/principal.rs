//! The `Authenticated` extractor: the request's credential, resolved to a [`Principal`].
//!
//! Reads the credential with [`super::extract::credential_from_headers`] and hands it to the
//! one resolver; no credential is a 401 `No Bearer token provided` with `WWW-Authenticate`.

use std::future::Future;
use std::pin::Pin;

use actix_web::{web, FromRequest, HttpRequest};

use crate::auth::{resolver, Principal};
use crate::error::{Error, NO_CREDENTIAL};
use crate::services::Ctx;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

impl FromRequest for Authenticated {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut actix_web::dev::Payload) -> Self::Future {
        let ctx = req.app_data::<web::Data<Ctx>>().cloned();
        let raw = super::extract::credential_from_headers(req.headers());
        Box::pin(async move {
            let ctx = ctx.ok_or_else(|| Error::internal("service context missing"))?;
            let (raw, _source) = raw?.ok_or_else(|| Error::unauthenticated(NO_CREDENTIAL))?;
            resolver::resolve(&ctx, &raw).await.map(Authenticated)
        })
    }
}
