//! A `moto_server` on a free loopback port, killed on drop, and the AWS SDK
//! client that seeds it (CreateLogGroup, CreateLogStream, PutLogEvents).
//! moto_server comes from `scripts/setup-test-deps.sh` (`.venv/bin`, put on
//! PATH by `scripts/test.sh`); a test without it fails, it never skips.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatchlogs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cloudwatchlogs::types::InputLogEvent;

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

/// The moto_server executable: on PATH, else in the repository's `.venv`.
pub fn moto_server_path() -> PathBuf {
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join("moto_server");
            if p.is_file() {
                return p;
            }
        }
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
    if venv.is_file() {
        return venv;
    }
    panic!(
        "moto_server not found on PATH nor in .venv/bin: the CloudWatch tests need it. \
         Run scripts/setup-test-deps.sh (or scripts/test.sh, which runs it and puts .venv/bin on PATH)."
    );
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("addr").port()
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// A running moto_server.
pub struct MotoServer {
    child: Child,
    pub port: u16,
    pub endpoint: String,
}

impl MotoServer {
    pub fn start() -> MotoServer {
        let exe = moto_server_path();
        let mut last_err = String::new();
        for _ in 0..3 {
            let port = free_port();
            let mut child = Command::new(&exe)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    last_err = format!("moto_server exited with {status} (port {port} taken?)");
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return MotoServer { child, port, endpoint: format!("http://127.0.0.1:{port}") };
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
            if last_err.is_empty() {
                last_err = "moto_server did not listen within 60 s".into();
            }
        }
        panic!("cannot start moto_server: {last_err}");
    }

    pub fn seeder(&self) -> Seeder {
        Seeder::new(&self.endpoint)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
