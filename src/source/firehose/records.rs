//! Firehose records → flow-log lines. A record's `data` is base64; once
//! decoded (and gunzipped when it starts with the gzip magic bytes) it is one
//! of:
//!
//! * a CloudWatch Logs subscription payload `{"messageType": ..., "logGroup":
//!   ..., "logEvents": [{"message": ...}]}` (gzip as CloudWatch Logs sends it,
//!   or already decompressed by Firehose): `DATA_MESSAGE` → each event's
//!   message is a line of its log group; `CONTROL_MESSAGE` → skipped, counted;
//! * `{"message": "..."}` objects → their messages' lines;
//! * any other JSON object → one line (a flow record already in JSON);
//! * text (direct VPC delivery, or CloudWatch Logs messages extracted by
//!   Firehose) → one line per `\n`-separated line, empty lines skipped.
//!
//! A record that cannot be read is counted by [`InvalidReason`] and never
//! stops the other records. Lines go to a [`LineSink`], which parses them as
//! a stream: a header-looking line is an invalid line there.

use std::borrow::Cow;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde::Deserialize;

use super::request::{inflate_capped, RequestError, INFLATE_CHUNK, MAX_RECORD_DATA_CHARS};

/// The largest record once gunzipped. A CloudWatch Logs payload holds at most
/// about 1 MiB of events (a `PutLogEvents` batch), a little more once in
/// JSON; beyond this cap the record is invalid (`too_large`).
pub const MAX_RECORD_INFLATED_BYTES: usize = 8 * 1024 * 1024;
/// The most bytes gunzipped from the records of one request, all together: a
/// 64 MiB request of compressed CloudWatch Logs payloads inflates to well under
/// it; past it, the remaining gzip records are invalid (`inflate_budget`).
/// It bounds the CPU one request can cost, not memory (one record is inflated
/// at a time).
pub const MAX_REQUEST_INFLATED_BYTES: usize = 1024 * 1024 * 1024;

/// Base64 as Firehose writes it; padding optional.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Receives the lines of each record, as they are decoded.
pub trait LineSink {
    /// `log_group` is the CloudWatch Logs log group of a subscription payload
    /// (its lines are parsed with that group's format), `None` for the other
    /// kinds (the Firehose source's `log_format`).
    fn lines(&mut self, log_group: Option<&str>, lines: &mut dyn Iterator<Item = &[u8]>);
}

/// What a record was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// A CloudWatch Logs `DATA_MESSAGE`.
    CloudWatchData,
    /// A CloudWatch Logs `CONTROL_MESSAGE` (skipped).
    CloudWatchControl,
    /// Flow-log lines: text, `{"message": ...}` or JSON flow records.
    Lines,
    /// No data, or only blank lines.
    Empty,
    Invalid(InvalidReason),
}

/// Why a record could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidReason {
    Base64,
    Gzip,
    Json,
    TooLarge,
    MessageType,
    InflateBudget,
}

impl InvalidReason {
    pub const ALL: [InvalidReason; 6] = [
        InvalidReason::Base64,
        InvalidReason::Gzip,
        InvalidReason::Json,
        InvalidReason::TooLarge,
        InvalidReason::MessageType,
        InvalidReason::InflateBudget,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidReason::Base64 => "base64",
            InvalidReason::Gzip => "gzip",
            InvalidReason::Json => "json",
            InvalidReason::TooLarge => "too_large",
            InvalidReason::MessageType => "message_type",
            InvalidReason::InflateBudget => "inflate_budget",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl RecordKind {
    /// Every kind's label, `invalid` once.
    pub const LABELS: [&'static str; 5] = ["cloudwatch_data", "cloudwatch_control", "lines", "empty", "invalid"];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::CloudWatchData => Self::LABELS[0],
            RecordKind::CloudWatchControl => Self::LABELS[1],
            RecordKind::Lines => Self::LABELS[2],
            RecordKind::Empty => Self::LABELS[3],
            RecordKind::Invalid(_) => Self::LABELS[4],
        }
    }

    fn index(self) -> usize {
        match self {
            RecordKind::CloudWatchData => 0,
            RecordKind::CloudWatchControl => 1,
            RecordKind::Lines => 2,
            RecordKind::Empty => 3,
            RecordKind::Invalid(_) => 4,
        }
    }
}

/// Counts over the records of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordStats {
    kinds: [u64; 5],
    invalid: [u64; 6],
    /// Lines handed to the sink.
    pub lines: u64,
    /// Bytes gunzipped from gzip records.
    pub inflated_bytes: u64,
}

impl RecordStats {
    /// Records of `kind` (for `Invalid`, of every reason).
    pub fn records(&self, kind: RecordKind) -> u64 {
        self.kinds[kind.index()]
    }

    /// Invalid records of one reason.
    pub fn invalid(&self, reason: InvalidReason) -> u64 {
        self.invalid[reason.index()]
    }

    /// Every record.
    pub fn total(&self) -> u64 {
        self.kinds.iter().sum()
    }

    fn add(&mut self, kind: RecordKind) {
        self.kinds[kind.index()] += 1;
        if let RecordKind::Invalid(reason) = kind {
            self.invalid[reason.index()] += 1;
        }
    }
}

/// One JSON value of a decoded record. Unknown keys are ignored, so a flow
/// record in JSON reads as a value without `messageType` or `message`.
#[derive(Deserialize)]
struct JsonRecord<'a> {
    #[serde(rename = "messageType", borrow, default)]
    message_type: Option<Cow<'a, str>>,
    #[serde(rename = "logGroup", borrow, default)]
    log_group: Option<Cow<'a, str>>,
    #[serde(rename = "logEvents", borrow, default)]
    log_events: Vec<LogEvent<'a>>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct LogEvent<'a> {
    #[serde(borrow)]
    message: Cow<'a, str>,
}

/// Decodes the records of one request, reusing its buffers from record to
/// record: at most one record's decoded and gunzipped bytes are held.
pub struct RecordDecoder {
    decoded: Vec<u8>,
    inflated: Vec<u8>,
    chunk: Vec<u8>,
    stats: RecordStats,
}

impl Default for RecordDecoder {
    fn default() -> Self {
        RecordDecoder::new()
    }
}

impl RecordDecoder {
    pub fn new() -> RecordDecoder {
        RecordDecoder { decoded: Vec::new(), inflated: Vec::new(), chunk: Vec::new(), stats: RecordStats::default() }
    }

    pub fn stats(&self) -> &RecordStats {
        &self.stats
    }

    pub fn into_stats(self) -> RecordStats {
        self.stats
    }

    /// Decodes one record's `data` and hands its lines to `sink`.
    pub fn decode<S: LineSink + ?Sized>(&mut self, data: &str, sink: &mut S) -> RecordKind {
        let kind = self.decode_inner(data, sink);
        self.stats.add(kind);
        kind
    }

    fn decode_inner<S: LineSink + ?Sized>(&mut self, data: &str, sink: &mut S) -> RecordKind {
        if data.len() > MAX_RECORD_DATA_CHARS {
            return RecordKind::Invalid(InvalidReason::TooLarge);
        }
        self.decoded.clear();
        if BASE64.decode_vec(data, &mut self.decoded).is_err() {
            return RecordKind::Invalid(InvalidReason::Base64);
        }
        if !self.decoded.starts_with(&[0x1f, 0x8b]) {
            return deliver(&self.decoded, sink, &mut self.stats.lines);
        }
        if let Err(reason) = self.inflate() {
            return RecordKind::Invalid(reason);
        }
        deliver(&self.inflated, sink, &mut self.stats.lines)
    }

    /// Gunzips `decoded` into `inflated` under both caps.
    fn inflate(&mut self) -> Result<(), InvalidReason> {
        let spent = usize::try_from(self.stats.inflated_bytes).unwrap_or(usize::MAX);
        let left = MAX_REQUEST_INFLATED_BYTES.saturating_sub(spent);
        let (limit, over) = if left < MAX_RECORD_INFLATED_BYTES {
            (left, InvalidReason::InflateBudget)
        } else {
            (MAX_RECORD_INFLATED_BYTES, InvalidReason::TooLarge)
        };
        if self.chunk.is_empty() {
            self.chunk = vec![0u8; INFLATE_CHUNK];
        }
        let result = inflate_capped(&self.decoded, limit, &mut self.inflated, &mut self.chunk, &mut |_| Ok(()));
        self.stats.inflated_bytes += self.inflated.len() as u64;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(RequestError::DecompressedTooLarge)) => Err(over),
            Ok(Err(_)) | Err(_) => Err(InvalidReason::Gzip),
        }
    }
}

/// Hands a decoded record's lines to `sink`, counting them in `lines`.
fn deliver<S: LineSink + ?Sized>(payload: &[u8], sink: &mut S, lines: &mut u64) -> RecordKind {
    match payload.iter().find(|b| !b.is_ascii_whitespace()) {
        None => RecordKind::Empty,
        Some(b'{') => deliver_json(payload, sink, lines),
        Some(_) => {
            let mut it = text_lines(payload).inspect(|_| *lines += 1);
            sink.lines(None, &mut it);
            RecordKind::Lines
        }
    }
}

/// The non-empty `\n`-separated lines of `text`, without a trailing `\r`.
fn text_lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l)).filter(|l| !l.trim_ascii().is_empty())
}

/// A record of JSON values: all of them are read before any line is handed
/// over, so a record is delivered whole or counted invalid.
fn deliver_json<S: LineSink + ?Sized>(payload: &[u8], sink: &mut S, lines: &mut u64) -> RecordKind {
    let mut values = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(payload).into_iter::<JsonRecord<'_>>();
    let mut start = 0;
    while let Some(next) = stream.next() {
        let Ok(value) = next else { return RecordKind::Invalid(InvalidReason::Json) };
        let end = stream.byte_offset();
        values.push((value, payload[start..end].trim_ascii()));
        start = end;
    }
    let mut kind = None;
    for (value, raw) in &values {
        let this = deliver_value(value, raw, sink, lines);
        if let RecordKind::Invalid(_) = this {
            return this;
        }
        kind.get_or_insert(this);
    }
    kind.unwrap_or(RecordKind::Empty)
}

fn deliver_value<S: LineSink + ?Sized>(
    value: &JsonRecord<'_>,
    raw: &[u8],
    sink: &mut S,
    lines: &mut u64,
) -> RecordKind {
    match (value.message_type.as_deref(), &value.message) {
        (Some("DATA_MESSAGE"), _) => {
            let mut it = value.log_events.iter().map(|e| e.message.as_bytes()).inspect(|_| *lines += 1);
            sink.lines(value.log_group.as_deref(), &mut it);
            RecordKind::CloudWatchData
        }
        (Some("CONTROL_MESSAGE"), _) => RecordKind::CloudWatchControl,
        (Some(_), _) => RecordKind::Invalid(InvalidReason::MessageType),
        (None, Some(message)) => {
            let mut it = text_lines(message.as_bytes()).inspect(|_| *lines += 1);
            sink.lines(None, &mut it);
            RecordKind::Lines
        }
        (None, None) => {
            *lines += 1;
            sink.lines(None, &mut std::iter::once(raw));
            RecordKind::Lines
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    /// Collects (log group, line) pairs.
    #[derive(Default)]
    struct Collect(Vec<(Option<String>, String)>);

    impl LineSink for Collect {
        fn lines(&mut self, log_group: Option<&str>, lines: &mut dyn Iterator<Item = &[u8]>) {
            for l in lines {
                self.0.push((log_group.map(str::to_owned), String::from_utf8_lossy(l).into_owned()));
            }
        }
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    const LINE: &str = "2 123456789012 eni-1 10.0.0.1 10.0.0.2 443 49152 6 10 840 1600000000 1600000060 ACCEPT OK";

    fn cwl(message_type: &str, group: &str, messages: &[&str]) -> String {
        let events: Vec<_> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| serde_json::json!({"id": i.to_string(), "timestamp": 1510109208016u64, "message": m}))
            .collect();
        serde_json::json!({
            "messageType": message_type, "owner": "123456789012", "logGroup": group,
            "logStream": "eni-1-all", "subscriptionFilters": ["f"], "logEvents": events,
        })
        .to_string()
    }

    fn decode(data: &str) -> (RecordKind, Vec<(Option<String>, String)>) {
        let mut d = RecordDecoder::new();
        let mut sink = Collect::default();
        let kind = d.decode(data, &mut sink);
        assert_eq!(d.stats().lines, sink.0.len() as u64);
        (kind, sink.0)
    }

    #[test]
    fn cloudwatch_payload_gzip_and_decompressed() {
        let payload = cwl("DATA_MESSAGE", "/vpc/flow", &[LINE, LINE]);
        for data in [b64(&gzip(payload.as_bytes())), b64(payload.as_bytes())] {
            let (kind, lines) = decode(&data);
            assert_eq!(kind, RecordKind::CloudWatchData);
            assert_eq!(lines, vec![(Some("/vpc/flow".into()), LINE.into()); 2]);
        }
    }

    #[test]
    fn control_messages_are_skipped() {
        let payload = cwl("CONTROL_MESSAGE", "", &["CWL CONTROL MESSAGE: Checking health of destination Firehose."]);
        let (kind, lines) = decode(&b64(&gzip(payload.as_bytes())));
        assert_eq!(kind, RecordKind::CloudWatchControl);
        assert!(lines.is_empty());
        let (kind, _) = decode(&b64(cwl("OTHER", "g", &[LINE]).as_bytes()));
        assert_eq!(kind, RecordKind::Invalid(InvalidReason::MessageType));
    }

    #[test]
    fn text_lines_and_message_objects() {
        let text = format!("{LINE}\r\n\n{LINE}\n");
        let (kind, lines) = decode(&b64(text.as_bytes()));
        assert_eq!(kind, RecordKind::Lines);
        assert_eq!(lines, vec![(None, LINE.into()); 2]);
        let objects = format!("{}\n{}", serde_json::json!({"message": LINE}), serde_json::json!({"message": LINE}));
        let (kind, lines) = decode(&b64(objects.as_bytes()));
        assert_eq!(kind, RecordKind::Lines);
        assert_eq!(lines, vec![(None, LINE.into()); 2]);
    }

    #[test]
    fn json_flow_records_pass_through_whole() {
        let record = r#"{"version":2,"account-id":"123456789012","action":"ACCEPT"}"#;
        let (kind, lines) = decode(&b64(format!(" {record}\n").as_bytes()));
        assert_eq!(kind, RecordKind::Lines);
        assert_eq!(lines, vec![(None, record.into())]);
    }

    #[test]
    fn header_looking_lines_are_handed_over_as_lines() {
        // The sink's stream parser counts it as invalid; no format change here.
        let (kind, lines) = decode(&b64(b"version account-id interface-id"));
        assert_eq!(kind, RecordKind::Lines);
        assert_eq!(lines.len(), 1);
    }

    #[test]
    fn empty_and_invalid_records() {
        assert_eq!(decode("").0, RecordKind::Empty);
        assert_eq!(decode(&b64(b" \n \n")).0, RecordKind::Empty);
        assert_eq!(decode("not base64!").0, RecordKind::Invalid(InvalidReason::Base64));
        assert_eq!(decode(&b64(&[0x1f, 0x8b, 1, 2, 3])).0, RecordKind::Invalid(InvalidReason::Gzip));
        assert_eq!(decode(&b64(b"{\"message\": ")).0, RecordKind::Invalid(InvalidReason::Json));
        assert_eq!(decode(&b64(b"{\"message\": 5}")).0, RecordKind::Invalid(InvalidReason::Json));
        let long = "A".repeat(MAX_RECORD_DATA_CHARS + 4);
        assert_eq!(decode(&long).0, RecordKind::Invalid(InvalidReason::TooLarge));
    }

    #[test]
    fn unpadded_base64_is_accepted() {
        let (kind, lines) = decode(b64(LINE.as_bytes()).trim_end_matches('='));
        assert_eq!(kind, RecordKind::Lines);
        assert_eq!(lines.len(), 1);
    }

    #[test]
    fn record_gzip_bomb_stops_at_the_record_cap() {
        let bomb = gzip(&vec![b'a'; MAX_RECORD_INFLATED_BYTES + 1]);
        let mut d = RecordDecoder::new();
        let kind = d.decode(&b64(&bomb), &mut Collect::default());
        assert_eq!(kind, RecordKind::Invalid(InvalidReason::TooLarge));
        assert!(d.inflated.capacity() <= MAX_RECORD_INFLATED_BYTES);
        assert_eq!(d.stats().invalid(InvalidReason::TooLarge), 1);
    }

    #[test]
    fn request_inflate_budget_stops_further_gzip_records() {
        let mut d = RecordDecoder::new();
        d.stats.inflated_bytes = (MAX_REQUEST_INFLATED_BYTES - 10) as u64;
        let kind = d.decode(&b64(&gzip(LINE.as_bytes())), &mut Collect::default());
        assert_eq!(kind, RecordKind::Invalid(InvalidReason::InflateBudget));
        // Text records still count.
        assert_eq!(d.decode(&b64(LINE.as_bytes()), &mut Collect::default()), RecordKind::Lines);
        assert_eq!(d.stats().records(RecordKind::Lines), 1);
        assert_eq!(d.stats().total(), 2);
    }
}
