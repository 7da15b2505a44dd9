//! Shared by every integration-test binary (`mod common;`): the external
//! tools a test needs and what happens when one is missing ([`tools`]), child
//! processes killed on drop and free loopback ports ([`process`]), the
//! exporter binary started and scraped ([`exporter`]), reading values out of
//! an exposition ([`expo`]), moto_server ([`moto`]) and Prometheus /
//! Alertmanager with a config of the test's ([`prometheus`]).
//!
//! A test that needs a tool asks [`require`] (or [`require_all`]) first: on a
//! machine without it the test prints `skipped: ...` and passes as a no-op,
//! unless `VPC_FLOW_EXPORTER_REQUIRE_TOOLS=1` (set by `scripts/test.sh`, so CI
//! never skips) turns the skip into a failure. See docs/testing.md.
#![allow(dead_code)]

pub mod aws;
pub mod expo;
pub mod exporter;
pub mod firehose;
pub mod moto;
pub mod process;
pub mod prometheus;
pub mod tools;

// What most tests use, at the top (not every binary uses each one).
#[allow(unused_imports)]
pub use exporter::{Exporter, BIN};
#[allow(unused_imports)]
pub use process::{free_port, now_ms, Proc};
#[allow(unused_imports)]
pub use tools::{require, require_all, Tool, ALERTMANAGER, MOTO_SERVER, PROMETHEUS, PROMTOOL};

/// The repository root (where Cargo.toml is).
pub fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
