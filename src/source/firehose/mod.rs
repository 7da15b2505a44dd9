//! The Amazon Data Firehose receiver. [`Receiver`] serves the `firehose:`
//! section's listener (the builder wires it); below it, the protocol layer is
//! pure and synchronous. A request goes head → body → records → dedup →
//! apply → response:
//!
//! 1. [`RequestHead::parse`] checks the method and the `X-Amz-Firehose-*`
//!    headers, then [`AccessKeys::check`] the access key (constant time);
//! 2. the caller collects the body in a [`BodyBuffer`] under a
//!    [`Reservation`] of a shared [`Budget`] (bytes in flight over all
//!    requests) and calls
//!    [`Endpoint::handle`], which decompresses it (bounded), reads the JSON
//!    envelope and decodes each record into lines for a [`LineSink`];
//! 3. the request id goes through [`RecentRequests`]: a retry of a request
//!    whose counts were applied is answered 200 without counting again;
//! 4. [`Response`] is the byte-exact answer the specification asks for.
//!
//! docs/firehose.md holds the specification facts this relies on, every limit
//! below and what Firehose does on each status code.

mod auth;
mod budget;
mod dedup;
mod metrics;
mod receiver;
mod records;
mod request;
mod response;

pub use auth::{AccessKeyError, AccessKeys, MAX_ACCESS_KEY_BYTES};
pub use budget::{Budget, Reservation, DEFAULT_BUDGET_BYTES};
pub use dedup::{Begin, DedupStats, RecentRequests, Ticket, DEFAULT_DEDUP_TTL, DEFAULT_MAX_DEDUP_IDS};
pub use metrics::Metrics;
pub use receiver::{Receiver, ReceiverError};
pub use records::{
    InvalidReason, LineSink, RecordDecoder, RecordKind, RecordStats, MAX_RECORD_INFLATED_BYTES,
    MAX_REQUEST_INFLATED_BYTES,
};
pub use request::{
    decode_body, header_request_id, read_envelope, BodyBuffer, ContentEncoding, Envelope, RequestError, RequestHead,
    MAX_BODY_BYTES, MAX_COMMON_ATTRIBUTES, MAX_COMMON_ATTRIBUTES_BYTES, MAX_DECOMPRESSED_BODY_BYTES, MAX_RECORDS,
    MAX_RECORD_DATA_CHARS, MAX_REQUEST_ID_BYTES,
};
pub use response::{Response, MAX_ERROR_MESSAGE_BYTES};

use std::sync::Arc;
use std::time::Instant;

/// What [`Endpoint::handle`] accepted: a request answered 200.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The request id echoed in the response.
    pub request_id: String,
    /// `true` when the id's counts had already been applied: nothing was
    /// applied this time.
    pub duplicate: bool,
    /// What the records held (for a duplicate: what they held, not applied).
    pub stats: RecordStats,
}

/// The apply step failed (for example the pipeline is shutting down): the
/// request is answered 500 and its id is not remembered, so the retry counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the records' counts could not be applied")]
pub struct ApplyFailed;

/// The receiver's state shared by every request: accepted keys and the
/// recent request ids.
#[derive(Debug)]
pub struct Endpoint {
    keys: AccessKeys,
    recent: Arc<RecentRequests>,
}

impl Endpoint {
    pub fn new(keys: AccessKeys, recent: Arc<RecentRequests>) -> Endpoint {
        Endpoint { keys, recent }
    }

    pub fn recent(&self) -> &Arc<RecentRequests> {
        &self.recent
    }

    /// Checks the request line and headers, access key included, before any
    /// of the body is read.
    pub fn check_head(&self, method: &str, headers: &[(&str, &[u8])]) -> Result<RequestHead, RequestError> {
        let head = RequestHead::parse(method, headers)?;
        self.keys.check(head.access_key.as_deref())?;
        Ok(head)
    }

    /// Decodes a whole body and applies it exactly once per request id.
    ///
    /// `raw_body` is the body as received (at most [`MAX_BODY_BYTES`], which
    /// the caller enforces while collecting it under `reservation`). Lines
    /// reach `sink` as they are decoded; they are provisional until `apply`
    /// runs, which happens only for a request id not already applied. On any
    /// error the caller drops what the sink collected.
    pub fn handle<S: LineSink>(
        &self,
        head: &RequestHead,
        raw_body: &[u8],
        reservation: &mut Reservation,
        sink: &mut S,
        apply: impl FnOnce(&mut S) -> Result<(), ApplyFailed>,
        now: Instant,
    ) -> Result<Accepted, RequestError> {
        let body = decode_body(head.encoding, raw_body, reservation)?;
        let mut decoder = RecordDecoder::new();
        let envelope = read_envelope(&body, |data| {
            decoder.decode(data, sink);
        })?;
        let request_id = head.reconcile_request_id(envelope.request_id.as_deref())?;
        let stats = decoder.into_stats();
        match self.recent.begin(&request_id, now) {
            Begin::Duplicate => Ok(Accepted { request_id, duplicate: true, stats }),
            Begin::InWork => Err(RequestError::InWork),
            Begin::Fresh(ticket) => {
                apply(sink).map_err(|_| RequestError::ApplyFailed)?;
                ticket.applied(now);
                Ok(Accepted { request_id, duplicate: false, stats })
            }
        }
    }
}

/// The response for a handled request: 200 for `Ok`, the error's status
/// otherwise. `head_request_id` is the header's id, echoed in error bodies
/// (empty when the request had none).
pub fn respond(result: &Result<Accepted, RequestError>, head_request_id: Option<&str>, timestamp_ms: u64) -> Response {
    match result {
        Ok(accepted) => Response::ok(&accepted.request_id, timestamp_ms),
        Err(error) => Response::error(error, head_request_id.unwrap_or(""), timestamp_ms),
    }
}
