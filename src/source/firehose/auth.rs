//! The accepted `X-Amz-Firehose-Access-Key` values (several, for rotation)
//! and their constant-time check. Every accepted key and the presented one
//! are zero-padded to [`MAX_ACCESS_KEY_BYTES`] and compared whole, lengths
//! included, against every accepted key without an early exit: the time
//! taken tells neither which bytes matched, nor the accepted keys' lengths,
//! nor which key matched.

use std::fmt;

use super::request::RequestError;

/// The largest access key Firehose sends: it "restricts the size of the access
/// key to 4096 bytes" (HTTP endpoint delivery specification).
pub const MAX_ACCESS_KEY_BYTES: usize = 4096;

/// A configured key that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessKeyError {
    #[error("access key {index} is empty")]
    Empty { index: usize },
    #[error("access key {index} is {len} bytes long, more than Firehose's limit of {MAX_ACCESS_KEY_BYTES}")]
    TooLong { index: usize, len: usize },
}

/// One accepted key, padded with zeros to the full width.
struct PaddedKey {
    bytes: Box<[u8; MAX_ACCESS_KEY_BYTES]>,
    len: usize,
}

/// The accepted keys. With none configured, every request is accepted (the
/// moto smoke test sends no key; docs/firehose.md says so).
pub struct AccessKeys {
    keys: Vec<PaddedKey>,
}

impl fmt::Debug for AccessKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the keys themselves.
        f.debug_struct("AccessKeys").field("count", &self.keys.len()).finish()
    }
}

fn padded(key: &[u8]) -> Box<[u8; MAX_ACCESS_KEY_BYTES]> {
    let mut out = Box::new([0u8; MAX_ACCESS_KEY_BYTES]);
    let n = key.len().min(MAX_ACCESS_KEY_BYTES);
    out[..n].copy_from_slice(&key[..n]);
    out
}

/// `a == b` over the whole width, and `a_len == b_len`, without branches on
/// the contents.
fn equal_padded(a: &[u8; MAX_ACCESS_KEY_BYTES], a_len: usize, b: &[u8; MAX_ACCESS_KEY_BYTES], b_len: usize) -> bool {
    let mut diff: usize = a_len ^ b_len;
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= usize::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

impl AccessKeys {
    /// No key: authentication is off.
    pub fn none() -> AccessKeys {
        AccessKeys { keys: Vec::new() }
    }

    /// The accepted keys; each non-empty and at most [`MAX_ACCESS_KEY_BYTES`].
    pub fn new<K: AsRef<[u8]>>(keys: &[K]) -> Result<AccessKeys, AccessKeyError> {
        let mut out = Vec::with_capacity(keys.len());
        for (index, key) in keys.iter().enumerate() {
            let key = key.as_ref();
            if key.is_empty() {
                return Err(AccessKeyError::Empty { index });
            }
            if key.len() > MAX_ACCESS_KEY_BYTES {
                return Err(AccessKeyError::TooLong { index, len: key.len() });
            }
            out.push(PaddedKey { bytes: padded(key), len: key.len() });
        }
        Ok(AccessKeys { keys: out })
    }

    /// Whether authentication is on.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Checks the presented header value: `Ok` when authentication is off or
    /// the value equals one accepted key.
    pub fn check(&self, presented: Option<&[u8]>) -> Result<(), RequestError> {
        if self.keys.is_empty() {
            return Ok(());
        }
        let Some(presented) = presented else {
            return Err(RequestError::MissingAccessKey);
        };
        // A longer value equals no key; its length is the sender's own secret.
        if presented.len() > MAX_ACCESS_KEY_BYTES {
            return Err(RequestError::InvalidAccessKey);
        }
        let probe = padded(presented);
        let mut matched = false;
        for key in &self.keys {
            matched |= equal_padded(&key.bytes, key.len, &probe, presented.len());
        }
        if std::hint::black_box(matched) {
            Ok(())
        } else {
            Err(RequestError::InvalidAccessKey)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_without_keys() {
        let keys = AccessKeys::none();
        assert!(!keys.enabled());
        assert!(keys.check(None).is_ok());
        assert!(keys.check(Some(b"anything")).is_ok());
    }

    #[test]
    fn rotation_accepts_every_configured_key() {
        let keys = AccessKeys::new(&["old-key", "new-key-longer"]).unwrap();
        assert!(keys.check(Some(b"old-key")).is_ok());
        assert!(keys.check(Some(b"new-key-longer")).is_ok());
        assert_eq!(keys.check(Some(b"other")), Err(RequestError::InvalidAccessKey));
        assert_eq!(keys.check(None), Err(RequestError::MissingAccessKey));
    }

    #[test]
    fn prefixes_padding_and_lengths_do_not_match() {
        let keys = AccessKeys::new(&["secret"]).unwrap();
        for wrong in [&b"secre"[..], b"secret\0", b"secretx", b"", b"SECRET", b"\0secret"] {
            assert_eq!(keys.check(Some(wrong)), Err(RequestError::InvalidAccessKey), "{wrong:?}");
        }
    }

    #[test]
    fn key_of_exactly_the_limit_and_beyond() {
        let max = vec![b'k'; MAX_ACCESS_KEY_BYTES];
        let keys = AccessKeys::new(&[&max]).unwrap();
        assert!(keys.check(Some(&max)).is_ok());
        let mut longer = max.clone();
        longer.push(b'k');
        assert_eq!(keys.check(Some(&longer)), Err(RequestError::InvalidAccessKey));
        assert_eq!(
            AccessKeys::new(&[&longer]).unwrap_err(),
            AccessKeyError::TooLong { index: 0, len: MAX_ACCESS_KEY_BYTES + 1 }
        );
        assert_eq!(AccessKeys::new(&["a", ""]).unwrap_err(), AccessKeyError::Empty { index: 1 });
    }

    #[test]
    fn debug_never_shows_keys() {
        let keys = AccessKeys::new(&["hunter2"]).unwrap();
        assert!(!format!("{keys:?}").contains("hunter2"));
    }
}
