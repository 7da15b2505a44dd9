//! Detections over flow time: the stateless rules (CIDR sets, port sets) and
//! the windowed, memory-bounded trackers — top-K rejected addresses and port
//! scanners — plus the GeoIP country lookup. Windows run on flow time: the
//! caller passes the newest record time seen, and a window of length W holds
//! the records whose time is later than that minus W.

pub mod addr;
mod admit;
pub mod geo;
mod losslog;
pub mod portscan;
mod rings;
pub mod rules;
pub mod topk;
pub mod tracker;

pub use rules::{Classification, Rules};
