//! Firehose requests as the HTTP endpoint delivery specification describes
//! them, for the receiver's tests (tests/firehose_protocol.rs without a
//! listener, tests/firehose_receiver.rs against the binary): base64 and gzip,
//! CloudWatch Logs subscription payloads, the JSON envelope, the headers
//! Firehose sends, and gzip bombs written without holding their inflated size.

use std::io::Write;

use base64::Engine;
use flate2::write::GzEncoder;

/// A default-format (version 2) flow-log line of interface eni-0a1b2c3d, ACCEPT.
pub const LINE: &str =
    "2 123456789012 eni-0a1b2c3d 10.0.0.1 10.0.0.2 443 49152 6 10 840 1600000000 1600000060 ACCEPT OK";

/// Standard base64 with padding, as Firehose encodes a record's data.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("gzip into memory");
    e.finish().expect("gzip into memory")
}

/// `prefix`, then `filler` up to `inflated` bytes in all, then `suffix`,
/// gzipped at the best ratio and written in 1 MiB pieces (never all of it
/// in memory): a small body that inflates past a cap.
pub fn gzip_bomb(prefix: &[u8], filler: u8, inflated: usize, suffix: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(prefix).expect("gzip into memory");
    let piece = vec![filler; 1024 * 1024];
    let mut left = inflated.saturating_sub(prefix.len() + suffix.len());
    while left > 0 {
        let n = left.min(piece.len());
        e.write_all(&piece[..n]).expect("gzip into memory");
        left -= n;
    }
    e.write_all(suffix).expect("gzip into memory");
    e.finish().expect("gzip into memory")
}

/// A CloudWatch Logs subscription payload as CloudWatch Logs writes it (not
/// yet gzipped): `DATA_MESSAGE` or `CONTROL_MESSAGE`, one event a message.
pub fn cwl(message_type: &str, group: &str, messages: &[&str]) -> Vec<u8> {
    let events: Vec<_> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            serde_json::json!({"id": format!("{:056}", i), "timestamp": 1_510_109_208_016u64 + i as u64, "message": m})
        })
        .collect();
    serde_json::json!({
        "messageType": message_type, "owner": "123456789012", "logGroup": group,
        "logStream": "eni-0a1b2c3d-all", "subscriptionFilters": ["to-firehose"], "logEvents": events,
    })
    .to_string()
    .into_bytes()
}

/// The JSON body Firehose sends, each record's `data` field as given
/// (base64, or something else for the tests of bad records).
pub fn envelope(request_id: &str, data: &[String]) -> Vec<u8> {
    let records: Vec<_> = data.iter().map(|d| serde_json::json!({ "data": d })).collect();
    serde_json::json!({"requestId": request_id, "timestamp": 1_578_090_901_599u64, "records": records})
        .to_string()
        .into_bytes()
}

/// The JSON body Firehose sends for `records` (each before base64).
pub fn body(request_id: &str, records: &[Vec<u8>]) -> Vec<u8> {
    envelope(request_id, &records.iter().map(|r| b64(r)).collect::<Vec<_>>())
}

/// Every header Firehose sends with a request (the access key only when
/// `key` is set, `Content-Encoding: gzip` only when `gzip_on`).
pub fn headers(request_id: &str, key: Option<&str>, gzip_on: bool) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = [
        ("X-Amz-Firehose-Protocol-Version", "1.0"),
        ("X-Amz-Firehose-Request-Id", request_id),
        ("X-Amz-Firehose-Source-Arn", "arn:aws:firehose:us-east-1:123456789012:deliverystream/flows"),
        ("X-Amz-Firehose-Common-Attributes", r#"{"commonAttributes":{"env":"test"}}"#),
        ("Content-Type", "application/json"),
        ("User-Agent", "Amazon Kinesis Data Firehose Agent/1.0"),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), v.to_owned()))
    .collect();
    if let Some(key) = key {
        h.push(("X-Amz-Firehose-Access-Key".to_owned(), key.to_owned()));
    }
    if gzip_on {
        h.push(("Content-Encoding".to_owned(), "gzip".to_owned()));
    }
    h
}

/// A whole request: [`headers`] and the [`envelope`] of `data`, gzipped
/// when `gzip_on`.
pub fn request(
    request_id: &str,
    key: Option<&str>,
    gzip_on: bool,
    data: &[String],
) -> (Vec<(String, String)>, Vec<u8>) {
    let body = envelope(request_id, data);
    let body = if gzip_on { gzip(&body) } else { body };
    (headers(request_id, key, gzip_on), body)
}
