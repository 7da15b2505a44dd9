//! vpc-flow-exporter turns AWS VPC Flow Logs into Prometheus metrics.
//!
//! The data flow, one module a stage:
//! `source` (CloudWatch Logs poller, file/stdin replay, demo generator) yields
//! lines → `parse` turns each line into a typed record without allocating →
//! `aggregate` counts records into per-interface counters and histograms and
//! feeds `detect` (CIDR rules, top-K windows, port scans) → `expose` encodes the
//! in-memory aggregates as the Prometheus exposition at scrape time and serves it.
//! `config` turns the YAML file into a validated model whose errors name the key.

// No `unwrap()` in library code (tests aside): bad input is an error or a
// count, never a panic. Cargo.toml's [lints] holds the other lints.
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod aggregate;
pub mod app;
pub mod config;
pub mod detect;
pub mod errors;
pub mod expose;
pub mod logging;
pub mod parse;
pub mod pipeline;
pub mod reload;
pub mod source;
