//! The narrow interface to CloudWatch Logs: the one operation the poller uses,
//! FilterLogEvents, as a trait ([`LogsApi`]) with plain request/response types
//! and a bounded error kind, and its implementation over the AWS SDK
//! ([`SdkLogsClient`]). The poller and its tests depend on the trait only.
//!
//! Retries live in ONE layer, the poller's own ([`super::retry`]): the SDK
//! client is built with `RetryConfig::disabled()` so that every attempt passes
//! through the shared request-rate limit, is counted in
//! `vpc_flow_exporter_cloudwatch_requests_total` /
//! `..._request_errors_total{error}`, and can be abandoned at shutdown.
//! (Credential providers — STS, SSO — keep the SDK's standard retries: they
//! are other operations on other endpoints.)
//!
//! User information in an endpoint URL (`http://user:password@host`) is
//! removed before the URL reaches the SDK (which does not use it: requests
//! are signed with AWS credentials) or any log line ([`redact_url`]), so that
//! no password reaches the logs at any level.

use std::future::Future;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_cloudwatchlogs::config::http::HttpResponse;
use aws_sdk_cloudwatchlogs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatchlogs::operation::filter_log_events::FilterLogEventsError;

use crate::config::CloudWatchConfig;

/// The `operation` label value of the only operation used.
pub const FILTER_LOG_EVENTS: &str = "FilterLogEvents";

/// One FilterLogEvents request: a page of one log group.
#[derive(Debug, Clone, Copy)]
pub struct FilterRequest<'a> {
    pub log_group: &'a str,
    pub log_stream_prefix: Option<&'a str>,
    /// Earliest event time (epoch ms), inclusive.
    pub start_time_ms: i64,
    pub next_token: Option<&'a str>,
}

/// One event as FilterLogEvents returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    pub log_stream: String,
    /// Opaque, unique within the log group.
    pub event_id: String,
    /// Event time (for flow logs: the flow's start), epoch ms.
    pub timestamp_ms: i64,
    /// When CloudWatch ingested it, epoch ms.
    pub ingestion_ms: i64,
    pub message: String,
}

/// One page. Only a missing `next_token` ends a scan: pages may be partly
/// full or empty while more remains.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub events: Vec<LogEvent>,
    pub next_token: Option<String>,
    /// Events that lacked an eventId, a time or a message (never seen from
    /// AWS; counted and skipped).
    pub malformed: u64,
}

/// What went wrong with a request: the bounded `error` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// ThrottlingException (HTTP 400) or HTTP 429.
    Throttled,
    /// ResourceNotFoundException: the log group does not exist.
    NotFound,
    /// AccessDenied, bad or expired credentials.
    AccessDenied,
    /// InvalidParameterException (for a paging request, maybe an expired nextToken).
    InvalidParameter,
    /// HTTP 5xx or ServiceUnavailableException.
    ServerError,
    /// The attempt or the connection timed out.
    Timeout,
    /// Could not connect or the connection broke.
    Connection,
    /// A response that could not be read.
    BadResponse,
    /// Any other client-side (4xx) error.
    ClientError,
    /// No credentials could be loaded (or assumed).
    Credentials,
    /// Anything else (request construction, ...).
    Other,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::Throttled,
        ErrorKind::NotFound,
        ErrorKind::AccessDenied,
        ErrorKind::InvalidParameter,
        ErrorKind::ServerError,
        ErrorKind::Timeout,
        ErrorKind::Connection,
        ErrorKind::BadResponse,
        ErrorKind::ClientError,
        ErrorKind::Credentials,
        ErrorKind::Other,
    ];

    /// The `error` label value.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::Throttled => "throttled",
            ErrorKind::NotFound => "not_found",
            ErrorKind::AccessDenied => "access_denied",
            ErrorKind::InvalidParameter => "invalid_parameter",
            ErrorKind::ServerError => "server_error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connection => "connection",
            ErrorKind::BadResponse => "bad_response",
            ErrorKind::ClientError => "client_error",
            ErrorKind::Credentials => "credentials",
            ErrorKind::Other => "other",
        }
    }

    /// Whether the same request is worth sending again after a backoff.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorKind::Throttled
                | ErrorKind::ServerError
                | ErrorKind::Timeout
                | ErrorKind::Connection
                | ErrorKind::BadResponse
        )
    }
}

/// A failed request.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind_label}: {message}", kind_label = .kind.label())]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError { kind, message: message.into() }
    }
}

/// The CloudWatch Logs operations the poller needs.
pub trait LogsApi: Send + Sync + 'static {
    fn filter_log_events(&self, req: FilterRequest<'_>) -> impl Future<Output = Result<Page, ApiError>> + Send;
}

/// Why the SDK client cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    #[error(
        "cloudwatch.region: no AWS region found: set cloudwatch.region, the AWS_REGION variable or a region in the AWS profile"
    )]
    NoRegion,
}

/// [`LogsApi`] over the AWS SDK.
#[derive(Debug, Clone)]
pub struct SdkLogsClient {
    client: aws_sdk_cloudwatchlogs::Client,
}

/// Per-attempt limits of the SDK client (a 10,000-event page can take seconds).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

impl SdkLogsClient {
    /// Builds the client: region and credentials from aws-config's default
    /// chain (environment, shared profile and SSO, web identity, ECS and EC2
    /// roles), overridden by `region`; `endpoint_url` (else the
    /// `AWS_ENDPOINT_URL` variable) for local endpoints; `role_arn` assumed
    /// through STS with the chain's credentials.
    pub async fn from_config(cfg: &CloudWatchConfig) -> Result<SdkLogsClient, SetupError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &cfg.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        // Set only when given here or when the environment's had to be
        // cleaned; otherwise the SDK reads the AWS_ENDPOINT_URL variables itself.
        let explicit = endpoint(cfg).filter(|(_, stripped)| cfg.endpoint_url.is_some() || *stripped).map(|(url, stripped)| {
            if stripped {
                tracing::warn!(endpoint = %url, "The endpoint URL carries user information (user:password@); it is not used for AWS requests (they are signed with AWS credentials) and was removed");
            }
            url
        });
        if let Some(url) = &explicit {
            loader = loader.endpoint_url(url.clone());
        }
        let shared = loader.load().await;
        if shared.region().is_none() {
            return Err(SetupError::NoRegion);
        }
        let mut builder = aws_sdk_cloudwatchlogs::config::Builder::from(&shared)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                    .build(),
            );
        if let Some(url) = explicit {
            builder = builder.endpoint_url(url);
        }
        if let Some(arn) = &cfg.role_arn {
            let provider = aws_config::sts::AssumeRoleProvider::builder(arn.clone())
                .session_name("vpc-flow-exporter")
                .configure(&shared)
                .build()
                .await;
            builder = builder.credentials_provider(provider);
        }
        let client = aws_sdk_cloudwatchlogs::Client::from_conf(builder.build());
        Ok(SdkLogsClient { client })
    }
}

impl LogsApi for SdkLogsClient {
    async fn filter_log_events(&self, req: FilterRequest<'_>) -> Result<Page, ApiError> {
        let out = self
            .client
            .filter_log_events()
            .log_group_name(req.log_group)
            .set_log_stream_name_prefix(req.log_stream_prefix.map(str::to_owned))
            .start_time(req.start_time_ms)
            .set_next_token(req.next_token.map(str::to_owned))
            .send()
            .await
            .map_err(classify)?;
        if out.next_token.as_ref().is_some_and(|t| t.len() > super::checkpoint::MAX_TOKEN_LEN) {
            return Err(ApiError::new(
                ErrorKind::BadResponse,
                format!("a nextToken longer than {} bytes", super::checkpoint::MAX_TOKEN_LEN),
            ));
        }
        let mut page = Page { events: Vec::new(), next_token: out.next_token, malformed: 0 };
        let events = out.events.unwrap_or_default();
        page.events.reserve(events.len());
        for e in events {
            match (e.log_stream_name, e.event_id, e.timestamp, e.ingestion_time, e.message) {
                (Some(log_stream), Some(event_id), Some(timestamp_ms), Some(ingestion_ms), Some(message)) => {
                    page.events.push(LogEvent { log_stream, event_id, timestamp_ms, ingestion_ms, message })
                }
                _ => page.malformed += 1,
            }
        }
        // An empty string is no token: treat it as the end, as AWS means it.
        if page.next_token.as_deref().is_some_and(str::is_empty) {
            page.next_token = None;
        }
        Ok(page)
    }
}

/// Maps an SDK error to its kind, keeping the whole chain in the message.
fn classify(err: SdkError<FilterLogEventsError, HttpResponse>) -> ApiError {
    let kind = match &err {
        SdkError::ServiceError(ctx) => {
            // The code and message say it all; the full chain repeats them.
            let code = ctx.err().code().unwrap_or("unknown error");
            let status = ctx.raw().status().as_u16();
            let message = ctx.err().message().unwrap_or("");
            return ApiError::new(service_error_kind(code, status), format!("{code} (HTTP {status}): {message}"));
        }
        SdkError::TimeoutError(_) => ErrorKind::Timeout,
        SdkError::DispatchFailure(d) => {
            if d.is_timeout() {
                ErrorKind::Timeout
            } else if d.is_io() {
                ErrorKind::Connection
            } else if mentions_credentials(&err) {
                ErrorKind::Credentials
            } else {
                ErrorKind::Other
            }
        }
        SdkError::ResponseError(_) => ErrorKind::BadResponse,
        _ if mentions_credentials(&err) => ErrorKind::Credentials,
        _ => ErrorKind::Other,
    };
    // Without the Debug dump that `DisplayErrorContext` appends.
    ApiError::new(kind, crate::errors::chain(&err))
}

/// Whether the error chain says credentials could not be loaded (the SDK
/// reports it as a dispatch failure, with no dedicated kind to match on).
fn mentions_credentials(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        let m = format!("{e:?}");
        if m.contains("CredentialsNotLoaded") || m.contains("ProviderError") || m.contains("credential provider") {
            return true;
        }
        cur = e.source();
    }
    false
}

/// The kind of a modelled or unmodelled service error, from its code and status.
pub fn service_error_kind(code: &str, status: u16) -> ErrorKind {
    match code {
        "ThrottlingException" | "Throttling" | "TooManyRequestsException" | "RequestLimitExceeded" => {
            ErrorKind::Throttled
        }
        "ResourceNotFoundException" => ErrorKind::NotFound,
        "AccessDeniedException"
        | "AccessDenied"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch"
        | "ExpiredTokenException"
        | "MissingAuthenticationTokenException" => ErrorKind::AccessDenied,
        "InvalidParameterException" => ErrorKind::InvalidParameter,
        "ServiceUnavailableException" | "InternalFailure" | "InternalServerError" => ErrorKind::ServerError,
        _ if status == 429 => ErrorKind::Throttled,
        _ if status >= 500 => ErrorKind::ServerError,
        _ if status == 401 || status == 403 => ErrorKind::AccessDenied,
        _ => ErrorKind::ClientError,
    }
}

/// The region and endpoint as configured, for the start-up log line; the
/// endpoint without user information.
pub fn describe_target(cfg: &CloudWatchConfig) -> (String, String) {
    (
        cfg.region.clone().unwrap_or_else(|| "default-chain".to_owned()),
        endpoint(cfg).map_or_else(|| "default".to_owned(), |(url, _)| url),
    )
}

/// The endpoint URL in force (`endpoint_url`, else the
/// `AWS_ENDPOINT_URL_CLOUDWATCH_LOGS` or `AWS_ENDPOINT_URL` variable) without
/// its user information, and whether it had some.
fn endpoint(cfg: &CloudWatchConfig) -> Option<(String, bool)> {
    let env = |name: &str| std::env::var(name).ok().filter(|u| !u.is_empty());
    let url = cfg
        .endpoint_url
        .clone()
        .or_else(|| env("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS"))
        .or_else(|| env("AWS_ENDPOINT_URL"))?;
    let clean = redact_url(&url);
    let stripped = clean != url;
    Some((clean, stripped))
}

/// The URL without user information (`scheme://user:password@host/...` →
/// `scheme://host/...`), for logs, metrics and the SDK. Works on text that
/// is not a well-formed URL too (no scheme, several `@`): everything up to
/// the last `@` of the authority goes.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// The SDK client, for the start-up (see [`SdkLogsClient::from_config`]).
pub async fn build_client(cfg: &CloudWatchConfig) -> Result<SdkLogsClient, super::CloudWatchError> {
    SdkLogsClient::from_config(cfg).await.map_err(super::CloudWatchError::Client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_information_is_removed_from_urls() {
        for (url, clean) in [
            ("http://user:secret@127.0.0.1:5000", "http://127.0.0.1:5000"),
            ("https://user:se@cr@t@logs.example.com/path?q=a@b", "https://logs.example.com/path?q=a@b"),
            ("http://secret@[::1]:80/", "http://[::1]:80/"),
            ("user:secret@host:5000", "host:5000"),
            ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
            ("http://host/a@b", "http://host/a@b"),
            ("", ""),
        ] {
            assert_eq!(redact_url(url), clean, "{url}");
            assert!(!redact_url(url).contains("secret"));
        }
    }

    #[test]
    fn error_kinds() {
        assert_eq!(service_error_kind("ThrottlingException", 400), ErrorKind::Throttled);
        assert_eq!(service_error_kind("", 429), ErrorKind::Throttled);
        assert_eq!(service_error_kind("ResourceNotFoundException", 400), ErrorKind::NotFound);
        assert_eq!(service_error_kind("AccessDeniedException", 400), ErrorKind::AccessDenied);
        assert_eq!(service_error_kind("", 503), ErrorKind::ServerError);
        assert_eq!(service_error_kind("Whatever", 400), ErrorKind::ClientError);
        assert!(ErrorKind::Throttled.is_transient());
        assert!(!ErrorKind::NotFound.is_transient());
        let labels: std::collections::HashSet<_> = ErrorKind::ALL.iter().map(|k| k.label()).collect();
        assert_eq!(labels.len(), ErrorKind::ALL.len());
    }
}
