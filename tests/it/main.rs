//! restjwt's integration tests: one binary, shared fixtures in `common`.

mod common;

mod accounts;
mod accounts_e2e;
mod accounts_replay;
mod attacks;
mod browser;
mod caches;
mod cli;
mod connections;
mod cookie_accounts;
mod cookie_fixtures;
mod cookies;
mod crash;
mod e2e;
mod example;
mod examples;
mod features;
mod hardening;
mod instances;
mod interop;
mod issuer;
mod keys;
mod lifecycle;
mod operations;
mod reference;
mod rotation;
mod settings;
mod side_by_side;
mod staging;
mod throttle_decisions;
mod throttling;
mod wire_obtain;
mod wire_refresh_verify;
mod wire_user;
