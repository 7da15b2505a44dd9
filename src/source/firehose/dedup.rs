//! What makes a retried Firehose request count once on this replica: the
//! recent request ids whose counts were applied, kept for a time
//! ([`DEFAULT_DEDUP_TTL`]) and up to a number ([`DEFAULT_MAX_DEDUP_IDS`],
//! oldest dropped first, drops counted).
//!
//! An id is in one of three states:
//! * unknown → [`Begin::Fresh`]: the caller applies the counts and then calls
//!   [`Ticket::applied`]; a ticket dropped without it (the request failed
//!   before its counts were applied) forgets the id, so the retry counts;
//! * in work (another attempt of the same id is being applied right now) →
//!   [`Begin::InWork`]: answered 503, which Firehose retries after a back-off,
//!   by when the first attempt has finished;
//! * applied → [`Begin::Duplicate`]: answered 200 without counting.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long an applied id is remembered. Firehose retries a failed request
/// for its retry duration (0–7,200 s, set on the stream) with back-offs of up
/// to 2 minutes, and waits up to 3 minutes for each response: 10 minutes
/// covers a retry duration of 300 s, the usual one. Streams with a longer
/// retry duration want `retry duration + 300 s`.
pub const DEFAULT_DEDUP_TTL: Duration = Duration::from_secs(600);
/// How many applied ids are remembered at most (about 150 bytes each).
pub const DEFAULT_MAX_DEDUP_IDS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    InWork,
    Applied,
}

#[derive(Debug, Default)]
struct Inner {
    states: HashMap<Arc<str>, State>,
    /// Applied ids, oldest first; exactly the ids in state `Applied`.
    applied: VecDeque<(Arc<str>, Instant)>,
    dropped: u64,
    expired: u64,
    duplicates: u64,
}

/// The outcome of [`RecentRequests::begin`].
#[derive(Debug)]
pub enum Begin {
    /// New id: apply, then [`Ticket::applied`].
    Fresh(Ticket),
    /// Applied already: answer 200, count nothing.
    Duplicate,
    /// Being applied by a concurrent attempt: answer 503.
    InWork,
}

/// The right to apply one id's counts. Dropped without
/// [`Ticket::applied`], it forgets the id.
#[derive(Debug)]
pub struct Ticket {
    set: Arc<RecentRequests>,
    id: Arc<str>,
    done: bool,
}

/// Counts over the set, for the health metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupStats {
    /// Ids remembered as applied.
    pub applied: usize,
    /// Ids in work.
    pub in_work: usize,
    /// The cap on applied ids.
    pub limit: usize,
    /// Applied ids dropped at the cap before their time.
    pub dropped: u64,
    /// Applied ids forgotten after the TTL.
    pub expired: u64,
    /// Requests answered as duplicates.
    pub duplicates: u64,
}

/// The recent request ids of one replica.
#[derive(Debug)]
pub struct RecentRequests {
    inner: Mutex<Inner>,
    ttl: Duration,
    max_ids: usize,
}

impl RecentRequests {
    /// `max_ids` of at least 1.
    pub fn new(ttl: Duration, max_ids: usize) -> Arc<RecentRequests> {
        Arc::new(RecentRequests { inner: Mutex::new(Inner::default()), ttl, max_ids: max_ids.max(1) })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every update
        // is complete before any call that could panic).
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts work on `id`.
    pub fn begin(self: &Arc<Self>, id: &str, now: Instant) -> Begin {
        let mut inner = self.lock();
        inner.expire(now, self.ttl);
        match inner.states.get(id) {
            Some(State::Applied) => {
                inner.duplicates += 1;
                Begin::Duplicate
            }
            Some(State::InWork) => Begin::InWork,
            None => {
                let id: Arc<str> = Arc::from(id);
                inner.states.insert(Arc::clone(&id), State::InWork);
                Begin::Fresh(Ticket { set: Arc::clone(self), id, done: false })
            }
        }
    }

    pub fn stats(&self) -> DedupStats {
        let inner = self.lock();
        DedupStats {
            applied: inner.applied.len(),
            in_work: inner.states.len() - inner.applied.len(),
            limit: self.max_ids,
            dropped: inner.dropped,
            expired: inner.expired,
            duplicates: inner.duplicates,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

impl Inner {
    fn expire(&mut self, now: Instant, ttl: Duration) {
        while let Some((id, at)) = self.applied.front() {
            if now.saturating_duration_since(*at) < ttl {
                break;
            }
            self.states.remove(id);
            self.applied.pop_front();
            self.expired += 1;
        }
    }

    fn mark_applied(&mut self, id: &Arc<str>, now: Instant, max_ids: usize) {
        if let Entry::Occupied(mut e) = self.states.entry(Arc::clone(id)) {
            e.insert(State::Applied);
            self.applied.push_back((Arc::clone(id), now));
        }
        while self.applied.len() > max_ids {
            if let Some((old, _)) = self.applied.pop_front() {
                self.states.remove(&old);
                self.dropped += 1;
            }
        }
    }
}

impl Ticket {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The counts are applied: remember the id.
    pub fn applied(mut self, now: Instant) {
        self.done = true;
        let mut inner = self.set.lock();
        inner.expire(now, self.set.ttl);
        inner.mark_applied(&self.id, now, self.set.max_ids);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.done {
            let mut inner = self.set.lock();
            if inner.states.get(&self.id) == Some(&State::InWork) {
                inner.states.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Barrier;

    fn fresh(b: Begin) -> Ticket {
        match b {
            Begin::Fresh(t) => t,
            other => panic!("expected Fresh, got {other:?}"),
        }
    }

    #[test]
    fn applied_ids_are_duplicates_until_the_ttl() {
        let set = RecentRequests::new(Duration::from_secs(600), 10);
        let t0 = Instant::now();
        fresh(set.begin("a", t0)).applied(t0);
        assert!(matches!(set.begin("a", t0 + Duration::from_secs(599)), Begin::Duplicate));
        assert!(matches!(set.begin("a", t0 + Duration::from_secs(600)), Begin::Fresh(_)));
        let s = set.stats();
        assert_eq!((s.applied, s.in_work, s.expired, s.duplicates), (0, 0, 1, 1));
    }

    #[test]
    fn a_failed_attempt_is_forgotten() {
        let set = RecentRequests::new(Duration::from_secs(600), 10);
        let now = Instant::now();
        let t = fresh(set.begin("a", now));
        assert!(matches!(set.begin("a", now), Begin::InWork));
        drop(t);
        assert_eq!(set.stats().in_work, 0);
        fresh(set.begin("a", now)).applied(now);
        assert!(matches!(set.begin("a", now), Begin::Duplicate));
    }

    #[test]
    fn oldest_applied_ids_are_dropped_at_the_cap() {
        let set = RecentRequests::new(Duration::from_secs(600), 3);
        let now = Instant::now();
        for id in ["a", "b", "c", "d"] {
            fresh(set.begin(id, now)).applied(now);
        }
        let s = set.stats();
        assert_eq!((s.applied, s.limit, s.dropped), (3, 3, 1));
        assert!(matches!(set.begin("a", now), Begin::Fresh(_)), "dropped: counts again");
        assert!(matches!(set.begin("d", now), Begin::Duplicate));
    }

    #[test]
    fn concurrent_attempts_of_one_id_apply_once() {
        let set = RecentRequests::new(Duration::from_secs(600), 100);
        let applied = Arc::new(AtomicUsize::new(0));
        let threads = 16;
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (set, applied, barrier) = (Arc::clone(&set), Arc::clone(&applied), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    // Each thread retries (as Firehose would) until answered 200.
                    loop {
                        match set.begin("same-id", Instant::now()) {
                            Begin::Fresh(t) => {
                                applied.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(Duration::from_millis(5));
                                t.applied(Instant::now());
                                return "fresh";
                            }
                            Begin::Duplicate => return "duplicate",
                            Begin::InWork => std::thread::yield_now(),
                        }
                    }
                })
            })
            .collect();
        let outcomes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(applied.load(Ordering::SeqCst), 1);
        assert_eq!(outcomes.iter().filter(|o| **o == "fresh").count(), 1);
        assert_eq!(outcomes.iter().filter(|o| **o == "duplicate").count(), threads - 1);
    }

    #[test]
    fn concurrent_failures_let_a_later_attempt_apply() {
        let set = RecentRequests::new(Duration::from_secs(600), 100);
        let applied = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (set, applied) = (Arc::clone(&set), Arc::clone(&applied));
                std::thread::spawn(move || loop {
                    match set.begin("x", Instant::now()) {
                        // The first four attempts to get the ticket fail.
                        Begin::Fresh(t) if applied.load(Ordering::SeqCst) == 0 && i % 2 == 0 => drop(t),
                        Begin::Fresh(t) => {
                            applied.fetch_add(1, Ordering::SeqCst);
                            t.applied(Instant::now());
                            return;
                        }
                        Begin::Duplicate => return,
                        Begin::InWork => std::thread::yield_now(),
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(applied.load(Ordering::SeqCst), 1);
        assert!(matches!(set.begin("x", Instant::now()), Begin::Duplicate));
    }

    #[test]
    fn many_distinct_ids_from_many_threads() {
        let set = RecentRequests::new(Duration::from_secs(600), 1000);
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let set = Arc::clone(&set);
                std::thread::spawn(move || {
                    for i in 0..500 {
                        let now = Instant::now();
                        fresh(set.begin(&format!("{t}-{i}"), now)).applied(now);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let s = set.stats();
        assert_eq!((s.applied, s.in_work, s.dropped), (1000, 0, 3000));
    }
}
