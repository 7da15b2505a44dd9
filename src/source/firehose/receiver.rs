//! The Firehose listener's requests, end to end: the head checked (access
//! key included) before the body is read, the body streamed into a
//! [`BodyBuffer`] under the shared [`Budget`], then decoded and counted off
//! the async reactor (a pool as wide as the cores) into an all-or-nothing
//! [`StreamBatch`] that is committed only for a request id not applied
//! before, and the byte-exact answer. The connection handling (TLS, cap,
//! deadlines) is the metrics server's ([`crate::expose::server::serve_with`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH};
use hyper::{Request, StatusCode};
use prometheus::Registry;
use tokio::sync::Semaphore;

use super::{
    header_request_id, respond, Accepted, AccessKeyError, AccessKeys, BodyBuffer, Budget, Endpoint, LineSink, Metrics,
    RecentRequests, RequestError, RequestHead, Response,
};
use crate::config::{FirehoseConfig, LogGroupConfig};
use crate::expose::server::{HttpResponse, Service};
use crate::parse::Format;
use crate::pipeline::{Pipeline, StreamBatch};

/// Why the receiver cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    #[error("firehose.access_keys: {0}")]
    AccessKey(#[from] AccessKeyError),
    #[error("cannot register the Firehose metrics")]
    Metrics(#[source] prometheus::Error),
}

/// The formats a request's lines are read with: index 0 is
/// `firehose.log_format`, then one per `cloudwatch.log_groups` entry.
#[derive(Debug, Clone)]
struct Formats {
    list: Vec<Format>,
    groups: HashMap<String, usize>,
}

impl Formats {
    fn new(default: &Format, groups: &[LogGroupConfig]) -> Formats {
        let mut list = vec![default.clone()];
        let mut by_name = HashMap::with_capacity(groups.len());
        for g in groups {
            by_name.insert(g.name.clone(), list.len());
            list.push(g.log_format.clone());
        }
        Formats { list, groups: by_name }
    }

    fn index(&self, log_group: Option<&str>) -> usize {
        log_group.and_then(|g| self.groups.get(g)).copied().unwrap_or(0)
    }
}

/// The lines of one request, counted provisionally into a [`StreamBatch`].
struct BatchSink<'f> {
    batch: Option<StreamBatch>,
    formats: &'f Formats,
}

impl LineSink for BatchSink<'_> {
    fn lines(&mut self, log_group: Option<&str>, lines: &mut dyn Iterator<Item = &[u8]>) {
        let i = self.formats.index(log_group);
        if let Some(batch) = self.batch.as_mut() {
            for line in lines {
                batch.line(i, line);
            }
        }
    }
}

/// What the blocking step needs: shared by every request.
struct Core {
    endpoint: Endpoint,
    pipeline: Pipeline,
    formats: Formats,
}

impl Core {
    /// Decodes and counts a whole body; the batch is committed only when the
    /// endpoint applies it (a fresh request id).
    fn handle(
        &self,
        head: &RequestHead,
        raw: &[u8],
        reservation: &mut super::Reservation,
    ) -> Result<Accepted, RequestError> {
        let batch = self.pipeline.stream_batch("firehose", &self.formats.list);
        let mut sink = BatchSink { batch: Some(batch), formats: &self.formats };
        let apply = |s: &mut BatchSink<'_>| {
            if let Some(batch) = s.batch.take() {
                batch.commit();
            }
            Ok(())
        };
        self.endpoint.handle(head, raw, reservation, &mut sink, apply, Instant::now())
    }
}

/// The Firehose receiver: one per process, serving its own listener.
pub struct Receiver {
    core: Arc<Core>,
    budget: Budget,
    metrics: Metrics,
    /// Requests decoded at once (the others wait with their bodies held).
    workers: Arc<Semaphore>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").field("formats", &self.core.formats.list.len()).finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Receiver {
    /// The receiver of `config`, counting into `pipeline`; log groups of
    /// CloudWatch Logs payloads are read with their format in `groups`.
    /// Its metrics go to `registry`.
    pub fn new(
        config: &FirehoseConfig,
        groups: &[LogGroupConfig],
        pipeline: Pipeline,
        registry: &Registry,
    ) -> Result<Receiver, ReceiverError> {
        let keys: Vec<&[u8]> = config.access_keys.iter().map(|k| k.0.as_bytes()).collect();
        let keys = if keys.is_empty() { AccessKeys::none() } else { AccessKeys::new(&keys)? };
        let recent = RecentRequests::new(config.dedup_window, config.dedup_max_ids);
        let metrics = Metrics::register(registry).map_err(ReceiverError::Metrics)?;
        metrics.observe_dedup(&recent.stats());
        let formats = Formats::new(&config.log_format, groups);
        let core = Arc::new(Core { endpoint: Endpoint::new(keys, recent), pipeline, formats });
        let budget = metrics.budget(usize::try_from(config.max_bytes_in_flight).unwrap_or(usize::MAX));
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(Receiver { core, budget, metrics, workers: Arc::new(Semaphore::new(cores)) })
    }

    /// One request, answered.
    pub async fn receive(&self, req: Request<Incoming>) -> HttpResponse {
        let started = Instant::now();
        let (parts, body) = req.into_parts();
        let pairs: Vec<(&str, &[u8])> = parts.headers.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
        let header_id = header_request_id(&pairs);
        let head = match self.core.endpoint.check_head(parts.method.as_str(), &pairs) {
            Ok(head) => head,
            Err(e) => return self.finish(Err(e), header_id.as_deref(), started, 0),
        };
        let length = parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let body = match read_body(body, BodyBuffer::new(self.budget.reserve(), length)).await {
            Ok(b) => b,
            Err(e) => return self.finish(Err(e), header_id.as_deref(), started, 0),
        };
        let size = body.len();
        let Ok(permit) = self.workers.clone().acquire_owned().await else {
            return self.finish(Err(RequestError::ApplyFailed), header_id.as_deref(), started, size);
        };
        let core = self.core.clone();
        let work = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let (bytes, mut reservation) = body.into_parts();
            core.handle(&head, &bytes, &mut reservation)
        });
        let result = work.await.unwrap_or(Err(RequestError::ApplyFailed));
        self.finish(result, header_id.as_deref(), started, size)
    }

    /// Counts the outcome and builds the answer.
    fn finish(
        &self,
        result: Result<Accepted, RequestError>,
        header_id: Option<&str>,
        started: Instant,
        size: usize,
    ) -> HttpResponse {
        let response = respond(&result, header_id, now_ms());
        let status = response.status();
        match &result {
            Ok(a) => {
                self.metrics.observe_request(status, Some(&a.stats), a.duplicate);
                tracing::debug!(request_id = %a.request_id, duplicate = a.duplicate, records = a.stats.total(), lines = a.stats.lines, "Firehose request applied");
            }
            Err(e) => {
                self.metrics.observe_request(status, None, false);
                self.metrics.observe_error(e);
                tracing::debug!(request_id = header_id.unwrap_or(""), status, reason = e.reason(), error = %e, "Firehose request refused");
            }
        }
        if size > 0 {
            self.metrics.request_bytes.observe(size as f64);
        }
        self.metrics.observe_dedup(&self.core.endpoint.recent().stats());
        self.metrics.request_duration.observe(started.elapsed().as_secs_f64());
        to_http(&response)
    }
}

/// Collects the body frame by frame under the buffer's cap and reservation.
async fn read_body(mut body: Incoming, buffer: Result<BodyBuffer, RequestError>) -> Result<BodyBuffer, RequestError> {
    let mut buffer = buffer?;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| RequestError::InvalidBody(format!("body not received whole: {e}")))?;
        if let Some(data) = frame.data_ref() {
            buffer.push(data)?;
        }
    }
    Ok(buffer)
}

fn to_http(response: &Response) -> HttpResponse {
    let mut r = hyper::Response::new(Full::new(Bytes::from(response.body())));
    *r.status_mut() = StatusCode::from_u16(response.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in response.headers() {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value)) {
            r.headers_mut().insert(n, v);
        }
    }
    r
}

impl Service for Receiver {
    fn call(
        &self,
        req: Request<Incoming>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = HttpResponse> + Send + '_>> {
        Box::pin(self.receive(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_groups_take_their_format_and_others_the_default() {
        let short = Format::parse("${interface-id} ${action}").unwrap();
        let groups = vec![LogGroupConfig { name: "/vpc/a".into(), log_format: short.clone(), log_stream_prefix: None }];
        let f = Formats::new(&Format::default_v2(), &groups);
        assert_eq!((f.index(Some("/vpc/a")), f.index(Some("/vpc/b")), f.index(None)), (1, 0, 0));
        assert_eq!(f.list[1], short);
    }
}
