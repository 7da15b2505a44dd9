//! The `s3:` section as the builder sets it up: `--config.check` and the
//! start check that a region resolves (as for cloudwatch; no request is
//! sent), and `replay s3://bucket/prefix/` reads objects straight from S3
//! with the section's region, endpoint and role (without a section: the AWS
//! default chain, and `AWS_ENDPOINT_URL` for a local endpoint).

use std::path::Path;

use super::error::AppError;
use crate::config::Config;
use crate::pipeline::Pipeline;
use crate::source::s3::client::{SdkClients, Target};
use crate::source::s3::replay;

/// The region check of the s3 section.
pub(crate) async fn check(config: &Config, path: Option<&Path>) -> Result<(), AppError> {
    let Some(s3) = &config.s3 else { return Ok(()) };
    super::exporter::region_resolves("s3", s3.region.as_deref(), path).await
}

/// Reads every object under the `urls` (all `s3://`) into `pipeline` on
/// every core; the exposition.
pub(crate) fn replay(pipeline: Pipeline, config: &Config, urls: &[String]) -> Result<String, AppError> {
    if let Some(other) = urls.iter().find(|u| !u.starts_with("s3://")) {
        return Err(AppError::Defaults(
            format!("replay: {other:?}: one replay reads either files or s3:// URLs, not both").into(),
        ));
    }
    let target = config.s3.as_ref().map(Target::of).unwrap_or_default();
    let format = config.s3.as_ref().map_or(&config.log_format, |s| &s.log_format).clone();
    let parallel = std::thread::available_parallelism().map_or(1, |n| n.get()) * 2;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| AppError::Source(e.into()))?;
    runtime.block_on(async {
        let client =
            std::sync::Arc::new(SdkClients::for_target(&target).await.map_err(|e| AppError::Source(e.into()))?);
        for url in urls {
            let done = replay::run(client.clone(), url, &pipeline, &format, parallel)
                .await
                .map_err(|e| AppError::Source(e.into()))?;
            tracing::info!(url = %url, objects = done.objects, bytes = done.bytes, "Replayed S3 objects");
        }
        Ok::<(), AppError>(())
    })?;
    Ok(pipeline.exposition())
}
