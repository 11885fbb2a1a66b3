//! Black-box tests: the real `Application` on port 0 with a fresh SQLite file in a temp dir,
//! talked to over HTTP. One test binary (modules below) so the crate links once.

mod browser;
mod helpers;

mod accounts;
mod browser_signin;
mod foundation;
mod handshake;
mod handshake_browser;
mod keys;
mod nginx;
mod openapi;
mod pages;
mod sessions;
mod verify;
