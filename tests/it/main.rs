//! restjwt's integration tests: one binary, shared fixtures in `common`.

mod common;

mod attacks;
mod caches;
mod cli;
mod connections;
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
mod rotation;
mod settings;
mod staging;
mod throttling;
mod wire_obtain;
mod wire_refresh_verify;
mod wire_user;
