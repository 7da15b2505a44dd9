//! The narrow interface to AWS the S3 source uses, as one trait
//! ([`S3Api`]) with plain types: SQS (ReceiveMessage, DeleteMessage,
//! ChangeMessageVisibility), S3 (GetObject as a stream, ListObjectsV2) and
//! the optional DynamoDB claim table (conditional PutItem, GetItem,
//! UpdateItem, DeleteItem), and its implementation over the AWS SDK
//! ([`SdkClients`]). The loop and its tests depend on the trait only.
//!
//! As for CloudWatch, retries live in one layer, the loop's own (the SQS
//! queue itself for objects: a message not deleted comes back): the SDK
//! clients are built with `RetryConfig::disabled()`, so every failed request
//! is counted by operation and kind. Errors reuse the CloudWatch source's
//! [`ErrorKind`]. An endpoint URL's user information is removed before it
//! reaches the SDK or a log line.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use tokio::io::AsyncRead;

use crate::config::S3Config;
use crate::source::cloudwatch::client::{redact_url, service_error_kind, ApiError, ErrorKind};

/// The `operation` label values.
pub mod op {
    pub const RECEIVE: &str = "ReceiveMessage";
    pub const DELETE: &str = "DeleteMessage";
    pub const VISIBILITY: &str = "ChangeMessageVisibility";
    pub const GET_OBJECT: &str = "GetObject";
    pub const LIST_OBJECTS: &str = "ListObjectsV2";
    pub const PUT_ITEM: &str = "PutItem";
    pub const GET_ITEM: &str = "GetItem";
    pub const UPDATE_ITEM: &str = "UpdateItem";
    pub const DELETE_ITEM: &str = "DeleteItem";
    pub const ALL: [&str; 9] =
        [RECEIVE, DELETE, VISIBILITY, GET_OBJECT, LIST_OBJECTS, PUT_ITEM, GET_ITEM, UPDATE_ITEM, DELETE_ITEM];
}

/// The claim table's attribute names: the partition key (a string) and the
/// TTL attribute (epoch seconds) the table must be created with.
pub const KEY_ATTRIBUTE: &str = "object";
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// One received SQS message.
#[derive(Debug, Clone)]
pub struct Message {
    pub receipt: String,
    pub body: String,
}

/// An object's bytes, streamed.
pub type Body = Pin<Box<dyn AsyncRead + Send>>;

/// One listed object.
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: String,
    pub size: u64,
}

/// A claim as the table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimItem {
    pub owner: String,
    pub done: bool,
    /// Until when (epoch ms) the owner holds it, if not done.
    pub lease_until_ms: u64,
}

/// What a conditional claim gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The object is ours: no claim before (`None`), or an expired one of
    /// another owner, taken over (`Some(previous owner)`).
    Won(Option<String>),
    /// Someone else's (done, or a live claim): the item as read.
    Lost(Option<ClaimItem>),
}

/// The AWS operations of the S3 source.
pub trait S3Api: Send + Sync + 'static {
    fn receive(
        &self,
        max: i32,
        wait: Duration,
        visibility: Duration,
    ) -> impl Future<Output = Result<Vec<Message>, ApiError>> + Send;
    fn delete(&self, receipt: &str) -> impl Future<Output = Result<(), ApiError>> + Send;
    fn change_visibility(
        &self,
        receipt: &str,
        visibility: Duration,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
    fn get_object(
        &self,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> impl Future<Output = Result<Body, ApiError>> + Send;
    fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        token: Option<String>,
    ) -> impl Future<Output = Result<(Vec<Listed>, Option<String>), ApiError>> + Send;
    /// Claims `key` for `owner` until `lease_until_ms` if nobody holds it
    /// (no item, or a claim whose lease ended before `now_ms`).
    fn claim(
        &self,
        key: &str,
        owner: &str,
        now_ms: u64,
        lease_until_ms: u64,
    ) -> impl Future<Output = Result<Claim, ApiError>> + Send;
    /// Extends `owner`'s claim; false if it is no longer ours.
    fn extend(
        &self,
        key: &str,
        owner: &str,
        lease_until_ms: u64,
    ) -> impl Future<Output = Result<bool, ApiError>> + Send;
    /// Marks `owner`'s claim done, kept until `expires_at_s` (the TTL).
    fn done(&self, key: &str, owner: &str, expires_at_s: u64) -> impl Future<Output = Result<bool, ApiError>> + Send;
    /// Removes `owner`'s unfinished claim (the object failed or was released).
    fn release(&self, key: &str, owner: &str) -> impl Future<Output = Result<(), ApiError>> + Send;
}

/// [`S3Api`] over the AWS SDK.
#[derive(Debug, Clone)]
pub struct SdkClients {
    sqs: aws_sdk_sqs::Client,
    s3: aws_sdk_s3::Client,
    ddb: aws_sdk_dynamodb::Client,
    queue_url: String,
    table: Option<String>,
}

/// Why the clients cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    #[error("s3.region: no AWS region found: set s3.region, the AWS_REGION variable or a region in the AWS profile")]
    NoRegion,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Above the 20 s long poll; a GetObject body is read past this (it bounds
/// the attempt until the response head only).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// The AWS target of the s3 section (or of `replay s3://` without one).
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub role_arn: Option<String>,
}

impl Target {
    pub fn of(cfg: &S3Config) -> Target {
        Target { region: cfg.region.clone(), endpoint_url: cfg.endpoint_url.clone(), role_arn: cfg.role_arn.clone() }
    }

    /// The endpoint without user information, for logs.
    pub fn shown_endpoint(&self) -> String {
        self.endpoint_url.as_deref().map_or_else(|| "default".to_owned(), redact_url)
    }
}

/// The three SDK configurations' common part.
async fn shared_config(target: &Target) -> Result<(aws_config::SdkConfig, Option<String>), SetupError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = &target.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    let endpoint = target.endpoint_url.as_ref().map(|url| {
        let clean = redact_url(url);
        if &clean != url {
            tracing::warn!(endpoint = %clean, "The endpoint URL carries user information (user:password@); it is not used for AWS requests (they are signed with AWS credentials) and was removed");
        }
        clean
    });
    if let Some(url) = &endpoint {
        loader = loader.endpoint_url(url.clone());
    }
    let shared = loader.load().await;
    if shared.region().is_none() {
        return Err(SetupError::NoRegion);
    }
    Ok((shared, endpoint))
}

fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT).operation_attempt_timeout(ATTEMPT_TIMEOUT).build()
}

async fn build_s3(shared: &aws_config::SdkConfig, path_style: bool, target: &Target) -> aws_sdk_s3::Client {
    let mut b = aws_sdk_s3::config::Builder::from(shared)
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts())
        // Local endpoints (moto, MinIO) have no per-bucket host names.
        .force_path_style(path_style || std::env::var_os("AWS_ENDPOINT_URL").is_some());
    if let Some(p) = role(shared, target).await {
        b = b.credentials_provider(p);
    }
    aws_sdk_s3::Client::from_conf(b.build())
}

async fn role(shared: &aws_config::SdkConfig, target: &Target) -> Option<aws_config::sts::AssumeRoleProvider> {
    let arn = target.role_arn.as_ref()?;
    Some(
        aws_config::sts::AssumeRoleProvider::builder(arn.clone())
            .session_name("vpc-flow-exporter")
            .configure(shared)
            .build()
            .await,
    )
}

impl SdkClients {
    /// The clients of the section: region and credentials from the default
    /// chain (overridden by `region`), `endpoint_url` for all three
    /// services, `role_arn` assumed through STS.
    pub async fn from_config(cfg: &S3Config) -> Result<SdkClients, SetupError> {
        let mut c = SdkClients::for_target(&Target::of(cfg)).await?;
        c.queue_url = cfg.queue_url.clone();
        c.table = cfg.dedup_table.clone();
        Ok(c)
    }

    /// The clients of `target`, with no queue or table (`replay s3://`).
    pub async fn for_target(target: &Target) -> Result<SdkClients, SetupError> {
        let target = target.clone();
        let (shared, endpoint) = shared_config(&target).await?;
        let s3 = build_s3(&shared, endpoint.is_some(), &target).await;
        let mut sqs = aws_sdk_sqs::config::Builder::from(&shared)
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts());
        let mut ddb = aws_sdk_dynamodb::config::Builder::from(&shared)
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts());
        // One assume-role provider each (a provider is not Clone); sessions are cached.
        if let (Some(a), Some(b)) = (role(&shared, &target).await, role(&shared, &target).await) {
            sqs = sqs.credentials_provider(a);
            ddb = ddb.credentials_provider(b);
        }
        Ok(SdkClients {
            sqs: aws_sdk_sqs::Client::from_conf(sqs.build()),
            s3,
            ddb: aws_sdk_dynamodb::Client::from_conf(ddb.build()),
            queue_url: String::new(),
            table: None,
        })
    }

    fn table(&self) -> Result<&str, ApiError> {
        self.table.as_deref().ok_or_else(|| ApiError::new(ErrorKind::Other, "no dedup_table configured"))
    }
}

fn secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl S3Api for SdkClients {
    async fn receive(&self, max: i32, wait: Duration, visibility: Duration) -> Result<Vec<Message>, ApiError> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max)
            .wait_time_seconds(secs(wait))
            .visibility_timeout(secs(visibility))
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| Some(Message { receipt: m.receipt_handle?, body: m.body.unwrap_or_default() }))
            .collect())
    }

    async fn delete(&self, receipt: &str) -> Result<(), ApiError> {
        self.sqs.delete_message().queue_url(&self.queue_url).receipt_handle(receipt).send().await.map_err(classify)?;
        Ok(())
    }

    async fn change_visibility(&self, receipt: &str, visibility: Duration) -> Result<(), ApiError> {
        self.sqs
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(secs(visibility))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn get_object(&self, bucket: &str, key: &str, version: Option<&str>) -> Result<Body, ApiError> {
        let out = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version.map(str::to_owned))
            .send()
            .await
            .map_err(classify)?;
        Ok(Box::pin(out.body.into_async_read()))
    }

    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        token: Option<String>,
    ) -> Result<(Vec<Listed>, Option<String>), ApiError> {
        let out = self
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(classify)?;
        let listed = out
            .contents()
            .iter()
            .filter_map(|o| Some(Listed { key: o.key()?.to_owned(), size: o.size().unwrap_or(0).max(0) as u64 }))
            .collect();
        let next =
            if out.is_truncated() == Some(true) { out.next_continuation_token().map(str::to_owned) } else { None };
        Ok((listed, next))
    }

    async fn claim(&self, key: &str, owner: &str, now_ms: u64, lease_until_ms: u64) -> Result<Claim, ApiError> {
        let table = self.table()?;
        // A fresh claim where there is none; else, an expired claim taken
        // over from its owner (read first, so the previous owner is known).
        if self.put_claim(table, key, owner, lease_until_ms, None).await? {
            return Ok(Claim::Won(None));
        }
        let Some(item) = self.read_claim(table, key).await? else {
            // Deleted in between (released): try once more as fresh.
            let won = self.put_claim(table, key, owner, lease_until_ms, None).await?;
            return Ok(if won { Claim::Won(None) } else { Claim::Lost(None) });
        };
        if item.done || item.lease_until_ms >= now_ms {
            return Ok(Claim::Lost(Some(item)));
        }
        let previous = item.owner.clone();
        if self.put_claim(table, key, owner, lease_until_ms, Some((&previous, now_ms))).await? {
            return Ok(Claim::Won(Some(previous)));
        }
        Ok(Claim::Lost(self.read_claim(table, key).await?))
    }

    async fn extend(&self, key: &str, owner: &str, lease_until_ms: u64) -> Result<bool, ApiError> {
        let expires = lease_until_ms / 1000 + super::dedup::CLAIM_TTL.as_secs();
        let update = "SET lease_until = :l, #t = :t";
        self.update_own(key, owner, update, vec![(":l", n(lease_until_ms)), (":t", n(expires))]).await
    }

    async fn done(&self, key: &str, owner: &str, expires_at_s: u64) -> Result<bool, ApiError> {
        let update = "SET #s = :done, #t = :t";
        self.update_own(key, owner, update, vec![(":done", s("done")), (":t", n(expires_at_s))]).await
    }

    async fn release(&self, key: &str, owner: &str) -> Result<(), ApiError> {
        let res = self
            .ddb
            .delete_item()
            .table_name(self.table()?)
            .key(KEY_ATTRIBUTE, s(key))
            .condition_expression("#o = :me AND #s = :claimed")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#s", "state")
            .expression_attribute_values(":me", s(owner))
            .expression_attribute_values(":claimed", s("claimed"))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }
}

impl SdkClients {
    /// A conditional PutItem of a claim: where no item exists, or (with
    /// `expired`) over `previous`'s claim whose lease ended before `now`.
    /// Whether it was written.
    async fn put_claim(
        &self,
        table: &str,
        key: &str,
        owner: &str,
        lease_until_ms: u64,
        expired: Option<(&str, u64)>,
    ) -> Result<bool, ApiError> {
        let mut req = self
            .ddb
            .put_item()
            .table_name(table)
            .item(KEY_ATTRIBUTE, s(key))
            .item("owner", s(owner))
            .item("state", s("claimed"))
            .item("lease_until", n(lease_until_ms))
            .item(TTL_ATTRIBUTE, n(lease_until_ms / 1000 + super::dedup::CLAIM_TTL.as_secs()))
            .expression_attribute_names("#k", KEY_ATTRIBUTE);
        req = match expired {
            None => req.condition_expression("attribute_not_exists(#k)"),
            Some((previous, now_ms)) => req
                .condition_expression("attribute_exists(#k) AND #s = :claimed AND #l < :now AND #o = :prev")
                .expression_attribute_names("#s", "state")
                .expression_attribute_names("#l", "lease_until")
                .expression_attribute_names("#o", "owner")
                .expression_attribute_values(":claimed", s("claimed"))
                .expression_attribute_values(":now", n(now_ms))
                .expression_attribute_values(":prev", s(previous)),
        };
        match req.send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(false),
            Err(e) => Err(classify(e)),
        }
    }

    async fn read_claim(&self, table: &str, key: &str) -> Result<Option<ClaimItem>, ApiError> {
        let out = self
            .ddb
            .get_item()
            .table_name(table)
            .key(KEY_ATTRIBUTE, s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.item.map(|item| {
            let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            let lease = item.get("lease_until").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok());
            ClaimItem { owner: text("owner"), done: text("state") == "done", lease_until_ms: lease.unwrap_or(0) }
        }))
    }

    /// An UpdateItem on a claim that must still be `owner`'s.
    async fn update_own(
        &self,
        key: &str,
        owner: &str,
        update: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, ApiError> {
        let mut req = self
            .ddb
            .update_item()
            .table_name(self.table()?)
            .key(KEY_ATTRIBUTE, s(key))
            .update_expression(update)
            .condition_expression("#o = :me")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":me", s(owner));
        if update.contains("#s") {
            req = req.expression_attribute_names("#s", "state");
        }
        if update.contains("#t") {
            req = req.expression_attribute_names("#t", TTL_ATTRIBUTE);
        }
        for (k, v) in values {
            req = req.expression_attribute_values(k, v);
        }
        match req.send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(false),
            Err(e) => Err(classify(e)),
        }
    }
}

/// Maps an SDK error of any of the three services to its kind.
pub fn classify<E>(err: SdkError<E, HttpResponse>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if let SdkError::ServiceError(ctx) = &err {
        let code = ctx.err().code().unwrap_or("unknown error");
        let status = ctx.raw().status().as_u16();
        let message = ctx.err().message().unwrap_or("");
        return ApiError::new(error_kind(code, status), format!("{code} (HTTP {status}): {message}"));
    }
    let kind = match &err {
        SdkError::TimeoutError(_) => ErrorKind::Timeout,
        SdkError::DispatchFailure(d) if d.is_timeout() => ErrorKind::Timeout,
        SdkError::DispatchFailure(d) if d.is_io() => ErrorKind::Connection,
        SdkError::ResponseError(_) => ErrorKind::BadResponse,
        _ => ErrorKind::Other,
    };
    ApiError::new(kind, crate::errors::chain(&err))
}

/// The kind of an S3, SQS or DynamoDB error code (and HTTP status).
pub fn error_kind(code: &str, status: u16) -> ErrorKind {
    match code {
        "NoSuchKey"
        | "NoSuchBucket"
        | "NoSuchVersion"
        | "NotFound"
        | "AWS.SimpleQueueService.NonExistentQueue"
        | "QueueDoesNotExist" => ErrorKind::NotFound,
        "SlowDown" | "ProvisionedThroughputExceededException" | "RequestThrottled" | "ThrottlingException" => {
            ErrorKind::Throttled
        }
        "InternalError" | "ServiceUnavailable" => ErrorKind::ServerError,
        _ => service_error_kind(code, status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_of_the_three_services() {
        assert_eq!(error_kind("NoSuchKey", 404), ErrorKind::NotFound);
        assert_eq!(error_kind("AWS.SimpleQueueService.NonExistentQueue", 400), ErrorKind::NotFound);
        assert_eq!(error_kind("SlowDown", 503), ErrorKind::Throttled);
        assert_eq!(error_kind("ProvisionedThroughputExceededException", 400), ErrorKind::Throttled);
        assert_eq!(error_kind("AccessDenied", 403), ErrorKind::AccessDenied);
        assert_eq!(error_kind("", 500), ErrorKind::ServerError);
        assert_eq!(error_kind("Whatever", 400), ErrorKind::ClientError);
    }
}
