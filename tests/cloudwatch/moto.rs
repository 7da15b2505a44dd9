//! The AWS SDK client that seeds a moto_server (CreateLogGroup,
//! CreateLogStream, PutLogEvents), the process-wide test credentials, and
//! flow-log lines to put. The server itself, its lookup and the skip when it
//! is missing are the shared `tests/common` ([`MotoServer::require`]).

use std::sync::Once;

use aws_sdk_cloudwatchlogs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;

pub use crate::common::moto::MotoServer;
pub use crate::common::{free_port, now_ms};

/// Process-wide AWS settings for the exporter under test: static test
/// credentials, no instance metadata, no host profiles.
pub fn init_aws_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Set once, before any SDK client of this process exists.
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        std::env::set_var("AWS_CONFIG_FILE", "/nonexistent/aws-config");
        std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials");
        std::env::remove_var("AWS_PROFILE");
        std::env::remove_var("AWS_ENDPOINT_URL");
        std::env::remove_var("AWS_SESSION_TOKEN");
    });
}

/// The test's SDK client for this moto_server (the server is `tests/common/moto.rs`).
impl MotoServer {
    pub fn seeder(&self) -> Seeder {
        Seeder::new(&self.endpoint)
    }
}

/// The SDK client of the test itself, with explicit test credentials.
pub struct Seeder {
    pub client: aws_sdk_cloudwatchlogs::Client,
}

impl Seeder {
    pub fn new(endpoint: &str) -> Seeder {
        let conf = aws_sdk_cloudwatchlogs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .endpoint_url(endpoint)
            .build();
        Seeder { client: aws_sdk_cloudwatchlogs::Client::from_conf(conf) }
    }

    pub async fn create_group(&self, group: &str) {
        self.client.create_log_group().log_group_name(group).send().await.expect("CreateLogGroup");
    }

    pub async fn create_stream(&self, group: &str, stream: &str) {
        self.client
            .create_log_stream()
            .log_group_name(group)
            .log_stream_name(stream)
            .send()
            .await
            .expect("CreateLogStream");
    }

    /// Creates one stream per name in `group`, each holding the [`lines`] of
    /// that name for `range` at the times `ts_ms(i)`.
    pub async fn fill_streams(
        &self,
        group: &str,
        names: impl IntoIterator<Item = String>,
        range: std::ops::Range<usize>,
        ts_ms: impl Fn(usize) -> i64,
    ) {
        for eni in names {
            self.create_stream(group, &eni).await;
            self.put(group, &eni, lines(&eni, range.clone(), &ts_ms)).await;
        }
    }

    /// Puts events (epoch ms, message) in time order, in batches.
    pub async fn put(&self, group: &str, stream: &str, mut events: Vec<(i64, String)>) {
        events.sort_by_key(|e| e.0);
        for chunk in events.chunks(5000) {
            let batch: Vec<InputLogEvent> = chunk
                .iter()
                .map(|(ts, m)| InputLogEvent::builder().timestamp(*ts).message(m.clone()).build().expect("event"))
                .collect();
            self.client
                .put_log_events()
                .log_group_name(group)
                .log_stream_name(stream)
                .set_log_events(Some(batch))
                .send()
                .await
                .expect("PutLogEvents");
        }
    }
}

/// Default-format lines of `eni` for the indexes in `range`, at the times
/// `ts_ms(i)` (epoch ms), as (timestamp, message) events.
pub fn lines(eni: &str, range: std::ops::Range<usize>, ts_ms: impl Fn(usize) -> i64) -> Vec<(i64, String)> {
    range.map(|i| (ts_ms(i), v2_line(eni, i, ts_ms(i) / 1000))).collect()
}

/// A default-format (v2) flow-log line; `n` varies ports and sizes.
pub fn v2_line(eni: &str, n: usize, start_s: i64) -> String {
    format!(
        "2 123456789012 {eni} 10.0.{}.{} 10.1.0.{} {} {} 6 {} {} {start_s} {} ACCEPT OK",
        n % 200,
        n % 250 + 1,
        n % 250 + 1,
        1024 + n % 50000,
        [22, 80, 443, 5432][n % 4],
        1 + n % 20,
        100 + n % 1400,
        start_s + 60
    )
}
