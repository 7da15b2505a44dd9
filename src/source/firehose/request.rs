//! A Firehose HTTP endpoint delivery request: the head (method and
//! `X-Amz-Firehose-*` headers), the body's decompression under a cap, and the
//! JSON envelope `{requestId, timestamp, records: [{data}]}` read record by
//! record (never a `Vec` of every record). Every way a request can fail is a
//! [`RequestError`] whose status and `errorMessage` docs/firehose.md lists.

use std::borrow::Cow;
use std::fmt;
use std::io::Read;

use flate2::read::MultiGzDecoder;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::budget::Reservation;

/// The largest body accepted as received, compressed or not: Firehose's own
/// maximum, "up to a maximum of 64 MiB, before compression".
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// The largest decompressed body (`Content-Encoding: gzip`): the same 64 MiB.
/// A gzip bomb stops here with a 413.
pub const MAX_DECOMPRESSED_BODY_BYTES: usize = 64 * 1024 * 1024;
/// The most records in one request (the body schema's `maxItems`).
pub const MAX_RECORDS: usize = 10_000;
/// The longest `data` field (the body schema's `maxLength`: 1,024,000 bytes
/// before base64). A longer record is an invalid record, not a failed request.
pub const MAX_RECORD_DATA_CHARS: usize = 1_365_336;
/// The longest request id accepted. Firehose sends a GUID (36 characters).
pub const MAX_REQUEST_ID_BYTES: usize = 128;
/// The longest `X-Amz-Firehose-Common-Attributes` value: 50 attributes of a
/// 256-character name and a 1,024-character value, with room for escaping.
pub const MAX_COMMON_ATTRIBUTES_BYTES: usize = 128 * 1024;
/// The most common attributes (the header schema's `maxProperties`).
pub const MAX_COMMON_ATTRIBUTES: usize = 50;

/// The longest parse error kept for logs (the response never carries it).
const MAX_BODY_ERROR_CHARS: usize = 200;

/// The size of one read from the gzip decoder.
pub(crate) const INFLATE_CHUNK: usize = 64 * 1024;

/// Why a request is refused. Each kind has a status, a bounded metric label
/// ([`RequestError::reason`]) and a fixed `errorMessage` that never echoes
/// the request's content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("method not allowed: only POST")]
    MethodNotAllowed,
    #[error("missing X-Amz-Firehose-Request-Id")]
    MissingRequestId,
    #[error("invalid request id (empty, too long or not printable ASCII)")]
    InvalidRequestId,
    #[error("the body's requestId differs from X-Amz-Firehose-Request-Id")]
    RequestIdMismatch,
    #[error("header {0} given more than once")]
    RepeatedHeader(&'static str),
    #[error("missing X-Amz-Firehose-Access-Key")]
    MissingAccessKey,
    #[error("invalid X-Amz-Firehose-Access-Key")]
    InvalidAccessKey,
    #[error("unsupported Content-Encoding (gzip or none)")]
    UnsupportedContentEncoding,
    #[error("unsupported Content-Type (application/json)")]
    UnsupportedContentType,
    #[error("invalid X-Amz-Firehose-Common-Attributes")]
    InvalidCommonAttributes,
    #[error("body larger than {MAX_BODY_BYTES} bytes")]
    BodyTooLarge,
    #[error("decompressed body larger than {MAX_DECOMPRESSED_BODY_BYTES} bytes")]
    DecompressedTooLarge,
    #[error("more than {MAX_RECORDS} records")]
    TooManyRecords,
    #[error("body is not valid gzip")]
    InvalidGzip,
    #[error("body is not a valid request document: {0}")]
    InvalidBody(String),
    #[error("too many bytes in flight over all requests")]
    Busy,
    #[error("a request with this id is in work")]
    InWork,
    #[error("the records' counts could not be applied")]
    ApplyFailed,
}

impl RequestError {
    /// The HTTP status. Firehose treats 413 as permanent and retries every
    /// other non-200 code (docs/firehose.md).
    pub fn status(&self) -> u16 {
        use RequestError::*;
        match self {
            MethodNotAllowed => 405,
            MissingAccessKey | InvalidAccessKey => 401,
            UnsupportedContentEncoding | UnsupportedContentType => 415,
            BodyTooLarge | DecompressedTooLarge | TooManyRecords => 413,
            Busy | InWork => 503,
            ApplyFailed => 500,
            MissingRequestId
            | InvalidRequestId
            | RequestIdMismatch
            | RepeatedHeader(_)
            | InvalidCommonAttributes
            | InvalidGzip
            | InvalidBody(_) => 400,
        }
    }

    /// A bounded label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        use RequestError::*;
        match self {
            MethodNotAllowed => "method",
            MissingRequestId => "missing_request_id",
            InvalidRequestId => "invalid_request_id",
            RequestIdMismatch => "request_id_mismatch",
            RepeatedHeader(_) => "repeated_header",
            MissingAccessKey => "missing_access_key",
            InvalidAccessKey => "invalid_access_key",
            UnsupportedContentEncoding => "content_encoding",
            UnsupportedContentType => "content_type",
            InvalidCommonAttributes => "common_attributes",
            BodyTooLarge => "body_too_large",
            DecompressedTooLarge => "decompressed_too_large",
            TooManyRecords => "too_many_records",
            InvalidGzip => "gzip",
            InvalidBody(_) => "body",
            Busy => "busy",
            InWork => "in_work",
            ApplyFailed => "apply",
        }
    }

    /// The response's `errorMessage`: fixed text per kind.
    pub fn message(&self) -> &'static str {
        use RequestError::*;
        match self {
            MethodNotAllowed => "Method not allowed: use POST",
            MissingRequestId => "Missing X-Amz-Firehose-Request-Id",
            InvalidRequestId => "Invalid request id",
            RequestIdMismatch => "requestId in the body differs from X-Amz-Firehose-Request-Id",
            RepeatedHeader(_) => "A Firehose header was given more than once",
            MissingAccessKey => "Missing X-Amz-Firehose-Access-Key",
            InvalidAccessKey => "Invalid X-Amz-Firehose-Access-Key",
            UnsupportedContentEncoding => "Unsupported Content-Encoding: use gzip or none",
            UnsupportedContentType => "Unsupported Content-Type: use application/json",
            InvalidCommonAttributes => "Invalid X-Amz-Firehose-Common-Attributes",
            BodyTooLarge => "Payload too large",
            DecompressedTooLarge => "Payload too large once decompressed",
            TooManyRecords => "Too many records",
            InvalidGzip => "Body is not valid gzip",
            InvalidBody(_) => "Body is not a valid Firehose request document",
            Busy => "Receiver busy, retry later",
            InWork => "A request with this id is in work, retry later",
            ApplyFailed => "Records could not be applied, retry later",
        }
    }
}

/// The body's `Content-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncoding {
    /// No header (Firehose omits it without compression) or `identity`.
    Identity,
    Gzip,
}

/// The request line and headers, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// `X-Amz-Firehose-Request-Id`, when sent (moto sends none).
    pub request_id: Option<String>,
    /// `X-Amz-Firehose-Access-Key` as sent, for [`super::AccessKeys::check`].
    pub access_key: Option<Vec<u8>>,
    pub encoding: ContentEncoding,
    /// `X-Amz-Firehose-Common-Attributes`, name → value, sorted by name.
    pub common_attributes: Vec<(String, String)>,
    /// `X-Amz-Firehose-Source-Arn`, when sent (logged, not checked).
    pub source_arn: Option<String>,
}

const REQUEST_ID: &str = "x-amz-firehose-request-id";
const ACCESS_KEY: &str = "x-amz-firehose-access-key";
const COMMON_ATTRIBUTES: &str = "x-amz-firehose-common-attributes";
const SOURCE_ARN: &str = "x-amz-firehose-source-arn";
/// The longest source ARN kept (an ARN is at most 2,048 characters).
const MAX_SOURCE_ARN_BYTES: usize = 2048;

/// A request id: 1 to [`MAX_REQUEST_ID_BYTES`] printable ASCII characters.
fn valid_request_id(id: &[u8]) -> Option<String> {
    let ok = !id.is_empty() && id.len() <= MAX_REQUEST_ID_BYTES && id.iter().all(|b| (0x21..0x7f).contains(b));
    // Printable ASCII is UTF-8.
    ok.then(|| String::from_utf8_lossy(id).into_owned())
}

/// Sets `slot` once; a second value of the same header is an error.
fn once<'h>(slot: &mut Option<&'h [u8]>, value: &'h [u8], name: &'static str) -> Result<(), RequestError> {
    if slot.replace(value).is_some() {
        return Err(RequestError::RepeatedHeader(name));
    }
    Ok(())
}

#[derive(Default)]
struct RawHeaders<'h> {
    request_id: Option<&'h [u8]>,
    access_key: Option<&'h [u8]>,
    common_attributes: Option<&'h [u8]>,
    source_arn: Option<&'h [u8]>,
    content_encoding: Option<&'h [u8]>,
    content_type: Option<&'h [u8]>,
}

impl<'h> RawHeaders<'h> {
    fn collect(headers: &[(&str, &'h [u8])]) -> Result<RawHeaders<'h>, RequestError> {
        let mut raw = RawHeaders::default();
        for (name, value) in headers {
            let name = name.to_ascii_lowercase();
            match name.as_str() {
                REQUEST_ID => once(&mut raw.request_id, value, "X-Amz-Firehose-Request-Id")?,
                ACCESS_KEY => once(&mut raw.access_key, value, "X-Amz-Firehose-Access-Key")?,
                COMMON_ATTRIBUTES => once(&mut raw.common_attributes, value, "X-Amz-Firehose-Common-Attributes")?,
                SOURCE_ARN => once(&mut raw.source_arn, value, "X-Amz-Firehose-Source-Arn")?,
                "content-encoding" => once(&mut raw.content_encoding, value, "Content-Encoding")?,
                "content-type" => once(&mut raw.content_type, value, "Content-Type")?,
                _ => {}
            }
        }
        Ok(raw)
    }
}

fn parse_encoding(value: Option<&[u8]>) -> Result<ContentEncoding, RequestError> {
    let Some(value) = value else { return Ok(ContentEncoding::Identity) };
    let value = value.trim_ascii();
    if value.eq_ignore_ascii_case(b"gzip") || value.eq_ignore_ascii_case(b"x-gzip") {
        Ok(ContentEncoding::Gzip)
    } else if value.eq_ignore_ascii_case(b"identity") {
        Ok(ContentEncoding::Identity)
    } else {
        Err(RequestError::UnsupportedContentEncoding)
    }
}

/// `application/json`, parameters allowed; an absent type is accepted too.
fn check_content_type(value: Option<&[u8]>) -> Result<(), RequestError> {
    let Some(value) = value else { return Ok(()) };
    let essence = value.split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
    if essence.eq_ignore_ascii_case(b"application/json") {
        Ok(())
    } else {
        Err(RequestError::UnsupportedContentType)
    }
}

/// `{"commonAttributes": {name: value, ...}}`, bounded.
fn parse_common_attributes(value: &[u8]) -> Result<Vec<(String, String)>, RequestError> {
    #[derive(serde::Deserialize)]
    struct Header {
        #[serde(rename = "commonAttributes", default)]
        common_attributes: serde_json::Map<String, serde_json::Value>,
    }
    if value.len() > MAX_COMMON_ATTRIBUTES_BYTES || !value.trim_ascii_start().starts_with(b"{") {
        return Err(RequestError::InvalidCommonAttributes);
    }
    let header: Header = serde_json::from_slice(value).map_err(|_| RequestError::InvalidCommonAttributes)?;
    if header.common_attributes.len() > MAX_COMMON_ATTRIBUTES {
        return Err(RequestError::InvalidCommonAttributes);
    }
    let mut out = Vec::with_capacity(header.common_attributes.len());
    for (name, value) in header.common_attributes {
        let serde_json::Value::String(value) = value else {
            return Err(RequestError::InvalidCommonAttributes);
        };
        out.push((name, value));
    }
    Ok(out)
}

/// The request id to echo in an error response when the head itself was
/// refused: the first `X-Amz-Firehose-Request-Id` that is a valid id.
pub fn header_request_id(headers: &[(&str, &[u8])]) -> Option<String> {
    headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(REQUEST_ID)).find_map(|(_, v)| valid_request_id(v))
}

impl RequestHead {
    /// Checks the method and reads the headers (`(name, value)`, names in any
    /// case). The access key is read here and checked by
    /// [`super::AccessKeys::check`].
    pub fn parse(method: &str, headers: &[(&str, &[u8])]) -> Result<RequestHead, RequestError> {
        if method != "POST" {
            return Err(RequestError::MethodNotAllowed);
        }
        let raw = RawHeaders::collect(headers)?;
        let request_id = match raw.request_id {
            Some(v) => Some(valid_request_id(v).ok_or(RequestError::InvalidRequestId)?),
            None => None,
        };
        let encoding = parse_encoding(raw.content_encoding)?;
        check_content_type(raw.content_type)?;
        let common_attributes = match raw.common_attributes {
            Some(v) => parse_common_attributes(v)?,
            None => Vec::new(),
        };
        let source_arn =
            raw.source_arn.filter(|v| v.len() <= MAX_SOURCE_ARN_BYTES).map(|v| String::from_utf8_lossy(v).into_owned());
        Ok(RequestHead {
            request_id,
            access_key: raw.access_key.map(<[u8]>::to_vec),
            encoding,
            common_attributes,
            source_arn,
        })
    }

    /// Reads the headers of an `http`/hyper request.
    pub fn from_http(method: &hyper::Method, headers: &hyper::HeaderMap) -> Result<RequestHead, RequestError> {
        let pairs: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
        RequestHead::parse(method.as_str(), &pairs)
    }

    /// The request's id: the header's, which the body's `requestId` must
    /// equal when both are present ("Same as the value in the
    /// X-Amz-Firehose-Request-Id header"); the body's alone when the header
    /// is absent (moto sends none); an error when neither is present.
    pub fn reconcile_request_id(&self, body_id: Option<&str>) -> Result<String, RequestError> {
        match (&self.request_id, body_id) {
            (Some(h), Some(b)) if h.as_str() == b => Ok(h.clone()),
            (Some(_), Some(_)) => Err(RequestError::RequestIdMismatch),
            (Some(h), None) => Ok(h.clone()),
            (None, Some(b)) => valid_request_id(b.as_bytes()).ok_or(RequestError::InvalidRequestId),
            (None, None) => Err(RequestError::MissingRequestId),
        }
    }
}

/// Grows `out` by at most `n` bytes of capacity, never past `limit`, so the
/// buffer's capacity stays within the cap (no doubling past it).
fn reserve_within(out: &mut Vec<u8>, n: usize, limit: usize) {
    if out.capacity() - out.len() < n {
        let want = out.len().max(INFLATE_CHUNK).min(limit.saturating_sub(out.len())).max(n);
        out.reserve_exact(want);
    }
}

/// Inflates gzip `input` (several members allowed) into `out`, at most `limit`
/// bytes. `Ok(false)` when the output would pass `limit`; `Err` when the input
/// is not gzip. `grow` is told each new capacity before it is allocated and
/// may refuse it.
/// `chunk` is the read buffer (any non-zero size; reused across calls).
pub(crate) fn inflate_capped(
    input: &[u8],
    limit: usize,
    out: &mut Vec<u8>,
    chunk: &mut [u8],
    grow: &mut dyn FnMut(usize) -> Result<(), RequestError>,
) -> Result<Result<(), RequestError>, std::io::Error> {
    out.clear();
    let mut decoder = MultiGzDecoder::new(input);
    loop {
        let n = decoder.read(chunk)?;
        if n == 0 {
            return Ok(Ok(()));
        }
        if out.len() + n > limit {
            return Ok(Err(RequestError::DecompressedTooLarge));
        }
        let before = out.capacity();
        reserve_within(out, n, limit);
        if out.capacity() > before {
            if let Err(e) = grow(out.capacity()) {
                return Ok(Err(e));
            }
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// The body as JSON text: `raw` itself, or its decompressed copy (at most
/// [`MAX_DECOMPRESSED_BODY_BYTES`], held in `reservation` on top of the raw
/// bytes).
pub fn decode_body<'b>(
    encoding: ContentEncoding,
    raw: &'b [u8],
    reservation: &mut Reservation,
) -> Result<Cow<'b, [u8]>, RequestError> {
    if raw.len() > MAX_BODY_BYTES {
        return Err(RequestError::BodyTooLarge);
    }
    reservation.ensure(raw.len())?;
    match encoding {
        ContentEncoding::Identity => Ok(Cow::Borrowed(raw)),
        ContentEncoding::Gzip => {
            // On top of whatever holds the raw body (its buffer's capacity).
            let base = reservation.bytes();
            let mut out = Vec::new();
            let mut grow = |cap: usize| reservation.ensure(base + cap);
            let mut chunk = vec![0u8; INFLATE_CHUNK];
            match inflate_capped(raw, MAX_DECOMPRESSED_BODY_BYTES, &mut out, &mut chunk, &mut grow) {
                Ok(Ok(())) => Ok(Cow::Owned(out)),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(RequestError::InvalidGzip),
            }
        }
    }
}

/// A request body collected chunk by chunk: never more than
/// [`MAX_BODY_BYTES`], and every byte of its capacity held in the request's
/// [`Reservation`] before it is allocated.
#[derive(Debug)]
pub struct BodyBuffer {
    bytes: Vec<u8>,
    reservation: Reservation,
}

impl BodyBuffer {
    /// Starts a body; a `Content-Length` over the cap is refused before any
    /// byte is read, and a valid one is reserved at once.
    pub fn new(mut reservation: Reservation, content_length: Option<u64>) -> Result<BodyBuffer, RequestError> {
        let mut bytes = Vec::new();
        if let Some(len) = content_length {
            let len = usize::try_from(len).map_err(|_| RequestError::BodyTooLarge)?;
            if len > MAX_BODY_BYTES {
                return Err(RequestError::BodyTooLarge);
            }
            reservation.ensure(len)?;
            bytes.reserve_exact(len);
        }
        Ok(BodyBuffer { bytes, reservation })
    }

    /// Appends a chunk as it arrives.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), RequestError> {
        let len = self.bytes.len() + chunk.len();
        if len > MAX_BODY_BYTES {
            return Err(RequestError::BodyTooLarge);
        }
        if self.bytes.capacity() < len {
            let want = len.max(self.bytes.capacity() * 2).min(MAX_BODY_BYTES);
            self.reservation.ensure(want)?;
            self.bytes.reserve_exact(want - self.bytes.len());
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The body and the reservation that holds it (and will hold its
    /// decompressed copy).
    pub fn into_parts(self) -> (Vec<u8>, Reservation) {
        (self.bytes, self.reservation)
    }
}

/// What the envelope held besides the records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// The body's `requestId`.
    pub request_id: Option<String>,
    /// The body's `timestamp` (ms since the epoch), when an integer.
    pub timestamp_ms: Option<u64>,
    /// Records read.
    pub records: usize,
}

/// A string field, borrowed from the body when it has no escapes.
struct CowStr;

impl<'de> Visitor<'de> for CowStr {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

impl<'de> DeserializeSeed<'de> for CowStr {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

/// Reads the envelope and calls `on_record` with each record's `data`, in
/// order, as it is read. Records past [`MAX_RECORDS`] stop the read with
/// [`RequestError::TooManyRecords`].
pub fn read_envelope(body: &[u8], mut on_record: impl FnMut(&str)) -> Result<Envelope, RequestError> {
    let mut state = EnvelopeState { on_record: &mut on_record, too_many: false };
    let mut de = serde_json::Deserializer::from_slice(body);
    let result = EnvelopeSeed { state: &mut state }.deserialize(&mut de).and_then(|env| de.end().map(|()| env));
    match result {
        Ok(env) => Ok(env),
        Err(_) if state.too_many => Err(RequestError::TooManyRecords),
        Err(e) => {
            // serde's message can quote a whole string value of the body.
            let mut text = e.to_string();
            text.truncate(text.floor_char_boundary(MAX_BODY_ERROR_CHARS));
            Err(RequestError::InvalidBody(text))
        }
    }
}

struct EnvelopeState<'f> {
    on_record: &'f mut dyn FnMut(&str),
    too_many: bool,
}

struct EnvelopeSeed<'s, 'f> {
    state: &'s mut EnvelopeState<'f>,
}

impl<'de> DeserializeSeed<'de> for EnvelopeSeed<'_, '_> {
    type Value = Envelope;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Envelope, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EnvelopeSeed<'_, '_> {
    type Value = Envelope;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with requestId, timestamp and records")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
        let mut env = Envelope::default();
        let mut seen_records = false;
        while let Some(key) = map.next_key_seed(CowStr)? {
            match key.as_ref() {
                "requestId" if env.request_id.is_none() => {
                    env.request_id = Some(map.next_value_seed(CowStr)?.into_owned());
                }
                "timestamp" => env.timestamp_ms = map.next_value::<serde_json::Value>()?.as_u64(),
                "records" if !seen_records => {
                    seen_records = true;
                    env.records = map.next_value_seed(RecordsSeed { state: &mut *self.state })?;
                }
                "requestId" | "records" => return Err(de::Error::custom(format!("duplicate field `{key}`"))),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !seen_records {
            return Err(de::Error::missing_field("records"));
        }
        Ok(env)
    }
}

struct RecordsSeed<'s, 'f> {
    state: &'s mut EnvelopeState<'f>,
}

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_, '_> {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'_, '_> {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut n = 0usize;
        while let Some(data) = seq.next_element_seed(RecordSeed)? {
            n += 1;
            if n > MAX_RECORDS {
                self.state.too_many = true;
                return Err(de::Error::custom("too many records"));
            }
            (self.state.on_record)(data.as_deref().unwrap_or(""));
        }
        Ok(n)
    }
}

/// One record `{"data": "..."}`; other keys are ignored. A record without
/// `data` is read as empty data.
struct RecordSeed;

impl<'de> DeserializeSeed<'de> for RecordSeed {
    type Value = Option<Cow<'de, str>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed {
    type Value = Option<Cow<'de, str>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record object with data")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut data = None;
        while let Some(key) = map.next_key_seed(CowStr)? {
            if key == "data" && data.is_none() {
                data = Some(map.next_value_seed(CowStr)?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::firehose::Budget;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn head_reads_every_firehose_header() {
        let head = RequestHead::parse(
            "POST",
            &[
                ("X-Amz-Firehose-Request-Id", b"ed4acda5-034f-9f42-bba1-f29aea6d7d8f"),
                ("x-amz-firehose-access-key", b"k"),
                ("X-Amz-Firehose-Common-Attributes", br#"{"commonAttributes":{"env":"prod","empty":""}}"#),
                ("X-Amz-Firehose-Source-Arn", b"arn:aws:firehose:us-east-1:123456789:deliverystream/s"),
                ("X-Amz-Firehose-Protocol-Version", b"1.0"),
                ("Content-Type", b"application/json"),
                ("Content-Encoding", b"gzip"),
            ],
        )
        .unwrap();
        assert_eq!(head.request_id.as_deref(), Some("ed4acda5-034f-9f42-bba1-f29aea6d7d8f"));
        assert_eq!(head.access_key.as_deref(), Some(&b"k"[..]));
        assert_eq!(head.encoding, ContentEncoding::Gzip);
        assert_eq!(head.common_attributes, vec![("empty".into(), String::new()), ("env".into(), "prod".into())]);
        assert!(head.source_arn.unwrap().ends_with("deliverystream/s"));
    }

    #[test]
    fn head_errors() {
        let p = |m: &str, h: &[(&str, &[u8])]| RequestHead::parse(m, h).unwrap_err();
        assert_eq!(p("GET", &[]), RequestError::MethodNotAllowed);
        assert_eq!(p("POST", &[("X-Amz-Firehose-Request-Id", b"")]), RequestError::InvalidRequestId);
        assert_eq!(p("POST", &[("X-Amz-Firehose-Request-Id", b"a b")]), RequestError::InvalidRequestId);
        let long = vec![b'a'; MAX_REQUEST_ID_BYTES + 1];
        assert_eq!(p("POST", &[("X-Amz-Firehose-Request-Id", &long)]), RequestError::InvalidRequestId);
        assert_eq!(
            p("POST", &[("x-amz-firehose-access-key", b"a"), ("X-Amz-Firehose-Access-Key", b"b")]),
            RequestError::RepeatedHeader("X-Amz-Firehose-Access-Key")
        );
        assert_eq!(p("POST", &[("Content-Encoding", b"br")]), RequestError::UnsupportedContentEncoding);
        assert_eq!(p("POST", &[("Content-Type", b"text/plain")]), RequestError::UnsupportedContentType);
        for bad in [&b"{"[..], br#"{"commonAttributes":{"a":1}}"#, br#"[]"#] {
            assert_eq!(p("POST", &[("X-Amz-Firehose-Common-Attributes", bad)]), RequestError::InvalidCommonAttributes);
        }
        let many: String = (0..=MAX_COMMON_ATTRIBUTES).map(|i| format!("\"k{i}\":\"v\"")).collect::<Vec<_>>().join(",");
        let many = format!("{{\"commonAttributes\":{{{many}}}}}");
        assert_eq!(
            p("POST", &[("X-Amz-Firehose-Common-Attributes", many.as_bytes())]),
            RequestError::InvalidCommonAttributes
        );
    }

    #[test]
    fn head_from_a_hyper_header_map() {
        let mut headers = hyper::HeaderMap::new();
        headers.insert("x-amz-firehose-request-id", hyper::header::HeaderValue::from_static("abc"));
        headers.insert("content-encoding", hyper::header::HeaderValue::from_static("gzip"));
        let head = RequestHead::from_http(&hyper::Method::POST, &headers).unwrap();
        assert_eq!((head.request_id.as_deref(), head.encoding), (Some("abc"), ContentEncoding::Gzip));
        assert_eq!(RequestHead::from_http(&hyper::Method::PUT, &headers), Err(RequestError::MethodNotAllowed));
        assert_eq!(
            header_request_id(&[("X-AMZ-FIREHOSE-REQUEST-ID", b"bad id"), ("x-amz-firehose-request-id", b"ok")]),
            Some("ok".into())
        );
    }

    #[test]
    fn head_accepts_json_with_parameters_and_no_type() {
        assert!(RequestHead::parse("POST", &[("content-type", b"application/json; charset=utf-8")]).is_ok());
        assert!(RequestHead::parse("POST", &[]).is_ok());
    }

    #[test]
    fn request_id_reconciliation() {
        let with = |id: Option<&str>| RequestHead {
            request_id: id.map(str::to_owned),
            access_key: None,
            encoding: ContentEncoding::Identity,
            common_attributes: vec![],
            source_arn: None,
        };
        assert_eq!(with(Some("a")).reconcile_request_id(Some("a")).unwrap(), "a");
        assert_eq!(with(Some("a")).reconcile_request_id(None).unwrap(), "a");
        assert_eq!(with(None).reconcile_request_id(Some("b")).unwrap(), "b");
        assert_eq!(with(Some("a")).reconcile_request_id(Some("b")), Err(RequestError::RequestIdMismatch));
        assert_eq!(with(None).reconcile_request_id(None), Err(RequestError::MissingRequestId));
        assert_eq!(with(None).reconcile_request_id(Some("")), Err(RequestError::InvalidRequestId));
    }

    #[test]
    fn envelope_streams_records_in_order() {
        let body = br#"{"requestId":"r","timestamp":1578090901599,"records":[{"data":"aGVsbG8="},{"data":"aGVsbG8gd29ybGQ="},{}],"extra":[1]}"#;
        let mut seen = Vec::new();
        let env = read_envelope(body, |d| seen.push(d.to_owned())).unwrap();
        assert_eq!(env, Envelope { request_id: Some("r".into()), timestamp_ms: Some(1578090901599), records: 3 });
        assert_eq!(seen, vec!["aGVsbG8=", "aGVsbG8gd29ybGQ=", ""]);
    }

    #[test]
    fn envelope_errors() {
        let e = |b: &[u8]| read_envelope(b, |_| {}).unwrap_err();
        assert!(matches!(e(b"{\"requestId\":\"r\"}"), RequestError::InvalidBody(_)));
        assert!(matches!(e(b"[]"), RequestError::InvalidBody(_)));
        assert!(matches!(e(b"{\"records\":[{\"data\":1}]}"), RequestError::InvalidBody(_)));
        assert!(matches!(e(b"{\"records\":[]} trailing"), RequestError::InvalidBody(_)));
        assert!(matches!(e(b"{\"records\":[],\"records\":[]}"), RequestError::InvalidBody(_)));
        let quoted = format!("{{\"records\":[\"{}\"]}}", "x".repeat(100_000));
        let RequestError::InvalidBody(text) = e(quoted.as_bytes()) else { panic!() };
        assert!(text.len() <= MAX_BODY_ERROR_CHARS, "{}", text.len());
        let many = format!("{{\"records\":[{}]}}", vec!["{\"data\":\"\"}"; MAX_RECORDS + 1].join(","));
        assert_eq!(e(many.as_bytes()), RequestError::TooManyRecords);
        let exact = format!("{{\"records\":[{}]}}", vec!["{\"data\":\"\"}"; MAX_RECORDS].join(","));
        assert_eq!(read_envelope(exact.as_bytes(), |_| {}).unwrap().records, MAX_RECORDS);
    }

    #[test]
    fn escaped_data_is_read_too() {
        let mut seen = Vec::new();
        read_envelope(br#"{"records":[{"data":"YQ\u003d\u003d"}]}"#, |d| seen.push(d.to_owned())).unwrap();
        assert_eq!(seen, vec!["YQ=="]);
    }

    #[test]
    fn body_decoding_caps_and_reserves() {
        let budget = Budget::unlimited();
        let mut r = budget.reserve();
        let plain = br#"{"records":[]}"#;
        assert_eq!(&*decode_body(ContentEncoding::Identity, plain, &mut r).unwrap(), plain);
        let mut r = budget.reserve();
        let z = gzip(plain);
        assert_eq!(&*decode_body(ContentEncoding::Gzip, &z, &mut r).unwrap(), plain);
        assert!(r.bytes() >= z.len() + plain.len());
        let mut r = budget.reserve();
        assert_eq!(decode_body(ContentEncoding::Gzip, b"not gzip", &mut r).unwrap_err(), RequestError::InvalidGzip);
        let small = Budget::new(100);
        let mut r = small.reserve();
        let big = gzip(&vec![b' '; 10_000]);
        assert_eq!(decode_body(ContentEncoding::Gzip, &big, &mut r).unwrap_err(), RequestError::Busy);
    }

    #[test]
    fn inflate_stops_at_the_cap_without_growing_past_it() {
        let z = gzip(&vec![0u8; 1_000_000]);
        let mut out = Vec::new();
        let mut chunk = vec![0u8; INFLATE_CHUNK];
        let got = inflate_capped(&z, 300_000, &mut out, &mut chunk, &mut |_| Ok(())).unwrap();
        assert_eq!(got, Err(RequestError::DecompressedTooLarge));
        assert!(out.len() <= 300_000 && out.capacity() <= 300_000, "{} {}", out.len(), out.capacity());
        let got = inflate_capped(&z, 1_000_000, &mut out, &mut chunk, &mut |_| Ok(())).unwrap();
        assert_eq!(got, Ok(()));
        assert_eq!(out.len(), 1_000_000);
    }

    #[test]
    fn body_buffer_caps_and_reserves_its_capacity() {
        let budget = Budget::new(MAX_BODY_BYTES + 10);
        let mut body = BodyBuffer::new(budget.reserve(), None).unwrap();
        for _ in 0..100 {
            body.push(&[b'x'; 1000]).unwrap();
        }
        assert_eq!(body.len(), 100_000);
        let (bytes, reservation) = body.into_parts();
        assert!(reservation.bytes() >= bytes.capacity(), "{} < {}", reservation.bytes(), bytes.capacity());
        drop(reservation);
        assert_eq!(
            BodyBuffer::new(budget.reserve(), Some(MAX_BODY_BYTES as u64 + 1)).unwrap_err(),
            RequestError::BodyTooLarge
        );
        let mut body = BodyBuffer::new(budget.reserve(), Some(10)).unwrap();
        assert_eq!(budget.available(), MAX_BODY_BYTES);
        body.push(&[0; 10]).unwrap();
        let big = vec![0u8; MAX_BODY_BYTES - 10];
        body.push(&big).unwrap();
        assert_eq!(body.push(b"!"), Err(RequestError::BodyTooLarge));
        let small = Budget::new(100);
        let mut body = BodyBuffer::new(small.reserve(), None).unwrap();
        assert_eq!(body.push(&[0; 101]), Err(RequestError::Busy));
    }

    #[test]
    fn multi_member_gzip_is_one_body() {
        let mut z = gzip(b"{\"records\":");
        z.extend(gzip(b"[]}"));
        let budget = Budget::unlimited();
        let mut r = budget.reserve();
        assert_eq!(&*decode_body(ContentEncoding::Gzip, &z, &mut r).unwrap(), b"{\"records\":[]}");
    }
}
