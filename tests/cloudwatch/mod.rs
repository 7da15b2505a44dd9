//! Shared by the CloudWatch test binaries (`tests/cloudwatch_*.rs`): a real
//! `moto_server` per test ([`moto`]), the SDK client that seeds it, a
//! fault-injecting HTTP proxy ([`proxy`]), the exporter run in-process or as
//! the binary ([`exporter`]), and reading values out of an exposition
//! ([`expo`]).
#![allow(dead_code)]

pub mod expo;
pub mod exporter;
pub mod moto;
pub mod proxy;
