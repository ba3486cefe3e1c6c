//! restjwt's integration tests: one binary, shared fixtures in `common`.

mod common;

mod cli;
mod e2e;
mod example;
mod instances;
mod lifecycle;
mod settings;
mod wire_obtain;
mod wire_refresh_verify;
mod wire_user;
