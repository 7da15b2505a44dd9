//! The S3 source: flow logs delivered to S3 and announced on SQS. This
//! folder holds its pure decoding layers so far: SQS message bodies to
//! object references and identities ([`notification`]), an object's bytes
//! to lines or typed records ([`object`], with Parquet in [`parquet`]).
//! The SQS loop, the AWS clients, deduplication, metrics and wiring come in
//! the same folder later (docs/architecture.md, "A source is a folder of
//! the same shape"); docs/s3.md describes what users see.

pub mod notification;
pub mod object;
pub mod parquet;

pub use notification::{Notification, NotificationError, ObjectId, ObjectRef};
pub use object::{decode, Limits, ObjectError, ObjectKind, ObjectSink, Summary};
