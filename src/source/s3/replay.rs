//! `replay s3://bucket/prefix/`: a one-off backfill, or a test of a bucket
//! before the queue is wired: ListObjectsV2 under the prefix, then
//! GetObject on up to `parallel` objects at once, each streamed through the
//! same decoders as the live source into its own file input, committed
//! whole. No queue, no claims. An object that cannot be read is reported
//! and fails the run after every other object was counted.

use std::sync::Arc;

use tokio::task::JoinSet;

use super::client::{op, S3Api};
use super::object::{self, Limits};
use crate::parse::Format;
use crate::pipeline::Pipeline;
use crate::source::cloudwatch::client::ApiError;

/// The most objects one replay lists: 1,000,000 (a day of 5-minute objects
/// from about 3,500 sources).
pub const MAX_OBJECTS: usize = 1_000_000;

/// Why a replay of S3 failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{0:?} is not an S3 URL (s3://bucket/prefix)")]
    Url(String),
    #[error("listing s3://{bucket}/{prefix} failed: {source}")]
    List { bucket: String, prefix: String, source: ApiError },
    #[error("s3://{bucket}/{prefix} lists more than {MAX_OBJECTS} objects; replay a narrower prefix")]
    TooMany { bucket: String, prefix: String },
    #[error("{failed} of {total} objects could not be read (first: s3://{bucket}/{key}: {why})")]
    Objects { failed: usize, total: usize, bucket: String, key: String, why: String },
}

/// `s3://bucket/prefix` as (bucket, prefix).
pub fn parse_url(url: &str) -> Result<(String, String), ReplayError> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| ReplayError::Url(url.to_owned()))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(ReplayError::Url(url.to_owned()));
    }
    Ok((bucket.to_owned(), prefix.to_owned()))
}

/// What a replay read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    pub objects: usize,
    pub bytes: u64,
}

/// Lists `url` and counts every object into `pipeline`.
pub async fn run<C: S3Api>(
    client: Arc<C>,
    url: &str,
    pipeline: &Pipeline,
    format: &Format,
    parallel: usize,
) -> Result<Replayed, ReplayError> {
    let (bucket, prefix) = parse_url(url)?;
    let keys = list(client.as_ref(), &bucket, &prefix).await?;
    let total = keys.len();
    let mut tasks = JoinSet::new();
    let mut pending = keys.into_iter();
    let mut done = Replayed::default();
    let mut first_error: Option<(String, String)> = None;
    let mut failed = 0;
    loop {
        while tasks.len() < parallel.max(1) {
            let Some(key) = pending.next() else { break };
            tasks.spawn(one(client.clone(), bucket.clone(), key, pipeline.clone(), format.clone()));
        }
        let Some(joined) = tasks.join_next().await else { break };
        match joined {
            Ok((_, Ok(bytes))) => {
                done.objects += 1;
                done.bytes += bytes;
            }
            Ok((key, Err(why))) => {
                tracing::warn!(bucket = %bucket, key = %key, error = %why, "Cannot read an object; nothing of it counted");
                failed += 1;
                first_error.get_or_insert((key, why));
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert((String::new(), e.to_string()));
            }
        }
    }
    match first_error {
        None => Ok(done),
        Some((key, why)) => Err(ReplayError::Objects { failed, total, bucket, key, why }),
    }
}

async fn list<C: S3Api>(client: &C, bucket: &str, prefix: &str) -> Result<Vec<String>, ReplayError> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let (page, next) = client.list_objects(bucket, prefix, token).await.map_err(|source| ReplayError::List {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            source,
        })?;
        keys.extend(page.into_iter().filter(|o| o.size > 0 || !o.key.ends_with('/')).map(|o| o.key));
        if keys.len() > MAX_OBJECTS {
            return Err(ReplayError::TooMany { bucket: bucket.to_owned(), prefix: prefix.to_owned() });
        }
        match next {
            Some(t) => token = Some(t),
            None => return Ok(keys),
        }
    }
}

/// One object, committed whole: its size, or why it failed.
async fn one<C: S3Api>(
    client: Arc<C>,
    bucket: String,
    key: String,
    pipeline: Pipeline,
    format: Format,
) -> (String, Result<u64, String>) {
    let body = match client.get_object(&bucket, &key, None).await {
        Ok(b) => b,
        Err(e) => return (key, Err(format!("{}: {e}", op::GET_OBJECT))),
    };
    let bridge = tokio_util::io::SyncIoBridge::new(body);
    let mut input = pipeline.file(&format!("s3://{bucket}/{key}"), format);
    let k = key.clone();
    let job = tokio::task::spawn_blocking(move || {
        let res = object::decode(bridge, &k, &mut input, &Limits::default());
        res.map(|summary| {
            input.commit();
            summary.object_bytes
        })
    })
    .await;
    let res = match job {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(format!("{}: {e}", e.reason())),
        Err(e) => Err(e.to_string()),
    };
    (key, res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(parse_url("s3://b/AWSLogs/x/").unwrap(), ("b".into(), "AWSLogs/x/".into()));
        assert_eq!(parse_url("s3://b").unwrap(), ("b".into(), String::new()));
        assert!(parse_url("s3:///x").is_err());
        assert!(parse_url("/tmp/x").is_err());
    }
}
