//! HTTP basic authentication against `basic_auth_users` (bcrypt hashes), with
//! a small cache of successful checks so a scrape every 15 s does not pay a
//! bcrypt verification each time, and a cap on bcrypt work in flight so that
//! a flood of wrong passwords cannot take the async workers.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use base64::Engine;
use hyper::header::HeaderValue;
use tokio::sync::Semaphore;

/// Successful (user, password) checks remembered per loaded configuration.
pub const CACHE_ENTRIES: usize = 64;
/// bcrypt verifications running at once (each takes tens of milliseconds of
/// CPU on a blocking thread); more requests wait for a slot.
pub const BCRYPT_IN_FLIGHT: usize = 2;
/// Longest `Authorization` header value looked at; longer ones are refused.
pub const MAX_HEADER_BYTES: usize = 4096;

/// The users of one loaded configuration and its cache of successful checks.
#[derive(Debug)]
pub(crate) struct BasicAuth {
    users: BTreeMap<String, String>,
    /// A configured hash checked for unknown users, so that the answer takes
    /// as long whether or not the user exists.
    decoy: Option<String>,
    /// Salt for the cache keys, so that the key of a password is not
    /// predictable from outside the process.
    salt: [u8; 32],
    cache: Mutex<HashMap<[u8; 32], ()>>,
}

impl BasicAuth {
    pub(crate) fn new(users: BTreeMap<String, String>) -> BasicAuth {
        let mut salt = [0u8; 32];
        if aws_lc_rs::rand::fill(&mut salt).is_err() {
            // The cache keys are still SHA-256 digests; only their
            // unpredictability is lost.
            tracing::warn!("No random salt for the basic-auth cache");
        }
        let decoy = users.values().next().cloned();
        BasicAuth { users, decoy, salt, cache: Mutex::new(HashMap::new()) }
    }

    /// Whether any user is configured (authentication is on).
    pub(crate) fn enabled(&self) -> bool {
        !self.users.is_empty()
    }

    fn cache_key(&self, user: &[u8], password: &[u8]) -> [u8; 32] {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        ctx.update(&self.salt);
        ctx.update(&(user.len() as u64).to_le_bytes());
        ctx.update(user);
        ctx.update(password);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    /// Whether the `Authorization` header carries a configured user and its
    /// password. Always true when no user is configured.
    pub(crate) async fn check(&self, header: Option<&HeaderValue>, slots: &Arc<Semaphore>) -> bool {
        if !self.enabled() {
            return true;
        }
        let Some((user, password)) = header.and_then(parse_basic) else { return false };
        let key = self.cache_key(user.as_bytes(), &password);
        // The key is a salted digest: looking it up reveals nothing about
        // how close a guess was.
        if self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains_key(&key) {
            return true;
        }
        let (known, hash) = match self.users.get(&user) {
            Some(h) => (true, h.clone()),
            None => (false, self.decoy.clone().unwrap_or_default()),
        };
        let Ok(slot) = slots.clone().acquire_owned().await else { return false };
        // The slot goes with the work: a request dropped mid-check does not
        // free it before bcrypt is done.
        let matched = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            bcrypt::verify(&password, &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        let ok = known && matched;
        if ok {
            let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if cache.len() >= CACHE_ENTRIES {
                // Bounded: forget one entry; it costs one bcrypt check later.
                if let Some(old) = cache.keys().next().copied() {
                    cache.remove(&old);
                }
            }
            cache.insert(key, ());
        }
        ok
    }

    #[cfg(test)]
    fn cached(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }
}

/// `Basic base64(user:password)` → (user, password bytes).
fn parse_basic(value: &HeaderValue) -> Option<(String, Vec<u8>)> {
    let bytes = value.as_bytes();
    if bytes.len() > MAX_HEADER_BYTES {
        return None;
    }
    let s = std::str::from_utf8(bytes).ok()?.trim();
    let (scheme, rest) = s.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, pass: &str) -> HeaderValue {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        HeaderValue::from_str(&format!("Basic {b}")).unwrap()
    }

    #[tokio::test]
    async fn checks_users_and_caches_successes_only() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let auth = BasicAuth::new(BTreeMap::from([("prom".to_owned(), hash)]));
        let slots = Arc::new(Semaphore::new(BCRYPT_IN_FLIGHT));
        assert!(auth.check(Some(&header("prom", "s3cret")), &slots).await);
        assert_eq!(auth.cached(), 1);
        assert!(auth.check(Some(&header("prom", "s3cret")), &slots).await, "from the cache");
        assert!(!auth.check(Some(&header("prom", "wrong")), &slots).await);
        assert!(!auth.check(Some(&header("other", "s3cret")), &slots).await, "unknown user, known password");
        assert!(!auth.check(None, &slots).await);
        assert!(!auth.check(Some(&HeaderValue::from_static("Bearer abc")), &slots).await);
        assert!(!auth.check(Some(&HeaderValue::from_static("Basic !!!")), &slots).await);
        assert!(!auth.check(Some(&header("prom", "s3cret:")), &slots).await);
        assert_eq!(auth.cached(), 1, "failures are not cached");
    }

    #[tokio::test]
    async fn the_cache_stays_bounded() {
        let users: BTreeMap<String, String> =
            (0..CACHE_ENTRIES + 5).map(|i| (format!("u{i}"), bcrypt::hash(format!("p{i}"), 4).unwrap())).collect();
        let auth = BasicAuth::new(users);
        let slots = Arc::new(Semaphore::new(BCRYPT_IN_FLIGHT));
        for i in 0..CACHE_ENTRIES + 5 {
            assert!(auth.check(Some(&header(&format!("u{i}"), &format!("p{i}"))), &slots).await);
        }
        assert_eq!(auth.cached(), CACHE_ENTRIES);
    }

    #[tokio::test]
    async fn no_users_means_open() {
        let auth = BasicAuth::new(BTreeMap::new());
        assert!(auth.check(None, &Arc::new(Semaphore::new(1))).await);
    }
}
