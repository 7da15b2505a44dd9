//! What makes a redelivered notification count once: per replica, a
//! bounded set of the objects recently counted (and of those in work), by
//! a keyed hash of their identity ([`RecentObjects`]); across replicas, the
//! optional DynamoDB claim table (see [`super::client::S3Api::claim`]):
//! a claim with an owner and a lease, taken over once the lease ended,
//! marked done after the counts were applied, expired by TTL.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

/// Objects remembered per replica: 100,000 (8 bytes each, with a queue
/// slot: about 2.5 MB). A duplicate older than this is caught only by the
/// claim table.
pub const RECENT_OBJECTS: usize = 100_000;

/// How long a done claim stays in the table (its TTL, past which DynamoDB
/// deletes it): 14 days, the longest an SQS message can be kept, so a
/// duplicate notification can never outlive its claim.
pub const CLAIM_TTL: Duration = Duration::from_secs(14 * 24 * 3600);

/// A bounded set of object identities (storage keys), oldest dropped
/// first. Identities are kept as 64-bit SipHash values with a random key:
/// an attacker who names objects cannot aim at a collision.
#[derive(Debug)]
pub struct RecentObjects {
    hasher: RandomState,
    set: HashSet<u64>,
    order: VecDeque<u64>,
    cap: usize,
    in_work: HashSet<u64>,
}

impl RecentObjects {
    pub fn new(cap: usize) -> RecentObjects {
        RecentObjects {
            hasher: RandomState::new(),
            set: HashSet::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
            in_work: HashSet::new(),
        }
    }

    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Whether the object was counted here recently.
    pub fn seen(&self, key: &str) -> bool {
        self.set.contains(&self.hash(key))
    }

    /// Marks the object in work; false if it already is (another message
    /// of the same object, received at the same time).
    pub fn start(&mut self, key: &str) -> bool {
        let h = self.hash(key);
        self.in_work.insert(h)
    }

    /// The object is no longer in work; `counted`: remember it. The number
    /// of older objects forgotten to keep the set within its bound.
    pub fn finish(&mut self, key: &str, counted: bool) -> usize {
        let h = self.hash(key);
        self.in_work.remove(&h);
        let mut forgotten = 0;
        if counted && self.set.insert(h) {
            self.order.push_back(h);
            while self.order.len() > self.cap {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                    forgotten += 1;
                }
            }
        }
        forgotten
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

/// This replica's owner name in claims: random, fresh at every start.
pub fn owner_id() -> String {
    format!("{:016x}{:016x}-{}", rand::random::<u64>(), rand::random::<u64>(), std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_oldest_first_and_in_work_once() {
        let mut r = RecentObjects::new(2);
        assert!(r.start("a"));
        assert!(!r.start("a"), "the same object twice at once");
        assert_eq!(r.finish("a", true), 0);
        assert!(r.seen("a") && r.start("a"));
        assert_eq!(r.finish("a", true), 0, "already remembered");
        assert_eq!(r.finish("b", true), 0);
        assert_eq!(r.finish("c", true), 1, "a forgotten");
        assert!(!r.seen("a") && r.seen("b") && r.seen("c"));
        assert_eq!(r.len(), 2);
        r.start("d");
        assert_eq!(r.finish("d", false), 0);
        assert!(!r.seen("d"), "a failed object is not remembered");
        assert_ne!(owner_id(), owner_id());
    }
}
