//! The Firehose receiver's protocol layer end to end, without a listener:
//! requests built as the HTTP endpoint delivery specification describes them
//! (headers, gzip or not, every record kind), answered byte for byte as it
//! requires, counted exactly once under retries, and bounded against
//! oversized bodies and gzip bombs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vpc_flow_exporter::source::firehose::{
    header_request_id, respond, Accepted, AccessKeys, ApplyFailed, Budget, Endpoint, InvalidReason, LineSink, Metrics,
    RecentRequests, RecordKind, RequestError, Response, MAX_BODY_BYTES, MAX_DECOMPRESSED_BODY_BYTES, MAX_RECORDS,
};

mod common;

use common::firehose::{b64, cwl, envelope, gzip, gzip_bomb, LINE};

const ID: &str = "ed4acda5-034f-9f42-bba1-f29aea6d7d8f";
const KEY: &str = "my-access-key";
const NOW_MS: u64 = 1_578_090_903_599;

/// Lines in work for one request (provisional), and those applied.
#[derive(Default)]
struct Counting {
    pending: Vec<(Option<String>, Vec<u8>)>,
    applied: BTreeMap<Option<String>, Vec<Vec<u8>>>,
}

impl LineSink for Counting {
    fn lines(&mut self, log_group: Option<&str>, lines: &mut dyn Iterator<Item = &[u8]>) {
        for l in lines {
            self.pending.push((log_group.map(str::to_owned), l.to_vec()));
        }
    }
}

impl Counting {
    fn apply(&mut self) -> Result<(), ApplyFailed> {
        for (g, l) in self.pending.drain(..) {
            self.applied.entry(g).or_default().push(l);
        }
        Ok(())
    }

    fn applied_lines(&self) -> usize {
        self.applied.values().map(Vec::len).sum()
    }
}

struct Req {
    method: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// A request with every header Firehose sends; `records` are each record's
/// data field (base64).
fn firehose_request(request_id: &str, key: Option<&str>, gzip_on: bool, records: &[String]) -> Req {
    let (headers, body) = common::firehose::request(request_id, key, gzip_on, records);
    Req { method: "POST", headers, body }
}

fn header_pairs(req: &Req) -> Vec<(&str, &[u8])> {
    req.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect()
}

fn endpoint(keys: &[&str]) -> Endpoint {
    let keys = if keys.is_empty() { AccessKeys::none() } else { AccessKeys::new(keys).unwrap() };
    Endpoint::new(keys, RecentRequests::new(Duration::from_secs(600), 1000))
}

/// Runs one request as the wiring will: head, body under the budget,
/// handle, response.
fn run(ep: &Endpoint, budget: &Budget, req: &Req, sink: &mut Counting) -> (Result<Accepted, RequestError>, Response) {
    let headers = header_pairs(req);
    let head = match ep.check_head(req.method, &headers) {
        Ok(head) => head,
        Err(e) => {
            let id = header_request_id(&headers);
            let r = Response::error(&e, id.as_deref().unwrap_or(""), NOW_MS);
            return (Err(e), r);
        }
    };
    let mut reservation = budget.reserve();
    let result = ep.handle(&head, &req.body, &mut reservation, sink, Counting::apply, Instant::now());
    if result.is_err() {
        sink.pending.clear();
    }
    let response = respond(&result, head.request_id.as_deref(), NOW_MS);
    (result, response)
}

fn assert_error_body(response: &Response, status: u16, request_id: &str, message: &str) {
    assert_eq!(response.status(), status);
    let expected = format!(r#"{{"requestId":"{request_id}","timestamp":{NOW_MS},"errorMessage":"{message}"}}"#);
    assert_eq!(String::from_utf8(response.body()).unwrap(), expected);
    assert!(response.headers().contains(&("Content-Type", "application/json".to_owned())));
}

#[test]
fn the_specification_example_is_answered_byte_for_byte() {
    let ep = endpoint(&[KEY]);
    let mut sink = Counting::default();
    let req = firehose_request(ID, Some(KEY), false, &["aGVsbG8=".into(), "aGVsbG8gd29ybGQ=".into()]);
    let (result, response) = run(&ep, &Budget::unlimited(), &req, &mut sink);
    let accepted = result.unwrap();
    assert_eq!(accepted.stats.records(RecordKind::Lines), 2);
    assert_eq!(response.status(), 200);
    let expected = format!(r#"{{"requestId":"{ID}","timestamp":{NOW_MS}}}"#);
    assert_eq!(response.body(), expected.as_bytes());
    assert_eq!(
        response.headers(),
        vec![("Content-Type", "application/json".to_owned()), ("Content-Length", expected.len().to_string())]
    );
    assert_eq!(sink.applied[&None], vec![b"hello".to_vec(), b"hello world".to_vec()]);
}

#[test]
fn every_record_kind_with_gzip_on_and_off() {
    let records = vec![
        b64(&gzip(&cwl("DATA_MESSAGE", "/vpc/a", &[LINE, LINE, LINE]))), // as CloudWatch Logs sends it
        b64(&cwl("DATA_MESSAGE", "/vpc/b", &[LINE])),                    // decompressed by Firehose
        b64(format!("{LINE}\n{LINE}\n").as_bytes()),                     // extracted messages / direct VPC
        b64(LINE.as_bytes()),                                            // direct VPC, one line
        b64(serde_json::json!({ "message": LINE }).to_string().as_bytes()),
        b64(&gzip(&cwl("CONTROL_MESSAGE", "", &["CWL CONTROL MESSAGE: Checking health of destination"]))),
        b64(b""),
    ];
    for gzip_on in [false, true] {
        let ep = endpoint(&[KEY]);
        let mut sink = Counting::default();
        let req = firehose_request(ID, Some(KEY), gzip_on, &records);
        let (result, response) = run(&ep, &Budget::unlimited(), &req, &mut sink);
        assert_eq!(response.status(), 200, "gzip {gzip_on}");
        let stats = result.unwrap().stats;
        assert_eq!(stats.records(RecordKind::CloudWatchData), 2);
        assert_eq!(stats.records(RecordKind::CloudWatchControl), 1);
        assert_eq!(stats.records(RecordKind::Lines), 3);
        assert_eq!(stats.records(RecordKind::Empty), 1);
        assert_eq!(stats.lines, 8);
        assert_eq!(sink.applied[&Some("/vpc/a".to_owned())].len(), 3);
        assert_eq!(sink.applied[&Some("/vpc/b".to_owned())].len(), 1);
        assert_eq!(sink.applied[&None].len(), 4);
        assert!(sink.applied.values().flatten().all(|l| l == LINE.as_bytes()));
    }
}

#[test]
fn a_mixed_batch_of_ten_thousand_records_counts_exactly() {
    let mut records = Vec::with_capacity(MAX_RECORDS);
    let mut expected_lines = 0;
    for i in 0..MAX_RECORDS {
        match i % 5 {
            0 => {
                records.push(b64(&gzip(&cwl("DATA_MESSAGE", &format!("/vpc/{}", i % 3), &[LINE, LINE]))));
                expected_lines += 2;
            }
            1 => {
                records.push(b64(&gzip(&cwl("CONTROL_MESSAGE", "", &["health"]))));
            }
            2 => {
                records.push(b64(LINE.as_bytes()));
                expected_lines += 1;
            }
            3 => {
                records.push(b64(serde_json::json!({ "message": LINE }).to_string().as_bytes()));
                expected_lines += 1;
            }
            _ => records.push("%%% not base64 %%%".to_owned()),
        }
    }
    let ep = endpoint(&[]);
    let mut sink = Counting::default();
    let (result, response) = run(&ep, &Budget::unlimited(), &firehose_request(ID, None, true, &records), &mut sink);
    assert_eq!(response.status(), 200);
    let stats = result.unwrap().stats;
    assert_eq!(stats.total(), MAX_RECORDS as u64);
    assert_eq!(stats.records(RecordKind::CloudWatchData), 2000);
    assert_eq!(stats.records(RecordKind::CloudWatchControl), 2000);
    assert_eq!(stats.records(RecordKind::Lines), 4000);
    assert_eq!(stats.invalid(InvalidReason::Base64), 2000);
    assert_eq!(stats.lines, expected_lines);
    assert_eq!(sink.applied_lines() as u64, expected_lines);
    assert_eq!(sink.applied.len(), 4, "three log groups and the stream's own format");
}

#[test]
fn bad_records_never_fail_the_others() {
    let records = vec![
        "=====".to_owned(),
        b64(&[0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad]),
        b64(b"{\"messageType\": \"DATA_MESSAGE\", \"logEvents\": [}"),
        b64(LINE.as_bytes()),
    ];
    let ep = endpoint(&[]);
    let mut sink = Counting::default();
    let (result, response) = run(&ep, &Budget::unlimited(), &firehose_request(ID, None, false, &records), &mut sink);
    assert_eq!(response.status(), 200);
    let stats = result.unwrap().stats;
    assert_eq!([InvalidReason::Base64, InvalidReason::Gzip, InvalidReason::Json].map(|r| stats.invalid(r)), [1, 1, 1]);
    assert_eq!(sink.applied_lines(), 1);
}

#[test]
fn wrong_missing_and_rotated_keys() {
    let ep = endpoint(&["old-key", "new-key"]);
    let records = vec![b64(LINE.as_bytes())];
    for (i, key) in ["old-key", "new-key"].into_iter().enumerate() {
        let mut sink = Counting::default();
        let id = format!("rotated-{i}");
        let (_, response) =
            run(&ep, &Budget::unlimited(), &firehose_request(&id, Some(key), false, &records), &mut sink);
        assert_eq!(response.status(), 200);
        assert_eq!(sink.applied_lines(), 1);
    }
    for (key, message) in
        [(Some("wrong"), "Invalid X-Amz-Firehose-Access-Key"), (None, "Missing X-Amz-Firehose-Access-Key")]
    {
        let mut sink = Counting::default();
        let (result, response) = run(&ep, &Budget::unlimited(), &firehose_request(ID, key, false, &records), &mut sink);
        assert!(result.is_err());
        assert_error_body(&response, 401, ID, message);
        assert_eq!(sink.applied_lines(), 0);
    }
}

#[test]
fn oversized_bodies_and_too_many_records_are_413() {
    let ep = endpoint(&[]);
    let mut sink = Counting::default();
    let mut req = firehose_request(ID, None, false, &[]);
    req.body = vec![b' '; MAX_BODY_BYTES + 1];
    let (_, response) = run(&ep, &Budget::unlimited(), &req, &mut sink);
    assert_error_body(&response, 413, ID, "Payload too large");

    let records = vec![String::new(); MAX_RECORDS + 1];
    let (_, response) = run(&ep, &Budget::unlimited(), &firehose_request(ID, None, true, &records), &mut sink);
    assert_error_body(&response, 413, ID, "Too many records");
    assert_eq!(sink.applied_lines(), 0);
}

#[test]
fn a_gzip_bomb_stops_at_the_decompressed_cap() {
    // 2 GiB of zeros would inflate from ~2 MiB; 64 MiB + 1 MiB is enough to
    // cross the cap and keeps the test quick.
    let inflated = MAX_DECOMPRESSED_BODY_BYTES + 1024 * 1024;
    let bomb = gzip_bomb(b"", 0, inflated, b"");
    assert!(bomb.len() < 1024 * 1024, "{}", bomb.len());
    let ep = endpoint(&[]);
    let budget = Budget::unlimited();
    let mut req = firehose_request(ID, None, true, &[]);
    req.body = bomb;
    let headers = header_pairs(&req);
    let head = ep.check_head("POST", &headers).unwrap();
    let mut reservation = budget.reserve();
    let mut sink = Counting::default();
    let result = ep.handle(&head, &req.body, &mut reservation, &mut sink, Counting::apply, Instant::now());
    assert_eq!(result, Err(RequestError::DecompressedTooLarge));
    assert_eq!(RequestError::DecompressedTooLarge.status(), 413);
    // What the request held at its peak: the raw body and at most the cap.
    assert!(reservation.bytes() <= req.body.len() + MAX_DECOMPRESSED_BODY_BYTES, "{}", reservation.bytes());
}

#[test]
fn the_shared_budget_answers_503_when_full() {
    let ep = endpoint(&[]);
    let records = vec![b64(LINE.as_bytes()); 20];
    let req = firehose_request(ID, None, false, &records);
    let total = req.body.len() + 100;
    let budget = Budget::new(total);
    let held = {
        let mut r = budget.reserve();
        r.grow(200).unwrap();
        r
    };
    let mut sink = Counting::default();
    let (_, response) = run(&ep, &budget, &firehose_request(ID, None, false, &records), &mut sink);
    assert_error_body(&response, 503, ID, "Receiver busy, retry later");
    drop(held);
    let (_, response) = run(&ep, &budget, &firehose_request(ID, None, false, &records), &mut sink);
    assert_eq!(response.status(), 200, "the retry counts once there is room");
    assert_eq!(sink.applied_lines(), 20);
    assert_eq!(budget.available(), total, "every reservation was released");
}

#[test]
fn a_retry_after_a_lost_response_counts_once() {
    let ep = endpoint(&[KEY]);
    let mut sink = Counting::default();
    let req = firehose_request(ID, Some(KEY), true, &[b64(LINE.as_bytes())]);
    let (first, r1) = run(&ep, &Budget::unlimited(), &req, &mut sink);
    // The response is lost; Firehose retries with the same id.
    let (second, r2) = run(&ep, &Budget::unlimited(), &req, &mut sink);
    assert!(!first.unwrap().duplicate);
    assert!(second.unwrap().duplicate);
    assert_eq!((r1.status(), r2.status()), (200, 200));
    assert_eq!(r1.body(), r2.body());
    assert_eq!(sink.applied_lines(), 1);
}

#[test]
fn a_failed_apply_is_retried_and_then_counts() {
    let ep = endpoint(&[]);
    let req = firehose_request(ID, None, false, &[b64(LINE.as_bytes())]);
    let headers = header_pairs(&req);
    let head = ep.check_head("POST", &headers).unwrap();
    let budget = Budget::unlimited();
    let mut sink = Counting::default();
    let failed = ep.handle(&head, &req.body, &mut budget.reserve(), &mut sink, |_| Err(ApplyFailed), Instant::now());
    assert_eq!(failed, Err(RequestError::ApplyFailed));
    assert_eq!(respond(&failed, Some(ID), NOW_MS).status(), 500);
    sink.pending.clear();
    let (retry, _) = run(&ep, &budget, &req, &mut sink);
    assert!(!retry.unwrap().duplicate);
    assert_eq!(sink.applied_lines(), 1);
}

#[test]
fn concurrent_retries_count_once() {
    let ep = Arc::new(endpoint(&[]));
    let req = Arc::new(firehose_request(ID, None, true, &vec![b64(LINE.as_bytes()); 100]));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (ep, req) = (Arc::clone(&ep), Arc::clone(&req));
            std::thread::spawn(move || {
                let mut sink = Counting::default();
                loop {
                    let (result, response) = run(&ep, &Budget::unlimited(), &req, &mut sink);
                    match response.status() {
                        200 => return (result.unwrap().duplicate, sink.applied_lines()),
                        503 => std::thread::yield_now(), // in work: Firehose retries
                        other => panic!("unexpected {other}"),
                    }
                }
            })
        })
        .collect();
    let outcomes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(outcomes.iter().filter(|(dup, _)| !dup).count(), 1);
    assert_eq!(outcomes.iter().map(|(_, lines)| lines).sum::<usize>(), 100);
}

#[test]
fn request_ids_header_body_and_moto() {
    let ep = endpoint(&[]);
    let mut sink = Counting::default();
    let mut req = firehose_request(ID, None, false, &[b64(LINE.as_bytes())]);
    req.body = envelope("another-id", &[b64(LINE.as_bytes())]);
    let (_, response) = run(&ep, &Budget::unlimited(), &req, &mut sink);
    assert_error_body(&response, 400, ID, "requestId in the body differs from X-Amz-Firehose-Request-Id");

    // moto posts only the body, with Content-Type: its requestId is the id.
    let moto = Req {
        method: "POST",
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: envelope("moto-id", &[b64(LINE.as_bytes())]),
    };
    let (result, response) = run(&ep, &Budget::unlimited(), &moto, &mut sink);
    assert_eq!(result.unwrap().request_id, "moto-id");
    assert_eq!(response.body(), format!(r#"{{"requestId":"moto-id","timestamp":{NOW_MS}}}"#).as_bytes());

    let neither = Req { method: "POST", headers: vec![], body: br#"{"records":[]}"#.to_vec() };
    let (_, response) = run(&ep, &Budget::unlimited(), &neither, &mut sink);
    assert_error_body(&response, 400, "", "Missing X-Amz-Firehose-Request-Id");
}

#[test]
fn method_encoding_and_body_errors() {
    let ep = endpoint(&[]);
    let mut sink = Counting::default();
    let mut req = firehose_request(ID, None, false, &[]);
    req.method = "GET";
    let (_, response) = run(&ep, &Budget::unlimited(), &req, &mut sink);
    assert_eq!(response.status(), 405);
    assert!(response.headers().contains(&("Allow", "POST".to_owned())));

    let mut req = firehose_request(ID, None, false, &[]);
    req.headers.push(("Content-Encoding".into(), "br".into()));
    let (_, response) = run(&ep, &Budget::unlimited(), &req, &mut sink);
    assert_error_body(&response, 415, ID, "Unsupported Content-Encoding: use gzip or none");

    let mut req = firehose_request(ID, None, true, &[]);
    req.body = b"{\"records\":[]}".to_vec(); // says gzip, is not
    let (_, response) = run(&ep, &Budget::unlimited(), &req, &mut sink);
    assert_error_body(&response, 400, ID, "Body is not valid gzip");

    let mut req = firehose_request(ID, None, false, &[]);
    req.body = b"{\"requestId\":\"x\"".to_vec();
    let (_, response) = run(&ep, &Budget::unlimited(), &req, &mut sink);
    assert_error_body(&response, 400, ID, "Body is not a valid Firehose request document");
}

#[test]
fn metrics_follow_the_outcomes() {
    let registry = prometheus::Registry::new();
    let metrics = Metrics::register(&registry).unwrap();
    let ep = endpoint(&[KEY]);
    let mut sink = Counting::default();
    let req = firehose_request(ID, Some(KEY), false, &[b64(LINE.as_bytes()), "!".into()]);
    for _ in 0..2 {
        let (result, response) = run(&ep, &Budget::unlimited(), &req, &mut sink);
        let accepted = result.unwrap();
        metrics.observe_request(response.status(), Some(&accepted.stats), accepted.duplicate);
    }
    let (result, response) = run(&ep, &Budget::unlimited(), &firehose_request("x", Some("bad"), false, &[]), &mut sink);
    metrics.observe_error(&result.unwrap_err());
    metrics.observe_request(response.status(), None, false);
    metrics.observe_dedup(&ep.recent().stats());
    assert_eq!(metrics.requests.with_label_values(&["200"]).get(), 2);
    assert_eq!(metrics.requests.with_label_values(&["401"]).get(), 1);
    assert_eq!(metrics.records.with_label_values(&["lines"]).get(), 1, "the duplicate is not counted");
    assert_eq!(metrics.invalid_records.with_label_values(&["base64"]).get(), 1);
    assert_eq!(metrics.duplicate_requests.get(), 1);
    assert_eq!(metrics.auth_failures.get(), 1);
    assert_eq!(metrics.dedup_ids.get(), 1);
}
