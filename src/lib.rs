//! Gatehouse: a self-hosted authentication appliance — one binary, one SQLite file.
//!
//! Data flows one way: [`http`] → [`auth`] → [`services`] → [`store`] / [`crypto`].
//! Nothing lower imports anything higher. [`app::Application`] is what both `main`
//! and the integration tests start.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod app;
pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod crypto;
pub mod error;
pub mod http;
pub mod jobs;
pub mod services;
pub mod store;
