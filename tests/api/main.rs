//! Black-box tests: the real `Application` on port 0 with a fresh SQLite file in a temp dir,
//! talked to over HTTP. One test binary (modules below) so the crate links once.

mod helpers;

mod foundation;
mod keys;
mod nginx;
mod verify;
