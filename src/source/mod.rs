//! Sources of flow-log lines: the CloudWatch Logs poller (the live exporter),
//! files and standard input (`replay`), and the demo traffic generator. Each
//! feeds lines through its own [`crate::parse::LineParser`] (its own format)
//! into the shared [`crate::aggregate::Aggregator`], taking the lock once per
//! batch of lines.

pub mod cloudwatch;
pub mod demo;
pub mod firehose;
pub(crate) mod lines;
pub mod replay;
pub mod s3;
