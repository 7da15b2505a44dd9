//! The test's side of AWS against a moto_server, shared by the S3 tests
//! (tests/s3_source.rs, tests/mixed_sources.rs, the stack's tests/stack/s3.rs):
//! the test's own SDK clients with explicit test credentials ([`Aws`]: S3
//! path-style, SQS, DynamoDB, CloudWatch Logs), a bucket whose object
//! creations are notified to a new queue, the dedup table, objects put and
//! the messages a queue holds; and the environment of a child exporter or
//! `replay s3://` process ([`child_env`], [`replay_env`]), which takes the
//! test's credentials and never the machine's profile, shared files or
//! instance metadata.

use std::process::Command;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
use aws_sdk_sqs::types::QueueAttributeName;

/// The region of every client and configuration the tests make.
pub const REGION: &str = "us-east-1";

/// The test's own SDK clients, with explicit test credentials, on one endpoint.
pub struct Aws {
    /// Path-style (`http://127.0.0.1:PORT/bucket/key`), as moto answers.
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub ddb: aws_sdk_dynamodb::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
}

impl Aws {
    /// Clients of `endpoint` (moto_server's `http://127.0.0.1:PORT`).
    pub fn new(endpoint: &str) -> Aws {
        let shared = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(REGION))
            .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
                aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "tests"),
            ))
            .endpoint_url(endpoint)
            .build();
        let s3 = aws_sdk_s3::config::Builder::from(&shared).force_path_style(true).build();
        Aws {
            s3: aws_sdk_s3::Client::from_conf(s3),
            sqs: aws_sdk_sqs::Client::new(&shared),
            ddb: aws_sdk_dynamodb::Client::new(&shared),
            logs: aws_sdk_cloudwatchlogs::Client::new(&shared),
        }
    }

    /// Creates `bucket` and has its object creations announced on a new
    /// queue `queue`; the queue URL.
    pub async fn bucket_notifying_queue(&self, bucket: &str, queue: &str) -> String {
        self.s3.create_bucket().bucket(bucket).send().await.expect("CreateBucket");
        self.notify_new_queue(bucket, queue).await
    }

    /// Creates the queue `queue` and has the existing `bucket` announce every
    /// object creation on it (moto sends an `s3:TestEvent` first); the queue URL.
    pub async fn notify_new_queue(&self, bucket: &str, queue: &str) -> String {
        let url = self.sqs.create_queue().queue_name(queue).send().await.expect("CreateQueue").queue_url.unwrap();
        let arn = self.queue_arn(&url).await;
        let q = QueueConfiguration::builder().queue_arn(arn).events(Event::S3ObjectCreated).build().unwrap();
        let conf = NotificationConfiguration::builder().queue_configurations(q).build();
        let put = self.s3.put_bucket_notification_configuration().bucket(bucket).notification_configuration(conf);
        put.send().await.expect("PutBucketNotificationConfiguration");
        url
    }

    /// The ARN of the queue at `url`.
    pub async fn queue_arn(&self, url: &str) -> String {
        let attrs = self.sqs.get_queue_attributes().queue_url(url).attribute_names(QueueAttributeName::QueueArn);
        let attrs = attrs.send().await.expect("GetQueueAttributes").attributes.unwrap();
        attrs[&QueueAttributeName::QueueArn].clone()
    }

    /// The dedup (claim) table `name` as docs/s3.md describes it: the
    /// partition key `object` (string), on demand.
    pub async fn dedup_table(&self, name: &str) {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        let attribute = AttributeDefinition::builder()
            .attribute_name("object")
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap();
        let key = KeySchemaElement::builder().attribute_name("object").key_type(KeyType::Hash).build().unwrap();
        self.ddb
            .create_table()
            .table_name(name)
            .attribute_definitions(attribute)
            .key_schema(key)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .expect("CreateTable");
    }

    /// Messages on the queue at `url`, visible and in flight.
    pub async fn queued(&self, url: &str) -> u64 {
        let a = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("GetQueueAttributes")
            .attributes
            .unwrap();
        let n = |k: QueueAttributeName| a.get(&k).map_or(0, |v| v.parse::<u64>().unwrap());
        n(QueueAttributeName::ApproximateNumberOfMessages)
            + n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
    }

    /// PutObject of `body` at `bucket`/`key`; the ETag, without its quotes.
    pub async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> String {
        let out = self.s3.put_object().bucket(bucket).key(key).body(ByteStream::from(body)).send().await;
        out.expect("PutObject").e_tag.unwrap_or_default().trim_matches('"').to_owned()
    }
}

/// The AWS environment of a child exporter: the test credentials
/// (`testing`), no instance metadata, no config or credentials file, no
/// profile and no `AWS_ENDPOINT_URL` (its configuration names the endpoint).
pub fn child_env(cmd: &mut Command) -> &mut Command {
    cmd.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
}

/// The environment of `replay s3://`, which has no configuration file: that
/// of [`child_env`], with the region and `AWS_ENDPOINT_URL` set to `endpoint`.
pub fn replay_env<'a>(cmd: &'a mut Command, endpoint: &str) -> &'a mut Command {
    child_env(cmd).env("AWS_REGION", REGION).env("AWS_ENDPOINT_URL", endpoint)
}
