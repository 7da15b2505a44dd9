//! The HTTP server: `--web.telemetry-path` (default `/metrics`, gzip when the
//! scraper accepts it), `/` a landing page, `/-/healthy`, `/-/ready`, over
//! plain HTTP or TLS with basic auth as `--web.config.file` says. It cannot be
//! starved: connections are capped below the descriptor limit (the oldest one
//! not serving a request makes room for a new one), each phase of a connection
//! has a deadline, accept errors back off, and shutdown is bounded. It takes a
//! bound listener and a shutdown token, so tests bind `127.0.0.1:0`.
//!
//! The connection handling (cap, deadlines, TLS, back-off, shutdown) is
//! [`serve_with`], shared by every listener: this server's endpoints are one
//! [`Service`], the Firehose receiver another.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderValue, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::web_config::WebConfigHandle;
use super::{encode, Readiness};

/// `--web.max-connections` default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Descriptors kept free below the process's limit (`RLIMIT_NOFILE`) for
/// everything else (AWS connections, files, the runtime): the connection cap
/// is at most the limit minus this.
pub const DESCRIPTOR_HEADROOM: u64 = 64;
/// Fewest connections the cap may be clamped to before start-up is refused.
pub const MIN_CONNECTIONS: u64 = 8;
/// Bytes a connection may buffer for a request head (hyper's read buffer).
pub const MAX_REQUEST_BUFFER: usize = 64 * 1024;

/// What the server serves.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub registry: Registry,
    pub telemetry_path: String,
    pub readiness: Readiness,
    /// One line for the landing page (`demo`, `live: 3 log groups`, ...).
    pub mode: String,
    /// TLS and basic auth (`--web.config.file`); plain HTTP by default.
    pub web: WebConfigHandle,
    pub limits: ServerLimits,
}

impl ServerConfig {
    /// Plain HTTP with the default limits.
    pub fn new(registry: Registry, telemetry_path: String, readiness: Readiness, mode: String) -> ServerConfig {
        ServerConfig {
            registry,
            telemetry_path,
            readiness,
            mode,
            web: WebConfigHandle::plain(),
            limits: ServerLimits::default(),
        }
    }
}

/// The server's limits and timeouts (see docs/web.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections open at once (`--web.max-connections`).
    pub max_connections: usize,
    /// A new connection must complete its TLS handshake and send a whole
    /// request head within this time of being accepted; a kept-alive one,
    /// within this time of its first byte of the next request.
    pub header_read_timeout: Duration,
    /// A kept-alive connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// From a request head to the end of its response (slow readers).
    pub request_timeout: Duration,
    /// After the shutdown signal, in-flight requests get this long.
    pub shutdown_grace: Duration,
}

impl Default for ServerLimits {
    fn default() -> ServerLimits {
        ServerLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(3),
        }
    }
}

/// A connection cap that the descriptor limit cannot hold.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("--web.max-connections: must be at least 1")]
    Zero,
    #[error(
        "--web.max-connections: the open-files limit ({limit}) leaves room for fewer than {MIN_CONNECTIONS} \
         connections after {DESCRIPTOR_HEADROOM} reserved descriptors; raise it (ulimit -n)"
    )]
    DescriptorLimit { limit: u64 },
}

impl ServerLimits {
    /// The default limits with `requested` connections, clamped (with a
    /// warning) to the open-files limit minus [`DESCRIPTOR_HEADROOM`].
    pub fn with_max_connections(requested: usize) -> Result<ServerLimits, LimitError> {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        Ok(ServerLimits { max_connections: connection_cap(requested, limit)?, ..ServerLimits::default() })
    }
}

fn connection_cap(requested: usize, nofile: Option<u64>) -> Result<usize, LimitError> {
    if requested == 0 {
        return Err(LimitError::Zero);
    }
    let Some(limit) = nofile else { return Ok(requested) };
    let room = limit.saturating_sub(DESCRIPTOR_HEADROOM);
    if room < MIN_CONNECTIONS {
        return Err(LimitError::DescriptorLimit { limit });
    }
    if requested as u64 > room {
        let cap = usize::try_from(room).unwrap_or(usize::MAX);
        tracing::warn!(
            requested,
            cap,
            open_files_limit = limit,
            "--web.max-connections is above the open-files limit minus {DESCRIPTOR_HEADROOM}; using the lower cap"
        );
        return Ok(cap);
    }
    Ok(requested)
}

/// The server's own metrics, in the registry it serves.
#[derive(Debug, Clone)]
struct HttpMetrics {
    open: IntGauge,
    accepted: IntCounter,
    rejected: IntCounter,
    closed: IntCounterVec,
    accept_errors: IntCounter,
}

/// Why the server closed a connection (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    /// The client closed it or the exchange ended normally: not counted.
    Done,
    Evicted,
    HeaderTimeout,
    IdleTimeout,
    RequestTimeout,
    TlsHandshake,
    Shutdown,
}

impl Close {
    const COUNTED: [Close; 6] = [
        Close::Evicted,
        Close::HeaderTimeout,
        Close::IdleTimeout,
        Close::RequestTimeout,
        Close::TlsHandshake,
        Close::Shutdown,
    ];

    fn label(self) -> &'static str {
        match self {
            Close::Done => "done",
            Close::Evicted => "evicted",
            Close::HeaderTimeout => "header_timeout",
            Close::IdleTimeout => "idle_timeout",
            Close::RequestTimeout => "request_timeout",
            Close::TlsHandshake => "tls_handshake_failed",
            Close::Shutdown => "shutdown",
        }
    }
}

impl HttpMetrics {
    /// The connection metrics, named `{prefix}_connections_*` and
    /// `{prefix}_accept_errors_total`.
    fn register(registry: &Registry, cap: usize, prefix: &str) -> HttpMetrics {
        let gauge =
            |name: &str, help: &str| IntGauge::new(format!("{prefix}_{name}"), help).expect("valid metric descriptor");
        let counter = |name: &str, help: &str| {
            IntCounter::new(format!("{prefix}_{name}"), help).expect("valid metric descriptor")
        };
        let max = gauge(
            "connections_max",
            "Connections the HTTP server holds open at once (--web.max-connections, clamped to the open-files limit minus 64).",
        );
        max.set(i64::try_from(cap).unwrap_or(i64::MAX));
        let m = HttpMetrics {
            open: gauge("connections_open", "HTTP connections open now."),
            accepted: counter("connections_accepted_total", "HTTP connections accepted."),
            rejected: counter(
                "connections_rejected_total",
                "Connections closed at once because the cap was reached and every open connection was serving a request.",
            ),
            closed: IntCounterVec::new(
                Opts::new(
                    format!("{prefix}_connections_closed_total"),
                    "Connections the server closed, by reason: evicted (the oldest connection not serving a request, \
                     to make room at the cap), header_timeout, idle_timeout, request_timeout, tls_handshake_failed, \
                     shutdown.",
                ),
                &["reason"],
            )
            .expect("valid metric descriptor"),
            accept_errors: counter(
                "accept_errors_total",
                "Failed accept() calls (e.g. out of file descriptors); accepting backs off.",
            ),
        };
        for reason in Close::COUNTED {
            m.closed.with_label_values(&[reason.label()]);
        }
        let collectors: [Box<dyn prometheus::core::Collector>; 6] = [
            Box::new(max),
            Box::new(m.open.clone()),
            Box::new(m.accepted.clone()),
            Box::new(m.rejected.clone()),
            Box::new(m.closed.clone()),
            Box::new(m.accept_errors.clone()),
        ];
        for c in collectors {
            // Only a second server on the same registry gets here; its
            // counts then go unexposed rather than stopping the server.
            if let Err(e) = registry.register(c) {
                tracing::warn!(error = %e, "Cannot register an HTTP server metric");
            }
        }
        m
    }
}

/// Where a connection is in its life, for its deadline and for eviction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for (the rest of) a request head, TLS handshake included.
    Head,
    /// Serving a request: from its head to the end of its response body.
    Busy,
    /// Kept alive between requests, nothing received yet.
    Idle,
}

#[derive(Debug)]
struct PhaseState {
    phase: Phase,
    since: Instant,
    busy: u32,
}

/// One open connection as the server tracks it.
#[derive(Debug)]
struct ConnState {
    kill: CancellationToken,
    changed: Notify,
    state: Mutex<PhaseState>,
}

impl ConnState {
    fn new() -> ConnState {
        ConnState {
            kill: CancellationToken::new(),
            changed: Notify::new(),
            state: Mutex::new(PhaseState { phase: Phase::Head, since: Instant::now(), busy: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PhaseState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Bytes arrived: an idle connection starts a request head, whose
    /// deadline is earlier than the idle one.
    fn on_bytes(&self) {
        let mut s = self.lock();
        if s.phase == Phase::Idle {
            s.phase = Phase::Head;
            s.since = Instant::now();
            drop(s);
            self.changed.notify_one();
        }
    }

    fn on_request(&self) {
        let mut s = self.lock();
        let started = s.busy == 0;
        if started {
            s.phase = Phase::Busy;
            s.since = Instant::now();
        }
        s.busy += 1;
        drop(s);
        if started {
            // The request deadline may come before the head one being waited
            // for (a Firehose request_timeout under header_read_timeout).
            self.changed.notify_one();
        }
    }

    fn on_response_done(&self) {
        let mut s = self.lock();
        s.busy = s.busy.saturating_sub(1);
        if s.busy == 0 {
            s.phase = Phase::Idle;
            s.since = Instant::now();
        }
    }

    fn deadline(&self, limits: &ServerLimits) -> (Instant, Phase) {
        let s = self.lock();
        let d = match s.phase {
            Phase::Head => limits.header_read_timeout,
            Phase::Busy => limits.request_timeout,
            Phase::Idle => limits.idle_timeout,
        };
        (s.since + d, s.phase)
    }

    fn evictable(&self) -> bool {
        self.lock().phase != Phase::Busy && !self.kill.is_cancelled()
    }
}

/// The open connections, oldest first.
#[derive(Debug, Default)]
struct Tracker {
    next: AtomicU64,
    conns: Mutex<BTreeMap<u64, Arc<ConnState>>>,
}

impl Tracker {
    fn add(self: &Arc<Self>) -> Registered {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState::new());
        self.conns.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id, state.clone());
        Registered { tracker: self.clone(), id, state }
    }

    /// Closes the oldest connection that is not serving a request; false
    /// when every connection is.
    fn evict_oldest_idle(&self) -> bool {
        let conns = self.conns.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match conns.values().find(|c| c.evictable()) {
            Some(c) => {
                c.kill.cancel();
                true
            }
            None => false,
        }
    }
}

/// A connection's entry in the tracker, removed when the task ends.
struct Registered {
    tracker: Arc<Tracker>,
    id: u64,
    state: Arc<ConnState>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.tracker.conns.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.id);
    }
}

/// Exponential back-off of failed accepts, logged at most every 10 s.
#[derive(Debug, Default)]
struct AcceptBackoff {
    delay: Duration,
    last_log: Option<Instant>,
    suppressed: u64,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);
    const LOG_EVERY: Duration = Duration::from_secs(10);

    fn failed(&mut self, error: &std::io::Error) -> Duration {
        self.delay = if self.delay.is_zero() { Self::FIRST } else { (self.delay * 2).min(Self::MAX) };
        let now = Instant::now();
        if self.last_log.is_none_or(|t| now.duration_since(t) >= Self::LOG_EVERY) {
            tracing::warn!(
                %error,
                suppressed = self.suppressed,
                retry_in_ms = self.delay.as_millis() as u64,
                "Accepting a connection failed; backing off"
            );
            self.last_log = Some(now);
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
        self.delay
    }

    fn succeeded(&mut self) {
        self.delay = Duration::ZERO;
    }
}

/// A response as every listener sends it.
pub type HttpResponse = Response<Full<Bytes>>;

/// What a listener answers, request by request (the connection handling
/// around it is [`serve_with`]'s).
pub trait Service: Send + Sync + 'static {
    fn call(&self, req: Request<Incoming>) -> Pin<Box<dyn Future<Output = HttpResponse> + Send + '_>>;
}

/// A listener's connection handling: TLS from the web configuration, the
/// limits and deadlines, and where its connection metrics go.
#[derive(Debug, Clone)]
pub struct Connections {
    pub registry: Registry,
    /// Metric names start with it (`vpc_flow_exporter_http` for `/metrics`).
    pub metric_prefix: &'static str,
    pub web: WebConfigHandle,
    pub limits: ServerLimits,
}

struct Shared {
    web: WebConfigHandle,
    limits: ServerLimits,
    service: Arc<dyn Service>,
    metrics: HttpMetrics,
    tracker: Arc<Tracker>,
}

/// This server's endpoints as a [`Service`].
struct Endpoints {
    config: ServerConfig,
    unauthorized: IntCounter,
}

impl Service for Endpoints {
    fn call(&self, req: Request<Incoming>) -> Pin<Box<dyn Future<Output = HttpResponse> + Send + '_>> {
        Box::pin(respond(self, req))
    }
}

/// Serves until `shutdown` is cancelled, then stops accepting, lets requests
/// in flight finish for `limits.shutdown_grace`, and drops the rest.
pub async fn serve(listener: TcpListener, config: ServerConfig, shutdown: CancellationToken) {
    let unauthorized = IntCounter::new(
        "vpc_flow_exporter_http_requests_unauthorized_total",
        "Requests answered 401 for missing or wrong basic-auth credentials.",
    )
    .expect("valid metric descriptor");
    if let Err(e) = config.registry.register(Box::new(unauthorized.clone())) {
        tracing::warn!(error = %e, "Cannot register an HTTP server metric");
    }
    let connections = Connections {
        registry: config.registry.clone(),
        metric_prefix: "vpc_flow_exporter_http",
        web: config.web.clone(),
        limits: config.limits,
    };
    serve_with(listener, connections, Arc::new(Endpoints { config, unauthorized }), shutdown).await;
}

/// Serves `service` on `listener` with the connection handling of
/// `connections` until `shutdown` (see [`serve`]).
pub async fn serve_with(
    listener: TcpListener,
    connections: Connections,
    service: Arc<dyn Service>,
    shutdown: CancellationToken,
) {
    let limits = connections.limits;
    let metrics = HttpMetrics::register(&connections.registry, limits.max_connections, connections.metric_prefix);
    let web = connections.web;
    let shared = Arc::new(Shared { web, limits, service, metrics, tracker: Arc::new(Tracker::default()) });
    let permits = Arc::new(Semaphore::new(limits.max_connections.min(Semaphore::MAX_PERMITS)));
    let mut conns = tokio::task::JoinSet::new();
    let mut backoff = AcceptBackoff::default();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff.succeeded();
                a
            }
            Err(e) => {
                shared.metrics.accept_errors.inc();
                if matches!(e.raw_os_error(), Some(23 | 24)) {
                    // Out of descriptors (ENFILE, EMFILE): free one if we can.
                    shared.tracker.evict_oldest_idle();
                }
                let delay = backoff.failed(&e);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(delay) => continue,
                }
            }
        };
        shared.metrics.accepted.inc();
        let Some(permit) = make_room(&shared, &permits).await else {
            shared.metrics.rejected.inc();
            tracing::debug!(%peer, "Connection cap reached and every connection is serving; closing the new one");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let registered = shared.tracker.add();
        conns.spawn(connection(shared.clone(), stream, peer, registered, permit, shutdown.clone()));
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    let grace = tokio::time::sleep(limits.shutdown_grace);
    tokio::pin!(grace);
    loop {
        tokio::select! {
            next = conns.join_next() => if next.is_none() { break },
            _ = &mut grace => {
                tracing::info!(open = conns.len(), "Shutdown grace period over; closing the remaining connections");
                conns.abort_all();
                while conns.join_next().await.is_some() {}
                break;
            }
        }
    }
}

/// A connection slot: a free one, or the one of the oldest connection not
/// serving a request, which is closed for it. `None` when every connection
/// is serving a request.
async fn make_room(shared: &Shared, permits: &Arc<Semaphore>) -> Option<OwnedSemaphorePermit> {
    if let Ok(p) = permits.clone().try_acquire_owned() {
        return Some(p);
    }
    if !shared.tracker.evict_oldest_idle() {
        return None;
    }
    // The evicted task drops its slot as soon as it runs.
    tokio::time::timeout(Duration::from_secs(1), permits.clone().acquire_owned()).await.ok()?.ok()
}

/// Decrements the open-connections gauge when the task ends, however.
struct OpenGuard(IntGauge);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

async fn connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: std::net::SocketAddr,
    registered: Registered,
    permit: OwnedSemaphorePermit,
    shutdown: CancellationToken,
) {
    let _permit = permit;
    shared.metrics.open.inc();
    let _open = OpenGuard(shared.metrics.open.clone());
    let state = registered.state.clone();
    let limits = shared.limits;
    let close = match shared.web.current().tls() {
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls);
            let deadline = state.deadline(&limits).0;
            let handshake = tokio::select! {
                r = tokio::time::timeout_at(deadline, acceptor.accept(stream)) => Some(r),
                _ = state.kill.cancelled() => None,
                _ = shutdown.cancelled() => None,
            };
            match handshake {
                None if shutdown.is_cancelled() => Close::Shutdown,
                None => Close::Evicted,
                Some(Err(_)) => Close::HeaderTimeout,
                Some(Ok(Err(e))) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    Close::TlsHandshake
                }
                Some(Ok(Ok(tls_stream))) => drive(&shared, tls_stream, peer, &state, &shutdown).await,
            }
        }
        None => drive(&shared, stream, peer, &state, &shutdown).await,
    };
    if close != Close::Done {
        shared.metrics.closed.with_label_values(&[close.label()]).inc();
    }
    drop(registered);
}

/// Serves HTTP/1.1 on one connection until it ends, a deadline passes, it is
/// evicted, or shutdown asks it to finish.
async fn drive<T>(
    shared: &Arc<Shared>,
    io: T,
    peer: std::net::SocketAddr,
    state: &Arc<ConnState>,
    shutdown: &CancellationToken,
) -> Close
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = shared.limits;
    let io = TokioIo::new(Watched { inner: io, conn: state.clone() });
    let svc = {
        let shared = shared.clone();
        let state = state.clone();
        service_fn(move |req| {
            let shared = shared.clone();
            let state = state.clone();
            async move {
                state.on_request();
                let busy = BusyGuard(state);
                let resp = shared.service.call(req).await;
                Ok::<_, Infallible>(resp.map(|inner| TrackedBody { inner, _busy: busy }))
            }
        })
    };
    let mut builder = http1::Builder::new();
    // hyper's own header timer is a backstop; the deadlines below are finer.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout + limits.idle_timeout)
        .max_buf_size(MAX_REQUEST_BUFFER);
    let conn = builder.serve_connection(io, svc);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        let (deadline, _) = state.deadline(&limits);
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(%peer, error = %e, "Connection ended with an error");
                }
                return Close::Done;
            }
            _ = tokio::time::sleep_until(deadline) => {
                let (deadline, phase) = state.deadline(&limits);
                if deadline <= Instant::now() {
                    return match phase {
                        Phase::Head => Close::HeaderTimeout,
                        Phase::Busy => Close::RequestTimeout,
                        Phase::Idle => Close::IdleTimeout,
                    };
                }
            }
            _ = state.changed.notified() => {}
            _ = state.kill.cancelled() => return Close::Evicted,
            _ = shutdown.cancelled(), if !draining => {
                // Idle connections close now; a request in flight finishes.
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
        }
    }
}

/// The transport of a connection, reporting received bytes to its state.
struct Watched<T> {
    inner: T,
    conn: Arc<ConnState>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut me.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            me.conn.on_bytes();
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Marks the connection busy while a response exists.
struct BusyGuard(Arc<ConnState>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.on_response_done();
    }
}

/// A response body that keeps its connection marked busy until hyper has
/// taken all of it.
struct TrackedBody {
    inner: Full<Bytes>,
    _busy: BusyGuard,
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Authentication (for every path, as in the exporter-toolkit), then the
/// endpoint, then the configured response headers.
async fn respond(endpoints: &Endpoints, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let web = &endpoints.config.web;
    let mut resp = if web.authorize(req.headers().get(AUTHORIZATION)).await {
        handle(&endpoints.config, req)
    } else {
        endpoints.unauthorized.inc();
        let mut r = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
        r.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
        r
    };
    for (name, value) in web.current().headers() {
        resp.headers_mut().insert(name.clone(), value.clone());
    }
    resp
}

fn handle(config: &ServerConfig, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed\n");
    }
    let path = req.uri().path();
    if path == config.telemetry_path {
        let gzip = req
            .headers()
            .get(ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
        return metrics(config, gzip);
    }
    match path {
        "/" => landing(config),
        "/-/healthy" => text(StatusCode::OK, "Healthy\n"),
        "/-/ready" => match config.readiness.waiting() {
            waiting if waiting.is_empty() => text(StatusCode::OK, "Ready\n"),
            waiting => {
                text(StatusCode::SERVICE_UNAVAILABLE, format!("Not ready: waiting for {}\n", waiting.join(", ")))
            }
        },
        _ => text(StatusCode::NOT_FOUND, "Not found\n"),
    }
}

fn metrics(config: &ServerConfig, gzip: bool) -> Response<Full<Bytes>> {
    let body = encode(&config.registry);
    let mut resp = if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
        match enc.write_all(body.as_bytes()).and_then(|_| enc.finish()) {
            Ok(z) => {
                let mut r = Response::new(Full::new(Bytes::from(z)));
                r.headers_mut().insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                r
            }
            Err(_) => Response::new(Full::new(Bytes::from(body))),
        }
    } else {
        Response::new(Full::new(Bytes::from(body)))
    };
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(prometheus::TEXT_FORMAT));
    resp
}

fn landing(config: &ServerConfig) -> Response<Full<Bytes>> {
    let path = html_escape(&config.telemetry_path);
    let mode = html_escape(&config.mode);
    let waiting = config.readiness.waiting();
    let ready = if waiting.is_empty() {
        "ready (every source has been read at least once)".to_owned()
    } else {
        html_escape(&format!("not ready yet: waiting for {}", waiting.join(", ")))
    };
    let body = format!(
        "<!DOCTYPE html>\n<html><head><title>VPC Flow Exporter</title></head>\n<body>\n<h1>VPC Flow Exporter</h1>\n\
         <p>Version {version}.</p>\n<p>Sources: {mode}.</p>\n<p>Readiness: {ready}.</p>\n\
         <ul>\n<li><a href=\"{path}\">Metrics</a></li>\n\
         <li><a href=\"/-/healthy\">Health</a></li>\n<li><a href=\"/-/ready\">Readiness</a></li>\n</ul>\n</body></html>\n",
        version = env!("CARGO_PKG_VERSION"),
    );
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_stays_below_the_descriptor_limit() {
        assert_eq!(connection_cap(512, Some(1024)).unwrap(), 512);
        assert_eq!(connection_cap(512, Some(256)).unwrap(), 192);
        assert_eq!(connection_cap(512, None).unwrap(), 512);
        assert!(matches!(connection_cap(0, Some(1024)), Err(LimitError::Zero)));
        assert!(matches!(connection_cap(10, Some(70)), Err(LimitError::DescriptorLimit { limit: 70 })));
    }

    #[tokio::test(start_paused = true)]
    async fn each_phase_has_its_deadline() {
        let limits = ServerLimits::default();
        let c = ConnState::new();
        let t0 = Instant::now();
        assert_eq!(c.deadline(&limits), (t0 + limits.header_read_timeout, Phase::Head));
        c.on_request();
        assert!(!c.evictable(), "a connection serving a request is never evicted");
        assert_eq!(c.deadline(&limits).1, Phase::Busy);
        tokio::time::advance(Duration::from_secs(1)).await;
        c.on_response_done();
        let t1 = Instant::now();
        assert_eq!(c.deadline(&limits), (t1 + limits.idle_timeout, Phase::Idle));
        assert!(c.evictable());
        tokio::time::advance(Duration::from_secs(5)).await;
        c.on_bytes();
        assert_eq!(c.deadline(&limits), (Instant::now() + limits.header_read_timeout, Phase::Head));
        c.on_bytes();
        assert_eq!(
            c.deadline(&limits).0,
            t1 + Duration::from_secs(5) + limits.header_read_timeout,
            "bytes do not extend it"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn accept_errors_back_off_exponentially() {
        let mut b = AcceptBackoff::default();
        let e = std::io::Error::from_raw_os_error(24);
        let delays: Vec<u128> = (0..10).map(|_| b.failed(&e).as_millis()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(b.suppressed, 9, "logged once, the rest counted");
        b.succeeded();
        assert_eq!(b.failed(&e).as_millis(), 5);
    }
}
