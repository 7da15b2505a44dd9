//! The poller of one log group: scans (FilterLogEvents from `horizon -
//! lookback` to the last page), decides per event with the [`SeenWindow`]
//! whether it is new, and hands each page's new messages to its sink in one
//! call — one aggregator lock per page. Its loop polls on a fixed interval,
//! backs off when a poll fails, logs a failure once per change of its kind,
//! and saves the checkpoint after each complete scan.
//!
//! Cancellation (shutdown) can only take effect at an `.await`: while waiting
//! for the rate limit, for a response or for a backoff. A page is applied to
//! the window and to the sink in one synchronous step after its response has
//! arrived, so it is either wholly counted (and its successor's token kept)
//! or not at all (its own token kept): never half, never twice.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus::{Gauge, Histogram, IntCounter, IntGauge};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::checkpoint::{GroupCheckpoint, KeysError, ScanCheckpoint};
use super::client::{ApiError, ErrorKind, FilterRequest, LogsApi, Page, FILTER_LOG_EVENTS};
use super::clock::Clock;
use super::dedup::{event_key, SeenWindow, Verdict, WindowTimes};
use super::metrics::Metrics;
use super::ratelimit::RateLimiter;
use super::retry::{Backoff, MAX_ATTEMPTS};
use crate::expose::Readiness;
use crate::parse::Format;
use crate::pipeline::{Pipeline, StreamInput};

/// Least time between two saves of a scan in progress.
pub const MID_SCAN_SAVE: Duration = Duration::from_secs(30);

/// Timing settings of the source.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub poll_interval: Duration,
    pub lookback: Duration,
    pub start_from: Duration,
    /// Margin around the horizon (see [`super::dedup`]).
    pub margin: Duration,
}

/// What all group pollers share.
pub struct Shared<C> {
    pub client: C,
    pub limiter: RateLimiter,
    pub metrics: Metrics,
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
}

/// Where the new events of a page go: called once per page.
pub trait EventSink: Send + 'static {
    fn ingest(&mut self, messages: &[&str]);
}

/// The exporter's sink: a stream input of the pipeline in the group's log
/// format, one lock per page.
#[derive(Debug)]
pub struct AggregatorSink {
    input: StreamInput,
}

impl AggregatorSink {
    /// A sink into `pipeline`, named by the log group in diagnostics.
    pub fn for_group(pipeline: &Pipeline, log_group: &str, format: Format) -> AggregatorSink {
        AggregatorSink { input: pipeline.stream(log_group, format) }
    }
}

impl EventSink for AggregatorSink {
    fn ingest(&mut self, messages: &[&str]) {
        // One record per event; a trailing newline is dropped.
        self.input.batch(messages);
    }
}

/// Why a poll ended without completing its scan.
#[derive(Debug)]
pub enum PollError {
    /// Shutdown: the page in flight (if any) was abandoned.
    Cancelled,
    Failed(ApiError),
}

/// Counts of one complete poll.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PollStats {
    pub pages: u64,
    pub events: u64,
    pub duplicates: u64,
}

#[derive(Debug, Clone)]
struct Scan {
    start_time_ms: i64,
    next_token: Option<String>,
}

/// Metric handles of one log group, resolved once.
#[derive(Debug, Clone)]
struct GroupMetrics {
    events: IntCounter,
    duplicates: IntCounter,
    pages: IntCounter,
    malformed: IntCounter,
    delay: Histogram,
    poll_duration: Histogram,
    last_success: Gauge,
    up: IntGauge,
    polls_ok: IntCounter,
    polls_err: IntCounter,
    dedup_keys: IntGauge,
    dedup_keys_limit: IntGauge,
    keyless: IntCounter,
    deferred: IntCounter,
    horizon: Gauge,
    newest_ingestion: Gauge,
}

impl GroupMetrics {
    fn new(m: &Metrics, g: &str) -> GroupMetrics {
        GroupMetrics {
            events: m.events.with_label_values(&[g]),
            duplicates: m.duplicates.with_label_values(&[g]),
            pages: m.pages.with_label_values(&[g]),
            malformed: m.malformed.with_label_values(&[g]),
            delay: m.ingestion_delay.with_label_values(&[g]),
            poll_duration: m.poll_duration.with_label_values(&[g]),
            last_success: m.last_success.with_label_values(&[g]),
            up: m.group_up.with_label_values(&[g]),
            polls_ok: m.polls.with_label_values(&[g, "success"]),
            polls_err: m.polls.with_label_values(&[g, "error"]),
            dedup_keys: m.dedup_keys.with_label_values(&[g]),
            dedup_keys_limit: m.dedup_keys_limit.with_label_values(&[g]),
            keyless: m.dedup_cap_events.with_label_values(&[g, "counted_without_key"]),
            deferred: m.dedup_cap_events.with_label_values(&[g, "deferred"]),
            horizon: m.horizon.with_label_values(&[g]),
            newest_ingestion: m.newest_ingestion.with_label_values(&[g]),
        }
    }
}

/// The state and the work of one log group.
pub struct GroupPoller<S> {
    name: String,
    prefix: Option<String>,
    sink: S,
    window: SeenWindow,
    scan: Option<Scan>,
    m: GroupMetrics,
    /// The window was full and the warning is out (until a scan ends below
    /// the cap): one warning per episode, not per poll.
    cap_warned: bool,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl<S: EventSink> GroupPoller<S> {
    pub fn new(name: String, prefix: Option<String>, sink: S, metrics: &Metrics, margin: Duration) -> GroupPoller<S> {
        let m = GroupMetrics::new(metrics, &name);
        let window = SeenWindow::new(margin);
        m.dedup_keys_limit.set(i64::try_from(window.cap()).unwrap_or(i64::MAX));
        GroupPoller { name, prefix, sink, window, scan: None, m, cap_warned: false }
    }

    /// Caps the keys the group's window holds (its share of
    /// [`super::dedup::MAX_DEDUP_KEYS`]); call it before [`GroupPoller::restore`].
    pub fn set_key_cap(&mut self, cap: usize) {
        let margin = Duration::from_millis(u64::try_from(self.window.margin_ms()).unwrap_or(0));
        self.window = SeenWindow::with_cap(margin, cap);
        self.m.dedup_keys_limit.set(i64::try_from(cap).unwrap_or(i64::MAX));
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn window(&self) -> &SeenWindow {
        &self.window
    }

    /// Takes up the position saved in a checkpoint.
    pub fn restore(&mut self, cp: &GroupCheckpoint) -> Result<(), KeysError> {
        let keys = cp.unpack_keys()?;
        let margin = Duration::from_millis(u64::try_from(self.window.margin_ms()).unwrap_or(0));
        let times = WindowTimes {
            horizon_ms: cp.horizon_ms,
            last_scan_start_ms: cp.last_scan_start_ms.or(cp.horizon_ms),
            newest_ingestion_ms: cp.newest_ingestion_ms,
            scan_start_ms: cp.scan.as_ref().map(|s| s.started_ms),
            scan_bound_ms: cp.scan.as_ref().and_then(|s| s.bound_ms),
            scan_deferred_ms: cp.scan.as_ref().and_then(|s| s.deferred_from_ms),
        };
        self.window = SeenWindow::restore(margin, self.window.cap(), times, keys);
        if let Some(n) = times.newest_ingestion_ms {
            self.m.newest_ingestion.set(n as f64 / 1000.0);
        }
        if let Some(h) = times.horizon_ms {
            self.m.horizon.set(h as f64 / 1000.0);
        }
        self.scan = cp.scan.as_ref().map(|s| Scan { start_time_ms: s.start_time_ms, next_token: s.next_token.clone() });
        self.m.dedup_keys.set(i64::try_from(self.window.len()).unwrap_or(i64::MAX));
        Ok(())
    }

    /// The position to save.
    pub fn checkpoint(&self) -> GroupCheckpoint {
        let t = self.window.times();
        GroupCheckpoint {
            horizon_ms: t.horizon_ms,
            last_scan_start_ms: t.last_scan_start_ms,
            newest_ingestion_ms: t.newest_ingestion_ms,
            scan: match (&self.scan, t.scan_start_ms) {
                (Some(s), Some(started_ms)) => Some(ScanCheckpoint {
                    started_ms,
                    start_time_ms: s.start_time_ms,
                    next_token: s.next_token.clone(),
                    bound_ms: t.scan_bound_ms,
                    deferred_from_ms: t.scan_deferred_ms,
                }),
                _ => None,
            },
            keys: GroupCheckpoint::pack_keys(self.window.keys()),
        }
    }

    /// One poll: continues the scan in progress or begins one, and reads it to
    /// the last page. A long scan (a first start far back, a catch-up after
    /// downtime) is saved through `saver` every [`MID_SCAN_SAVE`] or poll
    /// interval, whichever is longer, so that a crash loses little work.
    pub async fn poll<C: LogsApi, W: SaveGroup>(
        &mut self,
        shared: &Shared<C>,
        cancel: &CancellationToken,
        saver: &W,
    ) -> Result<PollStats, PollError> {
        let mut stats = PollStats::default();
        let save_every = shared.settings.poll_interval.max(MID_SCAN_SAVE);
        let mut last_save = Instant::now();
        if self.scan.is_none() || self.window.scan_start_ms().is_none() {
            self.begin_scan(shared);
        }
        let mut restarted = false;
        loop {
            let (start_time_ms, token) = match &self.scan {
                Some(s) => (s.start_time_ms, s.next_token.clone()),
                None => return Err(PollError::Failed(ApiError::new(ErrorKind::Other, "no scan in progress"))),
            };
            let req = FilterRequest {
                log_group: &self.name,
                log_stream_prefix: self.prefix.as_deref(),
                start_time_ms,
                next_token: token.as_deref(),
            };
            let page = match request(shared, req, cancel).await {
                Ok(p) => p,
                Err(PollError::Failed(e)) if e.kind == ErrorKind::InvalidParameter && token.is_some() && !restarted => {
                    // Tokens expire after 24 hours. Read the scan again from its
                    // first page: the window skips what this scan counted
                    // (except what it counted without a key, at the cap).
                    let keyless = self.window.keyless_in_scan();
                    warn!(log_group = %self.name, error = %e, keyless, "The next page's token was refused; reading the scan again from its first page (events counted without a key at the dedup cap, if any, are counted again)");
                    restarted = true;
                    self.window.begin_scan(shared.clock.now_ms());
                    if let Some(s) = &mut self.scan {
                        s.next_token = None;
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            let next = page.next_token.clone();
            let (new, dup) = self.apply_page(page, shared.clock.now_ms());
            stats.pages += 1;
            stats.events += new;
            stats.duplicates += dup;
            match next {
                Some(t) => {
                    if let Some(s) = &mut self.scan {
                        s.next_token = Some(t);
                    }
                }
                None => break,
            }
            if last_save.elapsed() >= save_every {
                saver.save(&self.name, self.checkpoint()).await;
                last_save = Instant::now();
            }
        }
        self.window.finish_scan();
        self.scan = None;
        self.m.dedup_keys.set(i64::try_from(self.window.len()).unwrap_or(i64::MAX));
        if self.cap_warned && !self.window.is_full() {
            self.cap_warned = false;
            info!(log_group = %self.name, keys = self.window.len(), "The dedup window is below its cap again");
        }
        if let Some(h) = self.window.horizon_ms() {
            self.m.horizon.set(h as f64 / 1000.0);
        }
        Ok(stats)
    }

    fn begin_scan<C>(&mut self, shared: &Shared<C>) {
        let now = shared.clock.now_ms();
        let start_time_ms = match self.window.last_scan_start_ms() {
            // Everything since the previous scan began, `lookback` late at most.
            Some(c) => c.saturating_sub(millis(shared.settings.lookback)),
            None => now.saturating_sub(millis(shared.settings.start_from)),
        };
        self.window.begin_scan(now);
        self.scan = Some(Scan { start_time_ms, next_token: None });
        debug!(log_group = %self.name, start_time_ms, "Scan begins");
    }

    /// Counts the new events of one page: window and sink in one synchronous
    /// step. Returns (new, duplicates).
    fn apply_page(&mut self, page: Page, now_ms: i64) -> (u64, u64) {
        // CloudWatch's clock, as this page shows it, bounds the horizon.
        if let Some(newest) = page.events.iter().map(|e| e.ingestion_ms).max() {
            self.window.note_page(newest, now_ms);
            if let Some(n) = self.window.newest_ingestion_ms() {
                self.m.newest_ingestion.set(n as f64 / 1000.0);
            }
        }
        let mut messages: Vec<&str> = Vec::with_capacity(page.events.len());
        let mut duplicates = 0u64;
        let mut outside_prefix = 0u64;
        let (mut keyless, mut deferred) = (0u64, 0u64);
        let delay = self.m.delay.local();
        for ev in &page.events {
            // The server filters by prefix already; a local check keeps the
            // promise with endpoints that ignore the parameter.
            if let Some(p) = &self.prefix {
                if !ev.log_stream.starts_with(p.as_str()) {
                    outside_prefix += 1;
                    continue;
                }
            }
            // Most of a re-read is before the horizon: no key to hash.
            if self.window.is_before_horizon(ev.ingestion_ms) {
                duplicates += 1;
                continue;
            }
            let verdict = self.window.observe(event_key(&ev.log_stream, &ev.event_id), ev.ingestion_ms);
            match verdict {
                Verdict::New | Verdict::NewWithoutKey => {
                    messages.push(ev.message.as_str());
                    // Integer ms to seconds: exact below 2^53 ms, and the
                    // difference saturates on absurd times from the endpoint.
                    delay.observe(ev.ingestion_ms.saturating_sub(ev.timestamp_ms).max(0) as f64 / 1000.0);
                    if verdict == Verdict::NewWithoutKey {
                        keyless += 1;
                    }
                }
                Verdict::Deferred => deferred += 1,
                Verdict::BeforeHorizon | Verdict::Remembered => duplicates += 1,
            }
        }
        self.sink.ingest(&messages);
        delay.flush();
        let new = u64::try_from(messages.len()).unwrap_or(u64::MAX);
        self.m.events.inc_by(new);
        self.m.duplicates.inc_by(duplicates);
        self.m.pages.inc();
        if page.malformed > 0 {
            self.m.malformed.inc_by(page.malformed);
            debug!(log_group = %self.name, count = page.malformed, "Skipped events without an id, time or message");
        }
        if outside_prefix > 0 {
            debug!(log_group = %self.name, count = outside_prefix, "Skipped events of streams outside the prefix");
        }
        if keyless > 0 || deferred > 0 {
            self.m.keyless.inc_by(keyless);
            self.m.deferred.inc_by(deferred);
            if !self.cap_warned {
                self.cap_warned = true;
                warn!(log_group = %self.name, cap = self.window.cap(), keyless, deferred, "The dedup window is full: new events are counted without a key or left to the next scan until a scan completes (see docs/cloudwatch.md, dedup cap)");
            }
        }
        self.m.dedup_keys.set(i64::try_from(self.window.len()).unwrap_or(i64::MAX));
        (new, duplicates)
    }
}

/// One page, with the retries of the single retry layer: each attempt waits
/// for the shared rate limit and is counted; transient errors are retried
/// after a jittered exponential backoff.
async fn request<C: LogsApi>(
    shared: &Shared<C>,
    req: FilterRequest<'_>,
    cancel: &CancellationToken,
) -> Result<Page, PollError> {
    let m = &shared.metrics;
    let requests = m.requests.with_label_values(&[FILTER_LOG_EVENTS]);
    let duration = m.request_duration.with_label_values(&[FILTER_LOG_EVENTS]);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(PollError::Cancelled),
            _ = shared.limiter.acquire() => {}
        }
        requests.inc();
        let t = Instant::now();
        let res = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(PollError::Cancelled),
            r = shared.client.filter_log_events(req) => r,
        };
        duration.observe(t.elapsed().as_secs_f64());
        let err = match res {
            Ok(page) => {
                shared.limiter.on_success();
                m.rate_limit.set(shared.limiter.rate());
                return Ok(page);
            }
            Err(e) => e,
        };
        m.request_errors.with_label_values(&[FILTER_LOG_EVENTS, err.kind.label()]).inc();
        if err.kind == ErrorKind::Throttled {
            shared.limiter.on_throttled();
            m.rate_limit.set(shared.limiter.rate());
        }
        if !err.kind.is_transient() || attempt >= MAX_ATTEMPTS {
            return Err(PollError::Failed(err));
        }
        let wait = Backoff::REQUEST.delay(attempt);
        debug!(log_group = req.log_group, attempt, error = %err, wait_ms = wait.as_millis() as u64, "Request failed; retrying");
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(PollError::Cancelled),
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Counts log groups polled successfully once; sets readiness when all are.
#[derive(Debug)]
pub struct ReadyCount {
    remaining: AtomicUsize,
    ready: Readiness,
}

impl ReadyCount {
    pub fn new(groups: usize, ready: Readiness) -> ReadyCount {
        if groups == 0 {
            ready.set(true);
        }
        ReadyCount { remaining: AtomicUsize::new(groups), ready }
    }

    fn mark_one(&self) {
        if self.remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.ready.set(true);
            info!("Every log group polled once: ready");
        }
    }
}

/// Saves the checkpoint of a group (the source's checkpoint writer).
pub trait SaveGroup: Send + Sync + 'static {
    fn save(&self, group: &str, cp: GroupCheckpoint) -> impl std::future::Future<Output = ()> + Send;
}

/// The loop of one log group until `cancel`: poll, save, wait; back off on
/// failure. Returns the poller, whose state the caller saves at shutdown.
pub async fn run_group<C: LogsApi, S: EventSink, W: SaveGroup>(
    mut poller: GroupPoller<S>,
    shared: Arc<Shared<C>>,
    saver: Arc<W>,
    ready: Arc<ReadyCount>,
    cancel: CancellationToken,
) -> GroupPoller<S> {
    let interval = shared.settings.poll_interval;
    let mut next = Instant::now();
    let mut failures = 0u32;
    let mut last_error: Option<ErrorKind> = None;
    let mut polled_once = false;
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep_until(next) => {}
        }
        let started = Instant::now();
        match poller.poll(&shared, &cancel, &*saver).await {
            Ok(stats) => {
                let m = &poller.m;
                m.poll_duration.observe(started.elapsed().as_secs_f64());
                m.last_success.set(shared.clock.now_ms() as f64 / 1000.0);
                m.up.set(1);
                m.polls_ok.inc();
                debug!(log_group = %poller.name, pages = stats.pages, events = stats.events, duplicates = stats.duplicates, "Poll complete");
                if last_error.take().is_some() {
                    info!(log_group = %poller.name, failures, "Log group polled successfully again");
                }
                failures = 0;
                if !polled_once {
                    polled_once = true;
                    ready.mark_one();
                }
                saver.save(&poller.name, poller.checkpoint()).await;
                next = (started + interval).max(Instant::now());
            }
            Err(PollError::Cancelled) => break,
            Err(PollError::Failed(e)) => {
                failures = failures.saturating_add(1);
                poller.m.up.set(0);
                poller.m.polls_err.inc();
                let wait = Backoff::poll(interval).delay(failures);
                if last_error != Some(e.kind) {
                    warn!(log_group = %poller.name, error = %e, retry_in_s = wait.as_secs_f64(), "Polling the log group failed; retrying with backoff (other log groups go on)");
                    last_error = Some(e.kind);
                } else {
                    debug!(log_group = %poller.name, error = %e, failures, "Polling the log group failed again");
                }
                next = Instant::now() + wait;
            }
        }
    }
    poller
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::cloudwatch::client::LogEvent;
    use crate::source::cloudwatch::clock::TokioClock;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// A fake CloudWatch Logs: events with ingestion times, pages of `page`
    /// events grouped by stream (like moto), optional injected failures.
    #[derive(Default)]
    struct FakeLogs {
        state: Mutex<FakeState>,
    }

    #[derive(Default)]
    struct FakeState {
        groups: HashMap<String, Vec<LogEvent>>,
        page: usize,
        /// Fail the next N requests with this kind.
        fail: Vec<ErrorKind>,
        requests: usize,
        clock_ms: i64,
        /// Refuse the next N paging requests (an expired token).
        refuse_tokens: usize,
        /// Fail the request with this number (counted from 1).
        fail_on_request: Option<(usize, ErrorKind)>,
        /// Before answering each of the next N requests, put M events into
        /// the group, ingested at the clock's now: a scan that cannot end
        /// while it lasts.
        grow: Option<(String, usize, usize, Arc<dyn Clock>)>,
        grown: usize,
    }

    impl LogsApi for FakeLogs {
        async fn filter_log_events(&self, req: FilterRequest<'_>) -> Result<Page, ApiError> {
            let mut st = self.state.lock().expect("lock");
            st.requests += 1;
            if let Some((group, n, per_request, clock)) = st.grow.clone() {
                if n > 0 {
                    st.grow = Some((group.clone(), n - 1, per_request, clock.clone()));
                    let now = clock.now_ms();
                    for _ in 0..per_request {
                        let id = st.grown;
                        st.grown += 1;
                        st.groups.entry(group.clone()).or_default().push(LogEvent {
                            log_stream: "s".into(),
                            event_id: format!("grow-{id}"),
                            timestamp_ms: now - 1000,
                            ingestion_ms: now,
                            message: format!("grow {id}"),
                        });
                    }
                }
            }
            if let Some(k) = st.fail.pop() {
                return Err(ApiError::new(k, "injected"));
            }
            if let Some((n, k)) = st.fail_on_request {
                if st.requests == n {
                    return Err(ApiError::new(k, "injected"));
                }
            }
            if req.next_token.is_some() && st.refuse_tokens > 0 {
                st.refuse_tokens -= 1;
                return Err(ApiError::new(ErrorKind::InvalidParameter, "The specified nextToken is invalid."));
            }
            let Some(evs) = st.groups.get(req.log_group) else {
                return Err(ApiError::new(ErrorKind::NotFound, "ResourceNotFoundException"));
            };
            let mut matching: Vec<&LogEvent> = evs.iter().filter(|e| e.timestamp_ms >= req.start_time_ms).collect();
            matching.sort_by(|a, b| a.log_stream.cmp(&b.log_stream).then(a.timestamp_ms.cmp(&b.timestamp_ms)));
            let from = req.next_token.and_then(|t| t.parse::<usize>().ok()).unwrap_or(0);
            let to = (from + st.page).min(matching.len());
            let events = matching[from.min(to)..to].iter().map(|e| (*e).clone()).collect();
            let next_token = (to < matching.len()).then(|| to.to_string());
            Ok(Page { events, next_token, malformed: 0 })
        }
    }

    impl FakeLogs {
        fn put(&self, group: &str, stream: &str, id: usize, timestamp_ms: i64) {
            let mut st = self.state.lock().expect("lock");
            let ingestion_ms = st.clock_ms;
            st.groups.entry(group.to_owned()).or_default().push(LogEvent {
                log_stream: stream.to_owned(),
                event_id: id.to_string(),
                timestamp_ms,
                ingestion_ms,
                message: format!("event {id}"),
            });
        }
    }

    #[derive(Clone, Default)]
    struct CountSink(Arc<Mutex<HashMap<String, usize>>>);

    impl EventSink for CountSink {
        fn ingest(&mut self, messages: &[&str]) {
            let mut m = self.0.lock().expect("lock");
            for msg in messages {
                *m.entry((*msg).to_owned()).or_default() += 1;
            }
        }
    }

    struct NoSave;
    impl SaveGroup for NoSave {
        async fn save(&self, _group: &str, _cp: GroupCheckpoint) {}
    }

    fn shared(clock: Arc<dyn Clock>) -> Arc<Shared<FakeLogs>> {
        let metrics = Metrics::register(&prometheus::Registry::new(), &["g"]).expect("metrics");
        Arc::new(Shared {
            client: FakeLogs::default(),
            limiter: RateLimiter::new(50.0),
            metrics,
            clock,
            settings: Settings {
                poll_interval: Duration::from_secs(60),
                lookback: Duration::from_secs(20 * 60),
                start_from: Duration::from_secs(20 * 60),
                margin: Duration::from_secs(60),
            },
        })
    }

    #[tokio::test(start_paused = true)]
    async fn pages_polls_late_events_and_retries_count_each_event_once() {
        let clock = Arc::new(TokioClock::new(1_700_000_000_000));
        let sh = shared(clock.clone());
        let sink = CountSink::default();
        let now = clock.now_ms();
        {
            let mut st = sh.client.state.lock().expect("lock");
            st.page = 7;
            st.clock_ms = now;
        }
        for i in 0..50 {
            sh.client.put("g", &format!("eni-{}", i % 5), i, now - 600_000 + i as i64);
        }
        let mut p = GroupPoller::new("g".into(), None, sink.clone(), &sh.metrics, sh.settings.margin);
        let cancel = CancellationToken::new();
        let s = p.poll(&sh, &cancel, &NoSave).await.expect("poll");
        assert_eq!((s.pages, s.events, s.duplicates), (8, 50, 0));
        let mut id = 50;
        let mut last_put = 0;
        for round in 0..25 {
            tokio::time::advance(Duration::from_secs(60)).await;
            let now = clock.now_ms();
            sh.client.state.lock().expect("lock").clock_ms = now;
            // Late events: 15 minutes late, every other round.
            if round % 2 == 0 {
                last_put = now;
                for _ in 0..9 {
                    sh.client.put("g", "eni-late", id, now - 900_000);
                    id += 1;
                }
            }
            // Throttling and a 5xx in the middle of the scan.
            if round % 5 == 1 {
                sh.client.state.lock().expect("lock").fail = vec![ErrorKind::ServerError, ErrorKind::Throttled];
            }
            let s = p.poll(&sh, &cancel, &NoSave).await.expect("poll");
            assert_eq!(s.events, if round % 2 == 0 { 9 } else { 0 }, "round {round}");
        }
        let counts = sink.0.lock().expect("lock");
        assert_eq!(counts.len(), id);
        assert!(counts.values().all(|&c| c == 1));
        assert_eq!(sh.metrics.events.with_label_values(&["g"]).get() as usize, id);
        assert!(sh.metrics.request_errors.with_label_values(&[FILTER_LOG_EVENTS, "throttled"]).get() >= 5);
        assert!(p.window().len() < 30, "keys kept: {}", p.window().len());
        let newest = sh.metrics.newest_ingestion.with_label_values(&["g"]).get();
        assert_eq!(newest, last_put as f64 / 1000.0, "the ingestion time of the last events put");
    }

    #[tokio::test(start_paused = true)]
    async fn interrupted_scan_resumes_from_its_checkpoint_without_double_counting() {
        let clock = Arc::new(TokioClock::new(1_700_000_000_000));
        let sh = shared(clock.clone());
        let now = clock.now_ms();
        {
            let mut st = sh.client.state.lock().expect("lock");
            st.page = 10;
            st.clock_ms = now;
        }
        for i in 0..95 {
            sh.client.put("g", "eni-a", i, now - 60_000 + i as i64);
        }
        let sink = CountSink::default();
        let mut p = GroupPoller::new("g".into(), None, sink.clone(), &sh.metrics, sh.settings.margin);
        // Every request after the 3rd fails for good: the scan stops halfway.
        sh.client.state.lock().expect("lock").fail = vec![ErrorKind::AccessDenied];
        let cancel = CancellationToken::new();
        // First request fails (access denied), then the poll is tried again.
        assert!(matches!(p.poll(&sh, &cancel, &NoSave).await, Err(PollError::Failed(_))));
        // Cancel while the second page is awaited: run until a page or two in.
        let cancel2 = CancellationToken::new();
        let c2 = cancel2.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            c2.cancel();
        });
        assert!(matches!(p.poll(&sh, &cancel2, &NoSave).await, Err(PollError::Cancelled)));
        let counted_before = sink.0.lock().expect("lock").len();
        assert!(counted_before > 0 && counted_before < 95, "{counted_before}");
        let cp = p.checkpoint();
        assert!(cp.scan.as_ref().is_some_and(|s| s.next_token.is_some()));
        // "Restart": a new poller from the checkpoint, the same sink.
        let mut q = GroupPoller::new("g".into(), None, sink.clone(), &sh.metrics, sh.settings.margin);
        q.restore(&serde_json::from_str(&serde_json::to_string(&cp).expect("json")).expect("json")).expect("restore");
        q.poll(&sh, &cancel, &NoSave).await.expect("poll");
        tokio::time::advance(Duration::from_secs(60)).await;
        q.poll(&sh, &cancel, &NoSave).await.expect("poll");
        let counts = sink.0.lock().expect("lock");
        assert_eq!(counts.len(), 95);
        assert!(counts.values().all(|&c| c == 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_token_reads_the_scan_again_without_double_counting() {
        let clock = Arc::new(TokioClock::new(1_700_000_000_000));
        let sh = shared(clock.clone());
        sh.client.state.lock().expect("lock").page = 10;
        let sink = CountSink::default();
        let mut p = GroupPoller::new("g".into(), None, sink.clone(), &sh.metrics, sh.settings.margin);
        let cancel = CancellationToken::new();
        let put = |from: usize, n: usize| {
            let now = clock.now_ms();
            sh.client.state.lock().expect("lock").clock_ms = now;
            for i in from..from + n {
                sh.client.put("g", "s", i, now - 120_000 + i as i64);
            }
        };
        put(0, 35);
        p.poll(&sh, &cancel, &NoSave).await.expect("first poll");
        tokio::time::advance(Duration::from_secs(120)).await;
        put(100, 40);
        // The second scan reads four pages (the 35 old events, 5 new), then
        // fails for good (access denied).
        {
            let mut st = sh.client.state.lock().expect("lock");
            st.fail_on_request = Some((st.requests + 5, ErrorKind::AccessDenied));
        }
        let e = p.poll(&sh, &cancel, &NoSave).await;
        assert!(matches!(e, Err(PollError::Failed(ref e)) if e.kind == ErrorKind::AccessDenied), "{e:?}");
        assert!(p.checkpoint().scan.is_some_and(|s| s.next_token.is_some()));
        assert_eq!(sink.0.lock().expect("lock").len(), 40);
        // Its resumption is refused (an expired token): it reads from the start.
        sh.client.state.lock().expect("lock").refuse_tokens = 1;
        p.poll(&sh, &cancel, &NoSave).await.expect("resumed poll");
        tokio::time::advance(Duration::from_secs(60)).await;
        p.poll(&sh, &cancel, &NoSave).await.expect("next poll");
        let counts = sink.0.lock().expect("lock");
        assert_eq!(counts.len(), 75);
        assert!(counts.values().all(|&c| c == 1), "{counts:?}");
        assert_eq!(sh.metrics.request_errors.with_label_values(&[FILTER_LOG_EVENTS, "invalid_parameter"]).get(), 1);
    }

    #[derive(Default)]
    struct RecordSave(Mutex<Vec<GroupCheckpoint>>);
    impl SaveGroup for RecordSave {
        async fn save(&self, _group: &str, cp: GroupCheckpoint) {
            self.0.lock().expect("lock").push(cp);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_scan_is_saved_on_the_way() {
        let clock = Arc::new(TokioClock::new(1_700_000_000_000));
        let metrics = Metrics::register(&prometheus::Registry::new(), &["g"]).expect("metrics");
        let sh = Shared {
            client: FakeLogs::default(),
            limiter: RateLimiter::new(1.0),
            metrics,
            clock: clock.clone(),
            settings: Settings {
                poll_interval: Duration::from_secs(10),
                lookback: Duration::from_secs(600),
                start_from: Duration::from_secs(600),
                margin: Duration::from_secs(60),
            },
        };
        sh.client.state.lock().expect("lock").page = 10;
        for i in 0..700 {
            sh.client.put("g", "s", i, clock.now_ms() - 100_000 + i as i64);
        }
        let saver = RecordSave::default();
        let mut p = GroupPoller::new("g".into(), None, CountSink::default(), &sh.metrics, sh.settings.margin);
        // 70 pages at 1 request/s: about 70 s, saved after ~30 s and ~60 s.
        let s = p.poll(&sh, &CancellationToken::new(), &saver).await.expect("poll");
        assert_eq!(s.pages, 70);
        let saves = saver.0.lock().expect("lock");
        assert_eq!(saves.len(), 2);
        assert!(saves
            .iter()
            .all(|c| c.scan.as_ref().is_some_and(|s| s.next_token.is_some()) && c.horizon_ms.is_none()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_group_backs_off_while_another_gets_ready() {
        let clock = Arc::new(TokioClock::new(1_700_000_000_000));
        let sh = shared(clock.clone());
        sh.client.state.lock().expect("lock").page = 100;
        sh.client.put("g", "s", 1, clock.now_ms() - 1000);
        let ready = Readiness::default();
        let rc = Arc::new(ReadyCount::new(2, ready.clone()));
        let cancel = CancellationToken::new();
        let ok = GroupPoller::new("g".into(), None, CountSink::default(), &sh.metrics, sh.settings.margin);
        let missing = GroupPoller::new("missing".into(), None, CountSink::default(), &sh.metrics, sh.settings.margin);
        let t1 = tokio::spawn(run_group(ok, sh.clone(), Arc::new(NoSave), rc.clone(), cancel.clone()));
        let t2 = tokio::spawn(run_group(missing, sh.clone(), Arc::new(NoSave), rc.clone(), cancel.clone()));
        tokio::time::sleep(Duration::from_secs(630)).await;
        cancel.cancel();
        t1.await.expect("t1");
        t2.await.expect("t2");
        assert!(!ready.is_ready(), "not ready while a group fails");
        let m = &sh.metrics;
        assert_eq!(m.polls.with_label_values(&["g", "success"]).get(), 11);
        let failed = m.polls.with_label_values(&["missing", "error"]).get();
        // Backoff: 60 s doubling to 300 s: about 4 attempts in 10 minutes, not 10.
        assert!((4..=6).contains(&failed), "{failed}");
        assert_eq!(m.request_errors.with_label_values(&[FILTER_LOG_EVENTS, "not_found"]).get(), failed);
        assert_eq!(m.group_up.with_label_values(&["missing"]).get(), 0);
        assert_eq!(m.group_up.with_label_values(&["g"]).get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_scan_that_does_not_end_keeps_its_keys_and_state_under_the_cap() {
        let clock = Arc::new(TokioClock::new(1_700_000_000_000));
        let metrics = Metrics::register(&prometheus::Registry::new(), &["g"]).expect("metrics");
        let sh = Shared {
            client: FakeLogs::default(),
            limiter: RateLimiter::new(5.0),
            metrics,
            clock: clock.clone(),
            settings: Settings {
                poll_interval: Duration::from_secs(60),
                lookback: Duration::from_secs(600),
                start_from: Duration::from_secs(600),
                margin: Duration::from_secs(60),
            },
        };
        let cap = 100;
        {
            let mut st = sh.client.state.lock().expect("lock");
            st.page = 10;
            st.clock_ms = clock.now_ms();
            // 400 requests that each add 15 events to a scan that reads 10 a
            // page: it cannot end for 80 s (at 5 requests a second).
            st.grow = Some(("g".into(), 400, 15, clock.clone()));
        }
        for i in 0..50 {
            sh.client.put("g", "a", i, clock.now_ms() - 100_000 + i as i64);
        }
        let sink = CountSink::default();
        let saver = RecordSave::default();
        let mut p = GroupPoller::new("g".into(), None, sink.clone(), &sh.metrics, sh.settings.margin);
        p.set_key_cap(cap);
        let cancel = CancellationToken::new();
        let first = p.poll(&sh, &cancel, &saver).await.expect("poll");
        assert!(first.pages > 400, "{first:?}");
        assert!(p.window().len() <= cap);
        {
            let saves = saver.0.lock().expect("lock");
            assert!(!saves.is_empty(), "saved mid-scan");
            for cp in saves.iter() {
                let keys = cp.unpack_keys().expect("keys").len();
                assert!(keys <= cap, "{keys} keys in a saved checkpoint");
                assert!(serde_json::to_vec(cp).expect("json").len() < 64 * 1024);
            }
        }
        let m = &sh.metrics;
        let deferred = m.dedup_cap_events.with_label_values(&["g", "deferred"]).get();
        assert!(deferred > 0, "the cap was reached");
        assert_eq!(m.dedup_keys_limit.with_label_values(&["g"]).get(), cap as i64);
        // Later polls, with a trickle of new events (CloudWatch's clock
        // moving on), count what was deferred, once.
        let mut id = 1000;
        for _ in 0..15 {
            tokio::time::advance(Duration::from_secs(60)).await;
            sh.client.state.lock().expect("lock").clock_ms = clock.now_ms();
            for _ in 0..3 {
                sh.client.put("g", "t", id, clock.now_ms() - 1000);
                id += 1;
            }
            p.poll(&sh, &cancel, &NoSave).await.expect("poll");
            assert!(p.window().len() <= cap);
        }
        let grown = sh.client.state.lock().expect("lock").grown;
        assert_eq!(grown, 6000);
        let counts = sink.0.lock().expect("lock");
        assert_eq!(counts.len(), 50 + grown + (id - 1000), "every event counted");
        assert!(counts.values().all(|&c| c == 1), "none twice");
        assert!(m.dedup_cap_events.with_label_values(&["g", "counted_without_key"]).get() > 0);
    }
}
