//! The integration tests, linked as one binary: each suite is a module, so
//! the library and its dependencies are linked once, not once per suite.
//! Run one suite with `cargo test --test integration boot::`.
//!
//! `common` and the `*_support` modules are the suites' shared helpers;
//! `boot_support/probe.rs` is not a module but a guest program that the boot
//! suite compiles for musl with rustc.

mod boot_support;
mod common;
mod hostile_support;
mod registry_support;

mod archive_rules;
mod boot;
mod boot_check;
mod compression;
mod differential;
mod engines;
mod fuzz_corpus;
mod hostile;
mod merge_model;
mod newc_reader;
mod output;
mod random_layers;
mod registry;
mod sources;
mod ux;
