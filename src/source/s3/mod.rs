//! The S3 source: flow logs delivered to S3 and announced on SQS, read by
//! N identical replicas competing for messages. The loop ([`Source::run`]):
//! long-poll SQS (up to 10 messages, as many as free slots of the
//! `concurrency` pool), read each message ([`notification`]), skip objects
//! outside `key_prefix`, drop duplicates ([`dedup`]: per replica, and
//! across replicas with the DynamoDB claim table), stream each object from
//! GetObject into the pipeline's file input on a blocking thread
//! ([`object`], [`parquet`]), commit it whole, then delete the message.
//! The message's visibility (and the claim's lease) is extended every half
//! visibility timeout while in work; at shutdown, objects in work get
//! `shutdown_grace` to finish, else their messages are released.
//! AWS calls: [`client`]; health metrics: [`metrics`]; `replay s3://`:
//! [`replay`]. docs/s3.md describes what users see.

pub mod client;
pub mod dedup;
pub mod metrics;
pub mod notification;
pub mod object;
pub mod parquet;
pub mod replay;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use notification::{Notification, NotificationError, ObjectId, ObjectRef};
pub use object::{decode, Limits, ObjectError, ObjectKind, ObjectSink, Summary};

use crate::config::S3Config;
use crate::expose::Readiness;
use crate::parse::{ParseError, Record};
use crate::pipeline::{FileInput, Pipeline};
use crate::source::cloudwatch::client::{ApiError, ErrorKind};
use crate::source::cloudwatch::retry::Backoff;
use client::{op, Claim, Message, S3Api, SdkClients};
use dedup::RecentObjects;
use metrics::Metrics;
use notification::Shape;

/// SQS long polling: the longest wait SQS allows.
pub const RECEIVE_WAIT: Duration = Duration::from_secs(20);
/// The most messages one ReceiveMessage returns.
pub const RECEIVE_MAX: usize = 10;

/// Why the source cannot start.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("cannot set up the S3 and SQS clients")]
    Client(#[source] client::SetupError),
    #[error("cannot register the S3 health metrics")]
    Metrics(#[source] prometheus::Error),
}

impl ObjectSink for FileInput {
    fn lines(&mut self, buf: &[u8]) {
        FileInput::lines(self, buf);
    }
    fn line(&mut self, line: &[u8]) {
        FileInput::line(self, line);
    }
    fn records(&mut self, records: &[Record<'_>]) {
        FileInput::records(self, records);
    }
    fn invalid(&mut self, reason: ParseError) {
        FileInput::invalid(self, reason);
    }
}

/// The live S3 source over the AWS SDK.
pub struct S3Source {
    inner: Source<SdkClients>,
}

impl S3Source {
    /// Builds the clients (default chain, region, endpoint_url, role_arn)
    /// and registers the metrics.
    pub async fn new(cfg: S3Config, registry: &prometheus::Registry) -> Result<S3Source, S3Error> {
        let client = SdkClients::from_config(&cfg).await.map_err(S3Error::Client)?;
        Ok(S3Source { inner: Source::with_client(client, cfg, registry)? })
    }

    /// Receives and counts until `shutdown` (see [`Source::run`]).
    pub async fn run(self, pipeline: Pipeline, ready: Readiness, shutdown: CancellationToken) -> Result<(), S3Error> {
        self.inner.run(pipeline, ready, shutdown).await
    }
}

/// The source over any [`S3Api`].
pub struct Source<C> {
    shared: Arc<Shared<C>>,
}

struct Shared<C> {
    client: C,
    cfg: S3Config,
    metrics: Metrics,
    recent: Mutex<RecentObjects>,
    owner: String,
    limits: Limits,
}

/// What becomes of a message after one of its objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Counted, duplicate or skipped: the message may go.
    Done,
    /// Not counted: the message stays (back after the visibility timeout,
    /// or after the given time: when another replica's claim ends).
    Leave(Option<Duration>),
    /// Shutdown before the object finished: the message is made visible now.
    Release,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl<C: S3Api> Source<C> {
    pub fn with_client(client: C, cfg: S3Config, registry: &prometheus::Registry) -> Result<Source<C>, S3Error> {
        let metrics = Metrics::register(registry).map_err(S3Error::Metrics)?;
        metrics.concurrency.set(cfg.concurrency as i64);
        let shared = Shared {
            client,
            cfg,
            metrics,
            recent: Mutex::new(RecentObjects::new(dedup::RECENT_OBJECTS)),
            owner: dedup::owner_id(),
            limits: Limits::default(),
        };
        Ok(Source { shared: Arc::new(shared) })
    }

    /// Receives messages until `shutdown`, at most `concurrency` in work;
    /// ready once the queue answered. At shutdown: receiving stops, objects
    /// in work get `shutdown_grace`, then the rest are released.
    pub async fn run(self, pipeline: Pipeline, ready: Readiness, shutdown: CancellationToken) -> Result<(), S3Error> {
        let sh = self.shared;
        let slots = Arc::new(Semaphore::new(sh.cfg.concurrency));
        let abort = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let mut failures = 0u32;
        info!(queue = %crate::source::cloudwatch::client::redact_url(&sh.cfg.queue_url), endpoint = %client::Target::of(&sh.cfg).shown_endpoint(), concurrency = sh.cfg.concurrency, dedup_table = sh.cfg.dedup_table.as_deref().unwrap_or("none"), "Receiving S3 notifications from SQS");
        loop {
            while tasks.try_join_next().is_some() {}
            let Some(mut permits) = free_slots(&slots, &shutdown).await else { break };
            let max = permits.len() as i32;
            let vt = sh.cfg.visibility_timeout;
            let res = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = sh.client.receive(max, RECEIVE_WAIT, vt) => r,
            };
            sh.metrics.request(op::RECEIVE, &res);
            match res {
                Ok(messages) => {
                    failures = 0;
                    ready.set(true);
                    sh.metrics.received.inc_by(messages.len() as u64);
                    for (m, permit) in messages.into_iter().zip(permits.drain(..)) {
                        tasks.spawn(handle_message(sh.clone(), pipeline.clone(), m, permit, abort.clone()));
                    }
                }
                Err(e) => {
                    failures += 1;
                    warn!(error = %e, failures, "ReceiveMessage failed; backing off");
                    let delay = Backoff::REQUEST.delay(failures);
                    tokio::select! { _ = shutdown.cancelled() => break, _ = tokio::time::sleep(delay) => {} }
                }
            }
        }
        drain(&mut tasks, sh.cfg.shutdown_grace, &abort).await;
        Ok(())
    }
}

/// At least one free slot (waiting for it), and as many more as are free,
/// up to [`RECEIVE_MAX`]; None at shutdown.
async fn free_slots(slots: &Arc<Semaphore>, shutdown: &CancellationToken) -> Option<Vec<OwnedSemaphorePermit>> {
    let first = tokio::select! {
        _ = shutdown.cancelled() => return None,
        p = slots.clone().acquire_owned() => p.ok()?,
    };
    let mut permits = vec![first];
    while permits.len() < RECEIVE_MAX {
        match slots.clone().try_acquire_owned() {
            Ok(p) => permits.push(p),
            Err(_) => break,
        }
    }
    Some(permits)
}

/// Waits for the messages in work for `grace`, then releases the rest.
async fn drain(tasks: &mut JoinSet<()>, grace: Duration, abort: &CancellationToken) {
    if !tasks.is_empty() {
        info!(
            in_work = tasks.len(),
            grace_s = grace.as_secs_f64(),
            "Stopped receiving; letting objects in work finish"
        );
    }
    let finished = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if finished.is_err() {
        warn!(in_work = tasks.len(), "Objects still in work after the shutdown grace; releasing their messages");
        abort.cancel();
        while tasks.join_next().await.is_some() {}
    }
}

/// One message: parsed, its objects read, then deleted, left or released.
async fn handle_message<C: S3Api>(
    sh: Arc<Shared<C>>,
    pipeline: Pipeline,
    m: Message,
    _permit: OwnedSemaphorePermit,
    abort: CancellationToken,
) {
    let objects = match notification::parse(m.body.as_bytes()) {
        Err(e) => {
            sh.metrics.message_errors.with_label_values(&[e.reason()]).inc();
            debug!(reason = e.reason(), error = %e, "A message is not an S3 notification; left to the redrive policy");
            return;
        }
        Ok(Notification::Ignored(why)) => {
            sh.metrics.ignored.with_label_values(&[why.as_str()]).inc();
            delete(&sh, &m.receipt).await;
            return;
        }
        Ok(Notification::Objects(objects)) => objects,
    };
    let held = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop_beat = CancellationToken::new();
    tokio::spawn(heartbeat(sh.clone(), m.receipt.clone(), held.clone(), stop_beat.clone()));
    let mut fate = Fate::Done;
    for o in &objects {
        let f = process_object(&sh, &pipeline, o, &held, &abort).await;
        fate = match (fate, f) {
            (_, Fate::Release) | (Fate::Release, _) => Fate::Release,
            (Fate::Leave(a), Fate::Leave(b)) => Fate::Leave(a.max(b)),
            (Fate::Leave(a), Fate::Done) | (Fate::Done, Fate::Leave(a)) => Fate::Leave(a),
            (Fate::Done, Fate::Done) => Fate::Done,
        };
        if fate == Fate::Release {
            break;
        }
    }
    stop_beat.cancel();
    match fate {
        Fate::Done => delete(&sh, &m.receipt).await,
        Fate::Leave(None) => {}
        Fate::Leave(Some(after)) => visibility(&sh, &m.receipt, after).await,
        Fate::Release => {
            visibility(&sh, &m.receipt, Duration::ZERO).await;
            sh.metrics.released.inc();
        }
    }
}

/// Extends the message's visibility, and the claims held, every half
/// visibility timeout until stopped.
async fn heartbeat<C: S3Api>(
    sh: Arc<Shared<C>>,
    receipt: String,
    held: Arc<Mutex<Vec<String>>>,
    stop: CancellationToken,
) {
    let vt = sh.cfg.visibility_timeout;
    loop {
        tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(vt / 2) => {} }
        let res = sh.client.change_visibility(&receipt, vt).await;
        sh.metrics.request(op::VISIBILITY, &res);
        match res {
            Ok(()) => sh.metrics.extensions.inc(),
            Err(e) => warn!(error = %e, "Cannot extend a message's visibility; another replica may receive it"),
        }
        let keys = held.lock().unwrap_or_else(PoisonError::into_inner).clone();
        for key in keys {
            let res = sh.client.extend(&key, &sh.owner, now_ms() + vt.as_millis() as u64).await;
            sh.metrics.request(op::UPDATE_ITEM, &res);
        }
    }
}

async fn delete<C: S3Api>(sh: &Shared<C>, receipt: &str) {
    for attempt in 1..=3 {
        let res = sh.client.delete(receipt).await;
        sh.metrics.request(op::DELETE, &res);
        match res {
            Ok(()) => {
                sh.metrics.deleted.inc();
                return;
            }
            Err(e) if e.kind.is_transient() && attempt < 3 => tokio::time::sleep(Backoff::REQUEST.delay(attempt)).await,
            Err(e) => {
                warn!(error = %e, "Cannot delete a message; it comes back and is counted as a duplicate");
                return;
            }
        }
    }
}

async fn visibility<C: S3Api>(sh: &Shared<C>, receipt: &str, after: Duration) {
    let res = sh.client.change_visibility(receipt, after).await;
    sh.metrics.request(op::VISIBILITY, &res);
    if let Err(e) = res {
        warn!(error = %e, "Cannot change a message's visibility; it comes back after the visibility timeout");
    }
}

/// One object: filters, duplicates, the claim, the read.
async fn process_object<C: S3Api>(
    sh: &Shared<C>,
    pipeline: &Pipeline,
    o: &ObjectRef,
    held: &Mutex<Vec<String>>,
    abort: &CancellationToken,
) -> Fate {
    if sh.cfg.key_prefix.as_ref().is_some_and(|p| !o.key.starts_with(p.as_str())) {
        sh.metrics.object("skipped");
        return Fate::Done;
    }
    let key = o.id().storage_key();
    {
        let mut recent = sh.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if recent.seen(&key) {
            sh.metrics.object("duplicate");
            return Fate::Done;
        }
        if !recent.start(&key) {
            // The same object in work here from another message.
            return Fate::Leave(None);
        }
    }
    sh.metrics.in_work.inc();
    let fate = claimed(sh, pipeline, o, &key, held, abort).await;
    sh.metrics.in_work.dec();
    let counted = fate == Fate::Done;
    let (forgotten, remembered) = {
        let mut recent = sh.recent.lock().unwrap_or_else(PoisonError::into_inner);
        (recent.finish(&key, counted), recent.len())
    };
    sh.metrics.recent_forgotten.inc_by(forgotten as u64);
    sh.metrics.recent.set(remembered as i64);
    fate
}

/// Claims the object (with a dedup table), reads it, commits, marks done.
async fn claimed<C: S3Api>(
    sh: &Shared<C>,
    pipeline: &Pipeline,
    o: &ObjectRef,
    key: &str,
    held: &Mutex<Vec<String>>,
    abort: &CancellationToken,
) -> Fate {
    let table = sh.cfg.dedup_table.is_some();
    if table {
        if let Some(fate) = claim(sh, key).await {
            return fate;
        }
        held.lock().unwrap_or_else(PoisonError::into_inner).push(key.to_owned());
    }
    let outcome = read_object(sh, pipeline, o, abort).await;
    let fate = match outcome {
        Ok((input, summary, started)) => {
            sh.metrics.records.inc_by(input.lines_read());
            input.commit();
            let committed = Instant::now();
            if table {
                mark_done(sh, key).await;
                sh.metrics.commit_to_done.observe(committed.elapsed().as_secs_f64());
            }
            observe(sh, o, &summary, started);
            Fate::Done
        }
        Err(Some(reason)) => {
            sh.metrics.object_error(reason);
            Fate::Leave(None)
        }
        Err(None) => Fate::Release,
    };
    if table {
        held.lock().unwrap_or_else(PoisonError::into_inner).retain(|k| k != key);
        if fate != Fate::Done {
            let res = sh.client.release(key, &sh.owner).await;
            sh.metrics.request(op::DELETE_ITEM, &res);
        }
    }
    fate
}

fn observe<C>(sh: &Shared<C>, o: &ObjectRef, summary: &Summary, started: Instant) {
    sh.metrics.object("ok");
    sh.metrics.object_bytes.inc_by(summary.object_bytes);
    sh.metrics.object_seconds.observe(started.elapsed().as_secs_f64());
    if let Some(t) = o.event_time_ms {
        sh.metrics.lag.observe(now_ms().saturating_sub(t) as f64 / 1000.0);
    }
}

/// The claim; `Some(fate)` when the object is not ours to read.
async fn claim<C: S3Api>(sh: &Shared<C>, key: &str) -> Option<Fate> {
    let now = now_ms();
    let lease = now + sh.cfg.visibility_timeout.as_millis() as u64;
    let res = sh.client.claim(key, &sh.owner, now, lease).await;
    sh.metrics.request(op::PUT_ITEM, &res);
    let result = |r: &str| sh.metrics.claims.with_label_values(&[r]).inc();
    match res {
        Ok(Claim::Won(None)) => {
            result("won");
            None
        }
        Ok(Claim::Won(Some(previous))) => {
            result("taken_over");
            info!(previous_owner = %previous, "Took over an object whose claim had expired (its replica stopped)");
            None
        }
        Ok(Claim::Lost(Some(item))) if item.done => {
            result("done_elsewhere");
            sh.metrics.object("duplicate");
            Some(Fate::Done)
        }
        Ok(Claim::Lost(item)) => {
            result("busy");
            let left = item.map_or(0, |i| i.lease_until_ms.saturating_sub(now));
            Some(Fate::Leave(Some(Duration::from_millis(left + 1000).min(sh.cfg.visibility_timeout))))
        }
        Err(e) => {
            warn!(error = %e, "Cannot claim an object in the dedup table; it is tried again later");
            sh.metrics.object_error("claim_failed");
            Some(Fate::Leave(None))
        }
    }
}

async fn mark_done<C: S3Api>(sh: &Shared<C>, key: &str) {
    let expires = now_ms() / 1000 + dedup::CLAIM_TTL.as_secs();
    for attempt in 1..=3 {
        let res = sh.client.done(key, &sh.owner, expires).await;
        sh.metrics.request(op::UPDATE_ITEM, &res);
        match res {
            Ok(true) => return,
            Ok(false) => {
                sh.metrics.claims.with_label_values(&["lost_lease"]).inc();
                warn!("An object's claim was taken over before it was marked done; it may be counted twice");
                return;
            }
            Err(e) if e.kind.is_transient() && attempt < 3 => tokio::time::sleep(Backoff::REQUEST.delay(attempt)).await,
            Err(e) => {
                warn!(error = %e, "Cannot mark an object's claim done; another replica may count it again after the lease");
                return;
            }
        }
    }
}

/// Why a read failed: a reason label, or None when aborted at shutdown.
type ReadFailure = Option<&'static str>;

/// GetObject streamed into a file input on a blocking thread.
async fn read_object<C: S3Api>(
    sh: &Shared<C>,
    pipeline: &Pipeline,
    o: &ObjectRef,
    abort: &CancellationToken,
) -> Result<(FileInput, Summary, Instant), ReadFailure> {
    let started = Instant::now();
    let body = tokio::select! {
        _ = abort.cancelled() => return Err(None),
        b = get_object(sh, o) => b,
    };
    let body = body.map_err(|e| {
        warn!(bucket = %o.bucket, key = %o.key, error = %e, "Cannot get an object; left to the redrive policy");
        Some(match e.kind {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AccessDenied => "access_denied",
            _ => "get_failed",
        })
    })?;
    let bridge = tokio_util::io::SyncIoBridge::new(body);
    let mut input = pipeline.file(&format!("s3://{}/{}", o.bucket, o.key), sh.cfg.log_format.clone());
    let (key, limits) = (o.key.clone(), sh.limits.clone());
    let job = tokio::task::spawn_blocking(move || {
        let res = object::decode(bridge, &key, &mut input, &limits);
        (input, res)
    });
    let joined = tokio::select! {
        _ = abort.cancelled() => return Err(None),
        j = job => j,
    };
    match joined {
        Ok((input, Ok(summary))) => Ok((input, summary, started)),
        Ok((_, Err(e))) => {
            warn!(bucket = %o.bucket, key = %o.key, reason = e.reason(), error = %e, "Cannot read an object; nothing of it counted, left to the redrive policy");
            Err(Some(e.reason()))
        }
        Err(_) => Err(Some("read")),
    }
}

/// GetObject; for an EventBridge key with `%` or `+` that S3 does not
/// know, once more with the key URL-decoded (in case the event carried
/// it encoded as S3 notifications do).
async fn get_object<C: S3Api>(sh: &Shared<C>, o: &ObjectRef) -> Result<client::Body, ApiError> {
    let version = o.version_id.as_deref();
    let res = sh.client.get_object(&o.bucket, &o.key, version).await;
    sh.metrics.request(op::GET_OBJECT, &res);
    let eventbridge = matches!(o.shape, Shape::EventBridge | Shape::SnsEventBridge);
    match res {
        Err(e) if e.kind == ErrorKind::NotFound && eventbridge && o.key.contains(['%', '+']) => {
            let Ok(decoded) = notification::url_decode(&o.key) else { return Err(e) };
            let res = sh.client.get_object(&o.bucket, &decoded, version).await;
            sh.metrics.request(op::GET_OBJECT, &res);
            res
        }
        other => other,
    }
}
