//! SQS message bodies to object references: the three shapes AWS puts on a
//! queue for a new S3 object (S3 event notifications, the same wrapped by
//! SNS, EventBridge `Object Created` events), each read into
//! [`ObjectRef`]s with URL-decoded keys, or into an "ignored" outcome
//! (`s3:TestEvent`, events other than object creation) whose message the
//! loop deletes. Anything else is a [`NotificationError`]: the message is left
//! to the queue's redrive policy. [`ObjectId`] is an object's identity for
//! deduplication (bucket, key, and version id, else ETag, else sequencer).
//! Every size is bounded by a named constant; docs/s3.md has the rules.

use std::fmt;

use serde::Deserialize;
use serde_json::Value;

/// The largest message body read: the SQS maximum message size (256 KiB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The most records one message may announce. S3 puts one record in each
/// message; a body that claims more is not from S3.
pub const MAX_RECORDS: usize = 100;

/// The longest object key, after decoding: the S3 limit (1,024 bytes of UTF-8).
pub const MAX_KEY_BYTES: usize = 1024;

/// The longest bucket name: S3 allows 63 bytes (255 for legacy us-east-1 buckets).
pub const MAX_BUCKET_BYTES: usize = 255;

/// The longest version id, ETag or sequencer kept for an object's identity.
/// AWS writes 32 to 64 bytes; version ids may be up to 1,024.
pub const MAX_TAG_BYTES: usize = 1024;

/// The longest [`ObjectId::storage_key`]: longer identities are hashed, so
/// that the key fits a DynamoDB partition key (at most 2,048 bytes).
pub const MAX_STORAGE_KEY_BYTES: usize = 1024;

/// How deep an SNS envelope may nest (SNS around S3 or EventBridge: one).
const MAX_ENVELOPES: usize = 1;

/// One object a message announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    /// The key as S3 stores it (URL-decoded where the shape encodes it).
    pub key: String,
    /// Size in bytes, where the event gives it.
    pub size: Option<u64>,
    /// `versionId` (S3) or `version-id` (EventBridge); `None` in an
    /// unversioned bucket and where S3 writes the literal `null`.
    pub version_id: Option<String>,
    /// The ETag, without quotes.
    pub etag: Option<String>,
    pub sequencer: Option<String>,
    /// The event time as Unix milliseconds, where it is given and readable.
    pub event_time_ms: Option<u64>,
    /// The shape the reference came in.
    pub shape: Shape,
}

impl ObjectRef {
    /// The object's identity for deduplication.
    pub fn id(&self) -> ObjectId {
        let tag = if let Some(v) = &self.version_id {
            Tag::Version(v.clone())
        } else if let Some(e) = &self.etag {
            Tag::ETag(e.clone())
        } else if let Some(s) = &self.sequencer {
            Tag::Sequencer(s.clone())
        } else {
            Tag::None
        };
        ObjectId { bucket: self.bucket.clone(), key: self.key.clone(), tag }
    }
}

/// Which notification shape a reference came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// S3 event notification (`Records[]`), sent straight to SQS.
    S3,
    /// An S3 event notification inside an SNS envelope.
    SnsS3,
    /// An EventBridge `Object Created` event.
    EventBridge,
    /// An EventBridge event inside an SNS envelope.
    SnsEventBridge,
}

impl Shape {
    /// The bounded label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::S3 => "s3",
            Shape::SnsS3 => "sns_s3",
            Shape::EventBridge => "eventbridge",
            Shape::SnsEventBridge => "sns_eventbridge",
        }
    }

    fn in_sns(self) -> Shape {
        match self {
            Shape::S3 | Shape::SnsS3 => Shape::SnsS3,
            Shape::EventBridge | Shape::SnsEventBridge => Shape::SnsEventBridge,
        }
    }
}

/// What a message body is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// Objects to read (at least one).
    Objects(Vec<ObjectRef>),
    /// Nothing to read; the message can be deleted.
    Ignored(Ignored),
}

/// Why a message announces nothing to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ignored {
    /// `s3:TestEvent`, sent when a notification configuration is saved.
    TestEvent,
    /// Only events other than object creation (removal, restore, tagging...).
    NotCreated,
    /// An S3 notification with an empty `Records` list.
    NoRecords,
}

impl Ignored {
    /// The bounded label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Ignored::TestEvent => "test_event",
            Ignored::NotCreated => "not_created",
            Ignored::NoRecords => "no_records",
        }
    }
}

/// Why a message body cannot be read. The message stays on the queue (and
/// reaches the dead-letter queue after the redrive count).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    #[error("message body of {len} bytes is over the {MAX_BODY_BYTES}-byte limit")]
    TooLarge { len: usize },
    #[error("message body is not JSON: {0}")]
    Json(String),
    #[error("message body is neither an S3, SNS nor EventBridge notification")]
    UnknownShape,
    #[error("message announces {count} records, over the limit of {MAX_RECORDS}")]
    TooManyRecords { count: usize },
    #[error("notification lacks {0}")]
    Missing(&'static str),
    #[error("{field} is not valid: {why}")]
    Invalid { field: &'static str, why: &'static str },
    #[error("SNS envelopes nested deeper than {MAX_ENVELOPES}")]
    TooDeep,
}

impl NotificationError {
    /// The bounded `reason` label value.
    pub fn reason(&self) -> &'static str {
        match self {
            NotificationError::TooLarge { .. } => "too_large",
            NotificationError::Json(_) => "bad_json",
            NotificationError::UnknownShape => "unknown_shape",
            NotificationError::TooManyRecords { .. } => "too_many_records",
            NotificationError::Missing(_) => "missing_field",
            NotificationError::Invalid { .. } => "invalid_field",
            NotificationError::TooDeep => "too_deep",
        }
    }
}

/// Reads one SQS message body.
pub fn parse(body: &[u8]) -> Result<Notification, NotificationError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(NotificationError::TooLarge { len: body.len() });
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| json_error(&e))?;
    parse_value(value, 0)
}

/// The error without the input echoed back (its class and position only).
fn json_error(e: &serde_json::Error) -> NotificationError {
    NotificationError::Json(format!("{:?} error at line {} column {}", e.classify(), e.line(), e.column()))
}

fn parse_value(value: Value, depth: usize) -> Result<Notification, NotificationError> {
    let Value::Object(map) = value else { return Err(NotificationError::UnknownShape) };
    if map.contains_key("Records") {
        let event: S3Event = from_value(Value::Object(map))?;
        return s3_event(event, Shape::S3);
    }
    if map.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Notification::Ignored(Ignored::TestEvent));
    }
    if map.get("Type").and_then(Value::as_str) == Some("Notification") {
        return sns(&map, depth);
    }
    if map.contains_key("detail-type") {
        let event: EventBridge = from_value(Value::Object(map))?;
        return eventbridge(event, Shape::EventBridge);
    }
    Err(NotificationError::UnknownShape)
}

fn from_value<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, NotificationError> {
    serde_json::from_value(value).map_err(|e| json_error(&e))
}

/// An SNS envelope: its `Message` string holds an S3 or EventBridge event.
fn sns(map: &serde_json::Map<String, Value>, depth: usize) -> Result<Notification, NotificationError> {
    if depth >= MAX_ENVELOPES {
        return Err(NotificationError::TooDeep);
    }
    let message = map.get("Message").and_then(Value::as_str).ok_or(NotificationError::Missing("Message"))?;
    let inner: Value = serde_json::from_str(message).map_err(|e| json_error(&e))?;
    Ok(match parse_value(inner, depth + 1)? {
        Notification::Objects(objects) => {
            Notification::Objects(objects.into_iter().map(|o| ObjectRef { shape: o.shape.in_sns(), ..o }).collect())
        }
        ignored => ignored,
    })
}

#[derive(Deserialize)]
struct S3Event {
    #[serde(rename = "Records")]
    records: Vec<S3Record>,
}

#[derive(Deserialize)]
struct S3Record {
    #[serde(rename = "eventName")]
    event_name: Option<String>,
    #[serde(rename = "eventTime")]
    event_time: Option<String>,
    s3: Option<S3Entity>,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: Option<Bucket>,
    object: Option<S3Object>,
}

#[derive(Deserialize)]
struct Bucket {
    name: Option<String>,
}

#[derive(Deserialize)]
struct S3Object {
    key: Option<String>,
    size: Option<Value>,
    #[serde(rename = "eTag")]
    etag: Option<String>,
    #[serde(rename = "versionId")]
    version_id: Option<String>,
    sequencer: Option<String>,
}

fn s3_event(event: S3Event, shape: Shape) -> Result<Notification, NotificationError> {
    if event.records.len() > MAX_RECORDS {
        return Err(NotificationError::TooManyRecords { count: event.records.len() });
    }
    if event.records.is_empty() {
        return Ok(Notification::Ignored(Ignored::NoRecords));
    }
    let mut objects = Vec::new();
    for record in event.records {
        let name = record.event_name.ok_or(NotificationError::Missing("Records[].eventName"))?;
        if !is_created(&name) {
            continue;
        }
        let entity = record.s3.ok_or(NotificationError::Missing("Records[].s3"))?;
        let bucket =
            entity.bucket.and_then(|b| b.name).ok_or(NotificationError::Missing("Records[].s3.bucket.name"))?;
        let object = entity.object.ok_or(NotificationError::Missing("Records[].s3.object"))?;
        let key = object.key.ok_or(NotificationError::Missing("Records[].s3.object.key"))?;
        objects.push(ObjectRef {
            bucket: check_bucket(bucket)?,
            key: check_key(url_decode(&key)?)?,
            size: size(object.size)?,
            version_id: tag(object.version_id, "versionId")?,
            etag: tag(object.etag, "eTag")?,
            sequencer: tag(object.sequencer, "sequencer")?,
            event_time_ms: record.event_time.as_deref().and_then(parse_time_ms),
            shape,
        });
    }
    if objects.is_empty() {
        return Ok(Notification::Ignored(Ignored::NotCreated));
    }
    Ok(Notification::Objects(objects))
}

/// `ObjectCreated:Put`, `ObjectCreated:CompleteMultipartUpload`, ... (with
/// or without the `s3:` prefix of notification configurations).
fn is_created(event_name: &str) -> bool {
    event_name.strip_prefix("s3:").unwrap_or(event_name).starts_with("ObjectCreated:")
}

#[derive(Deserialize)]
struct EventBridge {
    #[serde(rename = "detail-type")]
    detail_type: String,
    source: Option<String>,
    time: Option<String>,
    detail: Option<EventBridgeDetail>,
}

#[derive(Deserialize)]
struct EventBridgeDetail {
    bucket: Option<Bucket>,
    object: Option<EventBridgeObject>,
}

#[derive(Deserialize)]
struct EventBridgeObject {
    key: Option<String>,
    size: Option<Value>,
    etag: Option<String>,
    #[serde(rename = "version-id")]
    version_id: Option<String>,
    sequencer: Option<String>,
}

/// EventBridge keys are the stored key, not URL-encoded (docs/s3.md says
/// where that comes from).
fn eventbridge(event: EventBridge, shape: Shape) -> Result<Notification, NotificationError> {
    if event.source.as_deref().is_some_and(|s| s != "aws.s3") {
        return Err(NotificationError::UnknownShape);
    }
    if event.detail_type != "Object Created" {
        return Ok(Notification::Ignored(Ignored::NotCreated));
    }
    let detail = event.detail.ok_or(NotificationError::Missing("detail"))?;
    let bucket = detail.bucket.and_then(|b| b.name).ok_or(NotificationError::Missing("detail.bucket.name"))?;
    let object = detail.object.ok_or(NotificationError::Missing("detail.object"))?;
    let key = object.key.ok_or(NotificationError::Missing("detail.object.key"))?;
    Ok(Notification::Objects(vec![ObjectRef {
        bucket: check_bucket(bucket)?,
        key: check_key(key)?,
        size: size(object.size)?,
        version_id: tag(object.version_id, "detail.object.version-id")?,
        etag: tag(object.etag, "detail.object.etag")?,
        sequencer: tag(object.sequencer, "detail.object.sequencer")?,
        event_time_ms: event.time.as_deref().and_then(parse_time_ms),
        shape,
    }]))
}

fn check_bucket(bucket: String) -> Result<String, NotificationError> {
    let invalid = |why| NotificationError::Invalid { field: "bucket name", why };
    if bucket.is_empty() {
        return Err(invalid("empty"));
    }
    if bucket.len() > MAX_BUCKET_BYTES {
        return Err(invalid("too long"));
    }
    if bucket.contains('/') {
        return Err(invalid("contains '/'"));
    }
    Ok(bucket)
}

fn check_key(key: String) -> Result<String, NotificationError> {
    let invalid = |why| NotificationError::Invalid { field: "object key", why };
    if key.is_empty() {
        return Err(invalid("empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(invalid("too long"));
    }
    Ok(key)
}

/// A version id, ETag or sequencer: bounded; empty and `null` are none; an
/// ETag loses its quotes.
fn tag(value: Option<String>, field: &'static str) -> Result<Option<String>, NotificationError> {
    let Some(v) = value else { return Ok(None) };
    let v = v.trim_matches('"');
    if v.is_empty() || v == "null" {
        return Ok(None);
    }
    if v.len() > MAX_TAG_BYTES {
        return Err(NotificationError::Invalid { field, why: "too long" });
    }
    Ok(Some(v.to_owned()))
}

/// A size: a JSON number, or a string of digits.
fn size(value: Option<Value>) -> Result<Option<u64>, NotificationError> {
    let invalid = NotificationError::Invalid { field: "object size", why: "not a whole number" };
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or(invalid),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| invalid),
        Some(_) => Err(invalid),
    }
}

/// Decodes an S3 notification key: `+` is a space, `%XX` a byte; the result
/// must be UTF-8.
pub fn url_decode(encoded: &str) -> Result<String, NotificationError> {
    let invalid = |why| NotificationError::Invalid { field: "object key", why };
    if encoded.len() > 3 * MAX_KEY_BYTES {
        return Err(invalid("too long"));
    }
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(invalid("'%' without two hex digits"))?;
                let hi = hex_digit(hex[0]).ok_or(invalid("'%' without two hex digits"))?;
                let lo = hex_digit(hex[1]).ok_or(invalid("'%' without two hex digits"))?;
                out.push((hi << 4) | lo);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| invalid("not UTF-8 once decoded"))
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// An ISO-8601 UTC time as AWS writes it (`2021-11-12T00:00:00Z`,
/// `1970-01-01T00:00:00.123Z`) in Unix milliseconds; `None` otherwise.
pub fn parse_time_ms(t: &str) -> Option<u64> {
    let b = t.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u64> {
        let s = b.get(r)?;
        s.iter().all(u8::is_ascii_digit).then(|| s.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let rest = &t[19..];
    let (frac, zone) = match rest.strip_prefix('.') {
        Some(r) => r.split_at(r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len())),
        None => ("", rest),
    };
    if zone != "Z" || frac.len() > 9 || (rest.starts_with('.') && frac.is_empty()) {
        return None;
    }
    let millis = frac.bytes().chain(std::iter::repeat(b'0')).take(3).fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    let days = days_from_civil(year, month, day)?;
    Some(((days * 24 + hour) * 60 + min) * 60_000 + sec * 1000 + millis)
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar
/// (`None` before 1970).
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    let y = if month <= 2 { year.checked_sub(1)? } else { year };
    let era = y / 400;
    let yoe = y % 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}

/// An object's identity: bucket, key and the most specific tag the
/// notification gave (version id, else ETag, else sequencer). Duplicate
/// notifications of one object have equal identities.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectId {
    pub bucket: String,
    pub key: String,
    pub tag: Tag,
}

/// What tells one version of a key from another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Tag {
    Version(String),
    ETag(String),
    Sequencer(String),
    /// The notification gave none: the key alone.
    None,
}

/// The stable string form: `{t}{len}:{tag}/{bucket}/{key}` where `t` is
/// `v` (version), `e` (ETag), `s` (sequencer) or `n` (none, `n0:`) and
/// `len` the tag's byte length. Unambiguous: the tag is length-prefixed,
/// a bucket name has no `/`, and the key is the rest.
impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (t, v) = match &self.tag {
            Tag::Version(v) => ('v', v.as_str()),
            Tag::ETag(e) => ('e', e.as_str()),
            Tag::Sequencer(s) => ('s', s.as_str()),
            Tag::None => ('n', ""),
        };
        write!(f, "{t}{}:{v}/{}/{}", v.len(), self.bucket, self.key)
    }
}

impl ObjectId {
    /// A key for a dedup table: the string form when it is at most
    /// [`MAX_STORAGE_KEY_BYTES`], else `sha256:` and the hex SHA-256 of it.
    pub fn storage_key(&self) -> String {
        let full = self.to_string();
        if full.len() <= MAX_STORAGE_KEY_BYTES {
            return full;
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, full.as_bytes());
        let mut out = String::from("sha256:");
        for b in digest.as_ref() {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }
}

#[cfg(test)]
mod tests;
