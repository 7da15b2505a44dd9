//! Configuration: the YAML file, read in three steps — raw (serde, strict: every
//! unknown key is an error) → defaults → a validated [`Config`] whose types are
//! the ones the pipeline uses (compiled formats, parsed CIDRs, durations).
//! Every error names the key it is about, as a dotted path
//! (`detections.top_k.window: ...`), so a bad file fails at start-up with a
//! message that says what to fix. Relative paths are resolved against the
//! folder of the configuration file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::detect::portscan::MAX_PORTS_PER_SOURCE;
use crate::parse::Format;

/// A configuration error: the key, what is wrong with it, and the line of the
/// file it is on when it can be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the key (`cloudwatch.log_groups[1].name`), or empty for the
    /// file as a whole.
    pub key: String,
    pub message: String,
    /// 1-based line of the key (or of the closest enclosing key found).
    pub line: Option<usize>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

fn err(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError { key: key.into(), message: message.into(), line: None }
}

impl ConfigError {
    /// Adds the line of the key in `text`, when none is known yet.
    fn at_line_in(mut self, text: &str) -> ConfigError {
        if self.line.is_none() && !self.key.is_empty() {
            self.line = locate(text, &self.key);
        }
        self
    }
}

/// The 1-based line of a dotted key (`cloudwatch.log_groups[1].name`) in
/// block-style YAML, or of the deepest part of it found (a flow-style value
/// such as `[1, 2]` holds its items on its key's line).
pub fn locate(text: &str, key: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start_matches(' ').len();
    let mut from = 0usize;
    let mut parent: isize = -1;
    let mut found = None;
    for part in key.split('.') {
        let (name, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            let mut hit = None;
            for (i, l) in lines.iter().enumerate().skip(from) {
                let t = l.trim();
                if t.is_empty() || t.starts_with('#') {
                    continue;
                }
                let raw = indent(l) as isize;
                if i > from && raw <= parent {
                    break;
                }
                let (eff, content) = match t.strip_prefix("- ") {
                    Some(c) => (raw + 2 + (t.len() - 2 - c.trim_start().len()) as isize, c.trim_start()),
                    None => (raw, t),
                };
                let content = content.trim_start_matches(['"', '\'']);
                if eff > parent
                    && content
                        .strip_prefix(name)
                        .is_some_and(|r| r.trim_start_matches(['"', '\'']).trim_start().starts_with(':'))
                {
                    hit = Some((i, eff));
                    break;
                }
            }
            let Some((i, eff)) = hit else { return found };
            found = Some(i + 1);
            from = i + 1;
            parent = eff;
        }
        for idx in indexes.split(']').filter_map(|x| x.strip_prefix('[')) {
            let Ok(want) = idx.parse::<usize>() else { return found };
            let mut seen = 0usize;
            let mut dash: Option<usize> = None;
            let mut hit = None;
            for (i, l) in lines.iter().enumerate().skip(from) {
                let t = l.trim();
                if t.is_empty() || t.starts_with('#') {
                    continue;
                }
                let raw = indent(l);
                let is_item = t.starts_with("- ") || t == "-";
                if (raw as isize) < parent || ((raw as isize) == parent && !is_item) {
                    break;
                }
                if is_item && dash.is_none_or(|d| d == raw) {
                    dash = Some(raw);
                    if seen == want {
                        hit = Some((i, raw));
                        break;
                    }
                    seen += 1;
                }
            }
            let Some((i, raw)) = hit else { return found };
            found = Some(i + 1);
            from = i;
            parent = raw as isize;
        }
    }
    found
}

// ---------------------------------------------------------------- raw model

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    log_format: Option<String>,
    #[serde(default)]
    detections: RawDetections,
    geoip: Option<RawGeoIp>,
    #[serde(default)]
    limits: RawLimits,
    cloudwatch: Option<RawCloudWatch>,
    firehose: Option<RawFirehose>,
    s3: Option<RawS3>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDetections {
    #[serde(default)]
    allowed_source_cidrs: Vec<String>,
    #[serde(default)]
    approved_destination_cidrs: Vec<String>,
    forbidden_ports: Option<Vec<u16>>,
    watch_ports: Option<Vec<u16>>,
    #[serde(default)]
    top_k: RawTopK,
    #[serde(default)]
    port_scan: RawPortScan,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopK {
    size: Option<usize>,
    window: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPortScan {
    window: Option<String>,
    min_distinct_ports: Option<u32>,
    shard_min_ports: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGeoIp {
    database: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_interfaces: Option<usize>,
    max_tracked_addresses: Option<usize>,
    max_port_scan_sources: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCloudWatch {
    region: Option<String>,
    endpoint_url: Option<String>,
    role_arn: Option<String>,
    poll_interval: Option<String>,
    lookback: Option<String>,
    start_from: Option<String>,
    state_file: Option<String>,
    max_requests_per_second: Option<f64>,
    dedup_margin: Option<String>,
    #[serde(default)]
    log_groups: Vec<RawLogGroup>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFirehose {
    listen_address: Option<String>,
    access_keys: Option<Vec<String>>,
    access_keys_file: Option<String>,
    allow_unauthenticated: Option<bool>,
    log_format: Option<String>,
    request_timeout: Option<String>,
    max_bytes_in_flight: Option<u64>,
    dedup_window: Option<String>,
    dedup_max_ids: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawS3 {
    queue_url: Option<String>,
    region: Option<String>,
    endpoint_url: Option<String>,
    role_arn: Option<String>,
    concurrency: Option<usize>,
    visibility_timeout: Option<String>,
    key_prefix: Option<String>,
    log_format: Option<String>,
    dedup_table: Option<String>,
    shutdown_grace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogGroup {
    name: Option<String>,
    log_format: Option<String>,
    log_stream_prefix: Option<String>,
}

// ---------------------------------------------------------- validated model

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The log format of files, stdin and log groups without their own.
    pub log_format: Format,
    pub detections: Detections,
    pub geoip: Option<GeoIpConfig>,
    pub limits: Limits,
    pub cloudwatch: Option<CloudWatchConfig>,
    /// The Firehose receiver; off when absent.
    pub firehose: Option<FirehoseConfig>,
    /// The S3 source (objects announced on SQS); off when absent.
    pub s3: Option<S3Config>,
}

/// The detection rules and windows.
#[derive(Debug, Clone)]
pub struct Detections {
    /// Illegal-traffic rule: ACCEPTs from a source in none of these. Off when empty.
    pub allowed_source_cidrs: Vec<IpNet>,
    /// NAT-breach rule: pkt-dstaddr in none of these. Off when empty.
    pub approved_destination_cidrs: Vec<IpNet>,
    pub forbidden_ports: Vec<u16>,
    pub watch_ports: Vec<u16>,
    pub top_k: TopKConfig,
    pub port_scan: PortScanConfig,
}

#[derive(Debug, Clone, Copy)]
pub struct TopKConfig {
    pub size: usize,
    pub window: Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct PortScanConfig {
    pub window: Duration,
    pub min_distinct_ports: u32,
    /// Sources with at least this many distinct ports are listed in
    /// `vpc_flow_top_port_scanners` (at most `min_distinct_ports`): replicas that
    /// shard one VPC set it lower, so that a sum across them can reach the threshold.
    pub shard_min_ports: u32,
}

#[derive(Debug, Clone)]
pub struct GeoIpConfig {
    pub database: PathBuf,
}

/// Bounds on label values and tracker memory.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Distinct `interface_id` values; beyond, records count under `other`.
    pub max_interfaces: usize,
    /// Addresses each top-K tracker (rejected sources, rejected destinations) holds.
    pub max_tracked_addresses: usize,
    /// Sources the port-scan tracker holds.
    pub max_port_scan_sources: usize,
}

/// The live source.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudWatchConfig {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub role_arn: Option<String>,
    pub poll_interval: Duration,
    pub lookback: Duration,
    pub start_from: Duration,
    pub state_file: Option<PathBuf>,
    pub max_requests_per_second: f64,
    /// How long before the dedup horizon counted events are remembered by key:
    /// longer than the delay before a new event becomes visible to FilterLogEvents.
    pub dedup_margin: Duration,
    pub log_groups: Vec<LogGroupConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogGroupConfig {
    pub name: String,
    pub log_format: Format,
    pub log_stream_prefix: Option<String>,
}

/// The Firehose receiver (docs/firehose.md).
#[derive(Debug, Clone, PartialEq)]
pub struct FirehoseConfig {
    /// Its own listener, apart from `--web.listen-address`; checked for form
    /// and bound by the builder.
    pub listen_address: String,
    /// The accepted `X-Amz-Firehose-Access-Key` values (`access_keys`, then
    /// the lines of `access_keys_file`); empty only with
    /// `allow_unauthenticated: true`.
    pub access_keys: Vec<AccessKey>,
    /// The format of records that are flow-log lines (default: `log_format`).
    pub log_format: Format,
    /// From a request's head to its response (body read and counted).
    pub request_timeout: Duration,
    /// Request bodies held at once over all requests, decompressed copies included.
    pub max_bytes_in_flight: u64,
    /// How long an applied request id is remembered (a retry within it counts once).
    pub dedup_window: Duration,
    /// The most request ids remembered.
    pub dedup_max_ids: usize,
}

/// The S3 source (docs/s3.md): objects announced on an SQS queue.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Config {
    pub queue_url: String,
    pub region: Option<String>,
    /// For S3, SQS and DynamoDB alike (local endpoints, tests).
    pub endpoint_url: Option<String>,
    pub role_arn: Option<String>,
    /// Objects in work at once.
    pub concurrency: usize,
    /// Held on received messages, extended every half of it while in work.
    pub visibility_timeout: Duration,
    /// Objects whose key does not start with it are skipped (and counted).
    pub key_prefix: Option<String>,
    /// The format of text objects without a header line.
    pub log_format: Format,
    /// DynamoDB table of object claims: exactly once across replicas.
    pub dedup_table: Option<String>,
    /// At shutdown, how long objects in work may take to finish before
    /// their messages are released (visibility 0).
    pub shutdown_grace: Duration,
}

/// An access key; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey(pub String);

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessKey(<redacted>)")
    }
}

/// Defaults, named so that docs and code agree.
pub mod defaults {
    use std::time::Duration;
    pub const FORBIDDEN_PORTS: &[u16] = &[23];
    pub const WATCH_PORTS: &[u16] = &[22, 23, 25, 53, 80, 443, 445, 1433, 3306, 3389, 5432, 6379];
    pub const TOP_K_SIZE: usize = 25;
    pub const TOP_K_WINDOW: Duration = Duration::from_secs(15 * 60);
    pub const PORT_SCAN_WINDOW: Duration = Duration::from_secs(10 * 60);
    pub const PORT_SCAN_MIN_DISTINCT_PORTS: u32 = 20;
    pub const MAX_INTERFACES: usize = 10_000;
    /// Upper bounds of the limits: each keeps memory within what the docs state.
    pub const MAX_INTERFACES_MAX: usize = 1_000_000;
    pub const MAX_TRACKED_ADDRESSES_MAX: usize = 5_000_000;
    pub const MAX_PORT_SCAN_SOURCES_MAX: usize = 2_000_000;
    /// Entries of `allowed_source_cidrs` / `approved_destination_cidrs`.
    pub const MAX_CIDRS: usize = 1_000_000;
    /// The configuration file's largest size.
    pub const MAX_CONFIG_BYTES: u64 = 64 << 20;
    /// The GeoIP database's largest size.
    pub const MAX_GEOIP_BYTES: u64 = 1 << 30;
    pub const MAX_TRACKED_ADDRESSES: usize = 50_000;
    pub const MAX_PORT_SCAN_SOURCES: usize = 20_000;
    pub const POLL_INTERVAL: Duration = Duration::from_secs(60);
    pub const LOOKBACK: Duration = Duration::from_secs(20 * 60);
    pub const MAX_REQUESTS_PER_SECOND: f64 = 4.0;
    pub const DEDUP_MARGIN: Duration = Duration::from_secs(5 * 60);
    /// `firehose.request_timeout`: well under Firehose's 3-minute wait.
    pub const FIREHOSE_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
    pub const FIREHOSE_REQUEST_TIMEOUT_MAX: Duration = Duration::from_secs(170);
    /// `firehose.max_bytes_in_flight`: 512 MiB; at least one largest gzip
    /// request (64 MiB body + 64 MiB decompressed), at most 64 GiB.
    pub const FIREHOSE_BYTES_IN_FLIGHT: u64 = 512 << 20;
    pub const FIREHOSE_BYTES_IN_FLIGHT_MIN: u64 = 128 << 20;
    pub const FIREHOSE_BYTES_IN_FLIGHT_MAX: u64 = 64 << 30;
    /// `firehose.dedup_window`: 10 minutes, between 1m and 3h (Firehose's
    /// longest retry duration is 2h).
    pub const FIREHOSE_DEDUP_WINDOW: Duration = Duration::from_secs(600);
    pub const FIREHOSE_DEDUP_WINDOW_MAX: Duration = Duration::from_secs(3 * 3600);
    /// `firehose.dedup_max_ids`: 100,000 (about 15 MB), between 100 and 10,000,000.
    pub const FIREHOSE_DEDUP_MAX_IDS: usize = 100_000;
    pub const FIREHOSE_DEDUP_MAX_IDS_MAX: usize = 10_000_000;
    /// `firehose.access_keys_file`'s largest size.
    pub const FIREHOSE_KEYS_FILE_BYTES: u64 = 1 << 20;
    /// The longest access key (Firehose's limit).
    pub const FIREHOSE_ACCESS_KEY_BYTES: usize = 4096;
    /// `s3.concurrency`: at most 256 objects in work at once.
    pub const S3_CONCURRENCY_MAX: usize = 256;
    /// `s3.visibility_timeout`: 5 minutes, between 30s and 12h (the SQS maximum).
    pub const S3_VISIBILITY_TIMEOUT: Duration = Duration::from_secs(300);
    pub const S3_VISIBILITY_TIMEOUT_MIN: Duration = Duration::from_secs(30);
    pub const S3_VISIBILITY_TIMEOUT_MAX: Duration = Duration::from_secs(12 * 3600);
    /// `s3.shutdown_grace`: 20 seconds, at most 10 minutes.
    pub const S3_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
    pub const S3_SHUTDOWN_GRACE_MAX: Duration = Duration::from_secs(600);
}

impl Default for Config {
    fn default() -> Config {
        Config {
            log_format: Format::default_v2(),
            detections: Detections {
                allowed_source_cidrs: Vec::new(),
                approved_destination_cidrs: Vec::new(),
                forbidden_ports: defaults::FORBIDDEN_PORTS.to_vec(),
                watch_ports: defaults::WATCH_PORTS.to_vec(),
                top_k: TopKConfig { size: defaults::TOP_K_SIZE, window: defaults::TOP_K_WINDOW },
                port_scan: PortScanConfig {
                    window: defaults::PORT_SCAN_WINDOW,
                    min_distinct_ports: defaults::PORT_SCAN_MIN_DISTINCT_PORTS,
                    shard_min_ports: defaults::PORT_SCAN_MIN_DISTINCT_PORTS,
                },
            },
            geoip: None,
            limits: Limits {
                max_interfaces: defaults::MAX_INTERFACES,
                max_tracked_addresses: defaults::MAX_TRACKED_ADDRESSES,
                max_port_scan_sources: defaults::MAX_PORT_SCAN_SOURCES,
            },
            cloudwatch: None,
            firehose: None,
            s3: None,
        }
    }
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let bytes = read_limited(path, defaults::MAX_CONFIG_BYTES)
            .map_err(|e| err("", format!("cannot read config file {}: {e}", path.display())))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| err("", format!("config file {} is not UTF-8 text", path.display())))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::from_yaml(&text, &base)
    }

    /// Parses and validates YAML text; relative paths are resolved against `base`.
    pub fn from_yaml(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = if text.trim().is_empty() {
            RawConfig::default()
        } else {
            serde_norway::from_str(text).map_err(|e| yaml_error(text, e))?
        };
        validate(raw, base).map_err(|e| e.at_line_in(text))
    }

    /// The formats that name fields AWS does not define, with those fields, for the
    /// start-up warning: (key, unknown field names).
    pub fn unknown_format_fields(&self) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        let mut push = |key: String, f: &Format| {
            let unknown: Vec<String> = f.unknown_fields().into_iter().map(str::to_owned).collect();
            if !unknown.is_empty() {
                out.push((key, unknown));
            }
        };
        push("log_format".to_owned(), &self.log_format);
        if let Some(cw) = &self.cloudwatch {
            for (i, g) in cw.log_groups.iter().enumerate() {
                push(format!("cloudwatch.log_groups[{i}].log_format"), &g.log_format);
            }
        }
        if let Some(fh) = &self.firehose {
            push("firehose.log_format".to_owned(), &fh.log_format);
        }
        if let Some(s3) = &self.s3 {
            push("s3.log_format".to_owned(), &s3.log_format);
        }
        out
    }
}

/// The expected shapes of the raw model, in the file's words.
const SHAPES: &[(&str, &str)] = &[
    ("struct RawConfig", "a mapping with log_format, detections, geoip, limits, cloudwatch, firehose, s3"),
    (
        "struct RawDetections",
        "a mapping with allowed_source_cidrs, approved_destination_cidrs, forbidden_ports, watch_ports, top_k, port_scan",
    ),
    ("struct RawTopK", "a mapping with size, window"),
    ("struct RawPortScan", "a mapping with window, min_distinct_ports, shard_min_ports"),
    ("struct RawGeoIp", "a mapping with database"),
    ("struct RawLimits", "a mapping with max_interfaces, max_tracked_addresses, max_port_scan_sources"),
    (
        "struct RawCloudWatch",
        "a mapping with region, endpoint_url, role_arn, poll_interval, lookback, start_from, state_file, max_requests_per_second, dedup_margin, log_groups",
    ),
    ("struct RawLogGroup", "a mapping with name, log_format, log_stream_prefix"),
    (
        "struct RawFirehose",
        "a mapping with listen_address, access_keys, access_keys_file, allow_unauthenticated, log_format, request_timeout, max_bytes_in_flight, dedup_window, dedup_max_ids",
    ),
    (
        "struct RawS3",
        "a mapping with queue_url, region, endpoint_url, role_arn, concurrency, visibility_timeout, key_prefix, log_format, dedup_table, shutdown_grace",
    ),
    ("bool", "true or false"),
    ("u16", "a port number 0-65535"),
    ("u32", "a whole number 0 or more"),
    ("u64", "a whole number 0 or more"),
    ("usize", "a whole number 0 or more"),
    ("f64", "a number"),
    ("a sequence", "a list (lines starting with `- `, or [a, b])"),
];

/// serde's message in the file's words: the expected shape of the key, not a
/// Rust type; the dotted path split off as the key; the line from the
/// parser's location, else from the key's place in the text.
fn yaml_error(text: &str, e: serde_norway::Error) -> ConfigError {
    let line = e.location().map(|l| l.line());
    let mut msg = e.to_string();
    // The location is kept as a number, printed once by Display.
    if let Some(i) = msg.rfind(" at line ") {
        if msg[i + 9..].split(' ').next().is_some_and(|n| n.parse::<usize>().is_ok()) {
            msg.truncate(i);
        }
    }
    let (key, mut rest) = match msg.split_once(": ") {
        Some((path, rest))
            if !path.is_empty() && path.chars().all(|c| c.is_ascii_alphanumeric() || "._[]-".contains(c)) =>
        {
            (path.to_owned(), rest.to_owned())
        }
        _ => (String::new(), msg.clone()),
    };
    if let Some(i) = rest.find("expected ") {
        let (head, tail) = rest.split_at(i + "expected ".len());
        if let Some((_, shape)) = SHAPES.iter().find(|(rust, _)| tail == *rust) {
            rest = format!("{head}{shape}");
        }
    }
    let mut out = ConfigError { key, message: shorten_echo(&rest), line };
    if out.line.is_none() {
        // An unknown key: its own line.
        let unknown = out.message.strip_prefix("unknown field `").and_then(|r| r.split('`').next());
        if let Some(field) = unknown {
            let full = if out.key.is_empty() { field.to_owned() } else { format!("{}.{field}", out.key) };
            out.line = locate(text, &full);
        }
    }
    out.at_line_in(text)
}

/// serde echoes a mistyped value whole (`invalid type: string "..."`): a file
/// that is one long string would be printed entire. Cut such an echo to 60
/// characters.
fn shorten_echo(msg: &str) -> String {
    const KEEP: usize = 60;
    let Some(start) = msg.find(": string \"").map(|i| i + ": string \"".len()) else { return msg.to_owned() };
    let Some(len) = msg[start..].rfind("\", expected") else { return msg.to_owned() };
    let echo = &msg[start..start + len];
    if echo.chars().count() <= KEEP {
        return msg.to_owned();
    }
    let cut: String = echo.chars().take(KEEP).collect();
    format!("{}{cut}...{}", &msg[..start], &msg[start + len..])
}

fn validate(raw: RawConfig, base: &Path) -> Result<Config, ConfigError> {
    let d = Config::default();
    let log_format = match raw.log_format {
        Some(spec) => compile_format("log_format", &spec)?,
        None => d.log_format,
    };
    let detections = validate_detections(raw.detections, d.detections)?;
    let geoip = match raw.geoip {
        None => None,
        Some(RawGeoIp { database: None }) => {
            return Err(err("geoip.database", "missing: the path of a .mmdb country or city database"))
        }
        Some(RawGeoIp { database: Some(p) }) => {
            if p.trim().is_empty() {
                return Err(err("geoip.database", "must not be empty"));
            }
            Some(GeoIpConfig { database: resolve(base, &p) })
        }
    };

    let limits = validate_limits(&raw.limits, &detections)?;

    let cloudwatch = match raw.cloudwatch {
        None => None,
        Some(cw) => Some(validate_cloudwatch(cw, base, &log_format)?),
    };

    let firehose = match raw.firehose {
        None => None,
        Some(fh) => Some(validate_firehose(fh, base, &log_format)?),
    };
    let s3 = match raw.s3 {
        None => None,
        Some(s3) => Some(validate_s3(s3, &log_format)?),
    };
    Ok(Config { log_format, detections, geoip, limits, cloudwatch, firehose, s3 })
}

/// The `detections` section, with the defaults `d` for what it leaves out.
fn validate_detections(rd: RawDetections, d: Detections) -> Result<Detections, ConfigError> {
    let top_k_size = rd.top_k.size.unwrap_or(defaults::TOP_K_SIZE);
    if top_k_size == 0 || top_k_size > 1000 {
        return Err(err("detections.top_k.size", format!("must be between 1 and 1000, got {top_k_size}")));
    }
    let min_ports = rd.port_scan.min_distinct_ports.unwrap_or(defaults::PORT_SCAN_MIN_DISTINCT_PORTS);
    // The tracker holds at most MAX_PORTS_PER_SOURCE ports a source: a higher
    // threshold could never be reached.
    let max_ports = MAX_PORTS_PER_SOURCE as u32;
    if min_ports == 0 || min_ports > max_ports {
        return Err(err(
            "detections.port_scan.min_distinct_ports",
            format!("must be between 1 and {max_ports} (the ports tracked per source), got {min_ports}"),
        ));
    }
    let shard_min_ports = rd.port_scan.shard_min_ports.unwrap_or(min_ports);
    if shard_min_ports == 0 || shard_min_ports > min_ports {
        return Err(err(
            "detections.port_scan.shard_min_ports",
            format!("must be between 1 and min_distinct_ports ({min_ports}), got {shard_min_ports}"),
        ));
    }
    Ok(Detections {
        allowed_source_cidrs: cidrs("detections.allowed_source_cidrs", &rd.allowed_source_cidrs)?,
        approved_destination_cidrs: cidrs("detections.approved_destination_cidrs", &rd.approved_destination_cidrs)?,
        forbidden_ports: dedup_ports(rd.forbidden_ports.unwrap_or(d.forbidden_ports)),
        watch_ports: dedup_ports(rd.watch_ports.unwrap_or(d.watch_ports)),
        top_k: TopKConfig {
            size: top_k_size,
            window: window("detections.top_k.window", rd.top_k.window.as_deref(), defaults::TOP_K_WINDOW)?,
        },
        port_scan: PortScanConfig {
            window: window("detections.port_scan.window", rd.port_scan.window.as_deref(), defaults::PORT_SCAN_WINDOW)?,
            min_distinct_ports: min_ports,
            shard_min_ports,
        },
    })
}

/// The `limits` section, checked against the detections it must hold.
fn validate_limits(raw: &RawLimits, detections: &Detections) -> Result<Limits, ConfigError> {
    let limits = Limits {
        max_interfaces: within(
            "limits.max_interfaces",
            raw.max_interfaces,
            defaults::MAX_INTERFACES,
            1,
            defaults::MAX_INTERFACES_MAX,
        )?,
        max_tracked_addresses: within(
            "limits.max_tracked_addresses",
            raw.max_tracked_addresses,
            defaults::MAX_TRACKED_ADDRESSES,
            64,
            defaults::MAX_TRACKED_ADDRESSES_MAX,
        )?,
        max_port_scan_sources: within(
            "limits.max_port_scan_sources",
            raw.max_port_scan_sources,
            defaults::MAX_PORT_SCAN_SOURCES,
            64,
            defaults::MAX_PORT_SCAN_SOURCES_MAX,
        )?,
    };
    if limits.max_tracked_addresses < detections.top_k.size * 4 {
        return Err(err(
            "limits.max_tracked_addresses",
            format!("must be at least 4 x detections.top_k.size ({})", detections.top_k.size * 4),
        ));
    }
    Ok(limits)
}

fn validate_cloudwatch(cw: RawCloudWatch, base: &Path, log_format: &Format) -> Result<CloudWatchConfig, ConfigError> {
    let poll_interval = duration_or("cloudwatch.poll_interval", cw.poll_interval.as_deref(), defaults::POLL_INTERVAL)?;
    if poll_interval < Duration::from_secs(1) {
        return Err(err("cloudwatch.poll_interval", "must be at least 1s"));
    }
    let lookback = duration_or("cloudwatch.lookback", cw.lookback.as_deref(), defaults::LOOKBACK)?;
    if lookback < Duration::from_secs(60) || lookback > Duration::from_secs(24 * 3600) {
        return Err(err("cloudwatch.lookback", "must be between 1m and 24h"));
    }
    let start_from = duration_or("cloudwatch.start_from", cw.start_from.as_deref(), lookback)?;
    if start_from > Duration::from_secs(14 * 24 * 3600) {
        return Err(err("cloudwatch.start_from", "must be at most 14d"));
    }
    let rps = cw.max_requests_per_second.unwrap_or(defaults::MAX_REQUESTS_PER_SECOND);
    if !(rps.is_finite() && rps > 0.0 && rps <= 100.0) {
        return Err(err("cloudwatch.max_requests_per_second", format!("must be above 0 and at most 100, got {rps}")));
    }
    let dedup_margin = duration_or("cloudwatch.dedup_margin", cw.dedup_margin.as_deref(), defaults::DEDUP_MARGIN)?;
    if dedup_margin < Duration::from_secs(1) || dedup_margin > Duration::from_secs(3600) {
        return Err(err("cloudwatch.dedup_margin", "must be between 1s and 1h"));
    }
    if let Some(url) = &cw.endpoint_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            let shown = crate::source::cloudwatch::client::redact_url(url);
            return Err(err("cloudwatch.endpoint_url", format!("must start with http:// or https://, got {shown:?}")));
        }
    }
    if let Some(r) = &cw.region {
        if r.trim().is_empty() {
            return Err(err("cloudwatch.region", "must not be empty"));
        }
    }
    if let Some(arn) = &cw.role_arn {
        if !arn.starts_with("arn:") {
            return Err(err("cloudwatch.role_arn", format!("must be an IAM role ARN (arn:aws:iam::...), got {arn:?}")));
        }
    }
    if cw.log_groups.is_empty() {
        return Err(err("cloudwatch.log_groups", "at least one log group is required"));
    }
    let mut groups = Vec::with_capacity(cw.log_groups.len());
    for (i, g) in cw.log_groups.into_iter().enumerate() {
        let key = format!("cloudwatch.log_groups[{i}]");
        let name = match g.name {
            Some(n) if !n.trim().is_empty() => n,
            _ => return Err(err(format!("{key}.name"), "missing: the log group's name")),
        };
        if groups.iter().any(|x: &LogGroupConfig| x.name == name) {
            return Err(err(format!("{key}.name"), format!("log group {name:?} is listed twice")));
        }
        let log_format = match g.log_format {
            Some(spec) => compile_format(&format!("{key}.log_format"), &spec)?,
            None => log_format.clone(),
        };
        groups.push(LogGroupConfig {
            name,
            log_format,
            log_stream_prefix: g.log_stream_prefix.filter(|p| !p.is_empty()),
        });
    }
    Ok(CloudWatchConfig {
        region: cw.region,
        endpoint_url: cw.endpoint_url,
        role_arn: cw.role_arn,
        poll_interval,
        lookback,
        start_from,
        state_file: cw.state_file.map(|p| resolve(base, &p)),
        max_requests_per_second: rps,
        dedup_margin,
        log_groups: groups,
    })
}

/// The `s3` section (docs/s3.md); `log_format` is the file's.
fn validate_s3(s3: RawS3, log_format: &Format) -> Result<S3Config, ConfigError> {
    let queue_url = match s3.queue_url {
        Some(u) if u.starts_with("https://") || u.starts_with("http://") => u,
        Some(u) => {
            let shown = crate::source::cloudwatch::client::redact_url(&u);
            return Err(err("s3.queue_url", format!("must be an SQS queue URL (https://sqs...), got {shown:?}")));
        }
        None => return Err(err("s3.queue_url", "missing: the URL of the SQS queue that S3 notifies")),
    };
    let (endpoint_url, region, role_arn) = aws_target("s3", s3.endpoint_url, s3.region, s3.role_arn)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let concurrency = within("s3.concurrency", s3.concurrency, cores, 1, defaults::S3_CONCURRENCY_MAX)?;
    let key = "s3.visibility_timeout";
    let visibility_timeout = duration_or(key, s3.visibility_timeout.as_deref(), defaults::S3_VISIBILITY_TIMEOUT)?;
    if visibility_timeout < defaults::S3_VISIBILITY_TIMEOUT_MIN
        || visibility_timeout > defaults::S3_VISIBILITY_TIMEOUT_MAX
    {
        return Err(err(key, "must be between 30s and 12h (the SQS maximum)"));
    }
    let shutdown_grace = duration_or("s3.shutdown_grace", s3.shutdown_grace.as_deref(), defaults::S3_SHUTDOWN_GRACE)?;
    if shutdown_grace > defaults::S3_SHUTDOWN_GRACE_MAX {
        return Err(err("s3.shutdown_grace", "must be at most 10m"));
    }
    let log_format = match s3.log_format {
        Some(spec) => compile_format("s3.log_format", &spec)?,
        None => log_format.clone(),
    };
    if let Some(t) = &s3.dedup_table {
        let ok = (3..=255).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
        if !ok {
            return Err(err(
                "s3.dedup_table",
                format!("must be a DynamoDB table name (3-255 of A-Z a-z 0-9 _ - .), got {t:?}"),
            ));
        }
    }
    let key_prefix = s3.key_prefix.filter(|p| !p.is_empty());
    if key_prefix.as_ref().is_some_and(|p| p.len() > 1024) {
        return Err(err("s3.key_prefix", "must be at most 1024 bytes (the S3 key limit)"));
    }
    Ok(S3Config {
        queue_url,
        region,
        endpoint_url,
        role_arn,
        concurrency,
        visibility_timeout,
        key_prefix,
        log_format,
        dedup_table: s3.dedup_table,
        shutdown_grace,
    })
}

/// An AWS section's endpoint URL, region and role, checked as cloudwatch's are.
type AwsTarget = (Option<String>, Option<String>, Option<String>);

fn aws_target(
    section: &str,
    endpoint: Option<String>,
    region: Option<String>,
    role: Option<String>,
) -> Result<AwsTarget, ConfigError> {
    if let Some(url) = &endpoint {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            let shown = crate::source::cloudwatch::client::redact_url(url);
            return Err(err(
                format!("{section}.endpoint_url"),
                format!("must start with http:// or https://, got {shown:?}"),
            ));
        }
    }
    if region.as_ref().is_some_and(|r| r.trim().is_empty()) {
        return Err(err(format!("{section}.region"), "must not be empty"));
    }
    if let Some(arn) = &role {
        if !arn.starts_with("arn:") {
            return Err(err(
                format!("{section}.role_arn"),
                format!("must be an IAM role ARN (arn:aws:iam::...), got {arn:?}"),
            ));
        }
    }
    Ok((endpoint, region, role))
}

fn validate_firehose(fh: RawFirehose, base: &Path, log_format: &Format) -> Result<FirehoseConfig, ConfigError> {
    let listen_address = match fh.listen_address {
        Some(a) if !a.trim().is_empty() => a,
        _ => return Err(err("firehose.listen_address", "missing: the listener for Firehose, e.g. \":10191\"")),
    };
    let access_keys = firehose_keys(fh.access_keys.unwrap_or_default(), fh.access_keys_file.as_deref(), base)?;
    match (fh.allow_unauthenticated.unwrap_or(false), access_keys.is_empty()) {
        (false, true) => {
            return Err(err(
                "firehose.access_keys",
                "missing: list the accepted access keys (or access_keys_file); \
                 to accept requests without a key, set allow_unauthenticated: true",
            ))
        }
        (true, false) => {
            return Err(err("firehose.allow_unauthenticated", "must not be true when access keys are configured"))
        }
        _ => {}
    }
    let log_format = match fh.log_format {
        Some(spec) => compile_format("firehose.log_format", &spec)?,
        None => log_format.clone(),
    };
    let key = "firehose.request_timeout";
    let request_timeout = duration_or(key, fh.request_timeout.as_deref(), defaults::FIREHOSE_REQUEST_TIMEOUT)?;
    if request_timeout < Duration::from_secs(1) || request_timeout > defaults::FIREHOSE_REQUEST_TIMEOUT_MAX {
        return Err(err(key, "must be between 1s and 170s (Firehose waits 3 minutes for a response)"));
    }
    let max_bytes_in_flight = fh.max_bytes_in_flight.unwrap_or(defaults::FIREHOSE_BYTES_IN_FLIGHT);
    let (lo, hi) = (defaults::FIREHOSE_BYTES_IN_FLIGHT_MIN, defaults::FIREHOSE_BYTES_IN_FLIGHT_MAX);
    if !(lo..=hi).contains(&max_bytes_in_flight) {
        return Err(err(
            "firehose.max_bytes_in_flight",
            format!("must be between {lo} and {hi}, got {max_bytes_in_flight}"),
        ));
    }
    let key = "firehose.dedup_window";
    let dedup_window = duration_or(key, fh.dedup_window.as_deref(), defaults::FIREHOSE_DEDUP_WINDOW)?;
    if dedup_window < Duration::from_secs(60) || dedup_window > defaults::FIREHOSE_DEDUP_WINDOW_MAX {
        return Err(err(key, "must be between 1m and 3h"));
    }
    let max = defaults::FIREHOSE_DEDUP_MAX_IDS_MAX;
    let dedup_max_ids = within("firehose.dedup_max_ids", fh.dedup_max_ids, defaults::FIREHOSE_DEDUP_MAX_IDS, 100, max)?;
    Ok(FirehoseConfig {
        listen_address,
        access_keys,
        log_format,
        request_timeout,
        max_bytes_in_flight,
        dedup_window,
        dedup_max_ids,
    })
}

/// `access_keys`, then the non-blank lines of `access_keys_file` (a trailing
/// `\r` dropped); each 1 to 4,096 bytes, no key twice.
fn firehose_keys(listed: Vec<String>, file: Option<&str>, base: &Path) -> Result<Vec<AccessKey>, ConfigError> {
    let check = |key: String, k: &str| -> Result<AccessKey, ConfigError> {
        let max = defaults::FIREHOSE_ACCESS_KEY_BYTES;
        if k.is_empty() || k.len() > max {
            return Err(err(key, format!("an access key must be 1 to {max} bytes, got {}", k.len())));
        }
        Ok(AccessKey(k.to_owned()))
    };
    let mut keys = Vec::new();
    for (i, k) in listed.iter().enumerate() {
        keys.push(check(format!("firehose.access_keys[{i}]"), k)?);
    }
    if let Some(f) = file {
        let key = "firehose.access_keys_file";
        let path = resolve(base, f);
        let bytes = read_limited(&path, defaults::FIREHOSE_KEYS_FILE_BYTES)
            .map_err(|e| err(key, format!("cannot read {}: {e}", path.display())))?;
        let text = String::from_utf8(bytes).map_err(|_| err(key, format!("{} is not UTF-8 text", path.display())))?;
        let before = keys.len();
        for (n, line) in text.lines().enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if !line.trim().is_empty() {
                let at_line = |e: ConfigError| err(key, format!("{} line {}: {}", path.display(), n + 1, e.message));
                keys.push(check(key.to_owned(), line).map_err(at_line)?);
            }
        }
        if keys.len() == before {
            return Err(err(key, format!("{} holds no access key", path.display())));
        }
    }
    for (i, k) in keys.iter().enumerate() {
        if keys[..i].contains(k) {
            return Err(err("firehose.access_keys", "an access key is listed twice"));
        }
    }
    Ok(keys)
}

/// The AWS fields that some metric reads: a format needs one of them.
pub const FIELDS_READ: &[&str] = &[
    "interface-id",
    "srcaddr",
    "dstaddr",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log-status",
    "tcp-flags",
    "pkt-dstaddr",
];

/// Compiles a `log_format` (config key or `--log-format`): AWS `${field}`
/// syntax, at least one field that a metric reads.
pub fn compile_format(key: &str, spec: &str) -> Result<Format, ConfigError> {
    let format = Format::parse(spec).map_err(|e| err(key, e.to_string()))?;
    if !spec.contains("${") {
        return Err(err(
            key,
            format!("expected fields in AWS syntax, e.g. \"${{version}} ${{srcaddr}} ${{dstaddr}} ${{action}}\", got {spec:?}"),
        ));
    }
    if !FIELDS_READ.iter().any(|f| format.has_field(f)) {
        return Err(err(key, format!("names none of the fields the metrics read ({})", FIELDS_READ.join(", "))));
    }
    Ok(format)
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let path = PathBuf::from(p);
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}

fn dedup_ports(mut ports: Vec<u16>) -> Vec<u16> {
    ports.sort_unstable();
    ports.dedup();
    ports
}

fn within(key: &str, v: Option<usize>, default: usize, min: usize, max: usize) -> Result<usize, ConfigError> {
    let v = v.unwrap_or(default);
    if v < min || v > max {
        return Err(err(key, format!("must be between {min} and {max}, got {v}")));
    }
    Ok(v)
}

fn cidrs(key: &str, list: &[String]) -> Result<Vec<IpNet>, ConfigError> {
    if list.len() > defaults::MAX_CIDRS {
        return Err(err(key, format!("at most {} entries, got {}", defaults::MAX_CIDRS, list.len())));
    }
    list.iter().enumerate().map(|(i, s)| parse_cidr(s).map_err(|e| err(format!("{key}[{i}]"), e.to_string()))).collect()
}

/// Why a CIDR was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{input:?} has host bits set; the network is {network}")]
    HostBits { input: String, network: IpNet },
    #[error("invalid CIDR {0:?} (expected e.g. 10.0.0.0/8 or 2001:db8::/32)")]
    Invalid(String),
}

/// A CIDR, or a bare address taken as a single-host network. A CIDR with host
/// bits set (`10.0.0.1/8`) is refused: it is as likely a typo of the prefix
/// length as of the address, and a security rule must not guess.
pub fn parse_cidr(s: &str) -> Result<IpNet, CidrError> {
    let t = s.trim();
    if let Ok(net) = t.parse::<IpNet>() {
        if net.trunc() != net {
            return Err(CidrError::HostBits { input: s.to_owned(), network: net.trunc() });
        }
        return Ok(net);
    }
    t.parse::<std::net::IpAddr>().map(IpNet::from).map_err(|_| CidrError::Invalid(s.to_owned()))
}

/// Reads a file that must be a regular file of at most `max` bytes (a FIFO or a
/// device would block or never end).
pub fn read_limited(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let not_regular = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file");
    // Checked before opening: opening a FIFO blocks until a writer comes.
    if !std::fs::metadata(path)?.is_file() {
        return Err(not_regular());
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        // Swapped for a FIFO after the check: the open must not block either.
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
    }
    if meta.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} bytes, larger than the limit of {max}", meta.len()),
        ));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than the limit of {max} bytes"),
        ));
    }
    Ok(buf)
}

fn window(key: &str, v: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    let d = duration_or(key, v, default)?;
    if d < Duration::from_secs(60) || d > Duration::from_secs(24 * 3600) {
        return Err(err(key, format!("must be between 1m and 24h, got {}", v.unwrap_or(""))));
    }
    Ok(d)
}

fn duration_or(key: &str, v: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => parse_duration(s).map_err(|e| err(key, e.to_string())),
    }
}

/// A duration that is not a Prometheus-style duration (or is too long).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?} (expected e.g. 30s, 10m, 1h30m)")]
pub struct DurationError(pub String);

/// Parses a Prometheus-style duration: one or more `<number><unit>` with units
/// `ms`, `s`, `m`, `h`, `d`, `w`, `y` (`90s`, `1h30m`).
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let bad = || DurationError(s.to_owned());
    let b = s.trim().as_bytes();
    if b.is_empty() {
        return Err(bad());
    }
    let mut i = 0;
    let mut total_ms: u128 = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start || i - start > 12 {
            return Err(bad());
        }
        let n: u128 = std::str::from_utf8(&b[start..i]).ok().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
        let unit_start = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let ms: u128 = match &b[unit_start..i] {
            b"ms" => 1,
            b"s" => 1000,
            b"m" => 60_000,
            b"h" => 3_600_000,
            b"d" => 86_400_000,
            b"w" => 7 * 86_400_000,
            b"y" => 365 * 86_400_000,
            _ => return Err(bad()),
        };
        total_ms += n * ms;
    }
    u64::try_from(total_ms).map(Duration::from_millis).map_err(|_| bad())
}

#[cfg(test)]
mod firehose_tests {
    use super::*;

    fn load(yaml: &str) -> Result<Config, String> {
        Config::from_yaml(yaml, Path::new("/etc/x")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_firehose_section_defaults_and_keys() {
        let c = load("firehose:\n  listen_address: \":10191\"\n  access_keys: [a, b]\n").unwrap();
        let fh = c.firehose.unwrap();
        assert_eq!(fh.access_keys, vec![AccessKey("a".into()), AccessKey("b".into())]);
        assert_eq!(format!("{:?}", fh.access_keys[0]), "AccessKey(<redacted>)");
        assert_eq!(fh.log_format, Format::default_v2());
        assert_eq!(fh.request_timeout, defaults::FIREHOSE_REQUEST_TIMEOUT);
        assert_eq!((fh.dedup_window, fh.dedup_max_ids), (Duration::from_secs(600), 100_000));
        assert_eq!(fh.max_bytes_in_flight, 512 << 20);
        let open = load("firehose:\n  listen_address: \":1\"\n  allow_unauthenticated: true\n").unwrap();
        assert!(open.firehose.unwrap().access_keys.is_empty());
        assert!(load("").unwrap().firehose.is_none());
    }

    #[test]
    fn keys_come_from_a_file_too() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keys"), "k1\r\n\n  \nk2\n").unwrap();
        let yaml = "firehose:\n  listen_address: \":1\"\n  access_keys: [k0]\n  access_keys_file: keys\n";
        let c = Config::from_yaml(yaml, dir.path()).unwrap();
        let keys: Vec<String> = c.firehose.unwrap().access_keys.into_iter().map(|k| k.0).collect();
        assert_eq!(keys, ["k0", "k1", "k2"]);
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let e = Config::from_yaml("firehose:\n  listen_address: \":1\"\n  access_keys_file: empty\n", dir.path());
        assert!(e.unwrap_err().to_string().starts_with("firehose.access_keys_file: "), "no key in it");
    }

    #[test]
    fn errors_name_the_key() {
        let base = "firehose:\n  listen_address: \":1\"\n";
        let cases = [
            ("firehose:\n  access_keys: [a]\n", "firehose.listen_address: missing: the listener for Firehose, e.g. \":10191\" (line 1)"),
            (base, "firehose.access_keys: missing: list the accepted access keys (or access_keys_file); to accept requests without a key, set allow_unauthenticated: true (line 1)"),
            ("firehose:\n  listen_address: \":1\"\n  access_keys: [a]\n  allow_unauthenticated: true\n", "firehose.allow_unauthenticated: must not be true when access keys are configured (line 4)"),
            ("firehose:\n  listen_address: \":1\"\n  access_keys: [a, a]\n", "firehose.access_keys: an access key is listed twice (line 3)"),
            ("firehose:\n  listen_address: \":1\"\n  access_keys: [\"\"]\n", "firehose.access_keys[0]: an access key must be 1 to 4096 bytes, got 0 (line 3)"),
            ("firehose:\n  listen_address: \":1\"\n  access_keys: [a]\n  request_timeout: 5m\n", "firehose.request_timeout: must be between 1s and 170s (Firehose waits 3 minutes for a response) (line 4)"),
            ("firehose:\n  listen_address: \":1\"\n  access_keys: [a]\n  dedup_window: 10s\n", "firehose.dedup_window: must be between 1m and 3h (line 4)"),
            ("firehose:\n  listen_address: \":1\"\n  access_keys: [a]\n  dedup_max_ids: 1\n", "firehose.dedup_max_ids: must be between 100 and 10000000, got 1 (line 4)"),
            ("firehose:\n  listen_address: \":1\"\n  access_keys: [a]\n  max_bytes_in_flight: 1\n", "firehose.max_bytes_in_flight: must be between 134217728 and 68719476736, got 1 (line 4)"),
        ];
        for (yaml, want) in cases {
            assert_eq!(load(yaml).unwrap_err(), want, "{yaml}");
        }
        let e =
            load("firehose:\n  listen_address: \":1\"\n  access_keys: [a]\n  log_format: \"${nope}\"\n").unwrap_err();
        assert!(e.starts_with("firehose.log_format: "), "{e}");
        let e = load("firehose:\n  listen_address: \":1\"\n  acces_keys: [a]\n").unwrap_err();
        assert!(e.starts_with("firehose: unknown field `acces_keys`"), "{e}");
        let long = "k".repeat(4097);
        let e = load(&format!("firehose:\n  listen_address: \":1\"\n  access_keys: [{long}]\n")).unwrap_err();
        assert!(e.starts_with("firehose.access_keys[0]: an access key must be 1 to 4096 bytes, got 4097"), "{e}");
    }
}

#[cfg(test)]
mod s3_tests {
    use super::*;

    fn load(yaml: &str) -> Result<Config, String> {
        Config::from_yaml(yaml, Path::new("/etc/x")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_s3_section_defaults() {
        let c = load("s3:\n  queue_url: https://sqs.us-east-1.amazonaws.com/1/q\n").unwrap();
        let s3 = c.s3.unwrap();
        assert_eq!(s3.visibility_timeout, Duration::from_secs(300));
        assert_eq!(s3.shutdown_grace, Duration::from_secs(20));
        assert_eq!(s3.concurrency, std::thread::available_parallelism().map_or(1, |n| n.get()));
        assert_eq!(s3.log_format, Format::default_v2());
        assert_eq!((s3.key_prefix, s3.dedup_table, s3.endpoint_url), (None, None, None));
        assert!(load("").unwrap().s3.is_none());
    }

    #[test]
    fn errors_name_the_key() {
        let q = "s3:\n  queue_url: https://q\n";
        let cases = [
            (
                "s3:\n  region: us-east-1\n".to_owned(),
                "s3.queue_url: missing: the URL of the SQS queue that S3 notifies (line 1)",
            ),
            (
                "s3:\n  queue_url: flow-logs\n".to_owned(),
                "s3.queue_url: must be an SQS queue URL (https://sqs...), got \"flow-logs\" (line 2)",
            ),
            (format!("{q}  concurrency: 0\n"), "s3.concurrency: must be between 1 and 256, got 0 (line 3)"),
            (format!("{q}  concurrency: 1000\n"), "s3.concurrency: must be between 1 and 256, got 1000 (line 3)"),
            (
                format!("{q}  visibility_timeout: 10s\n"),
                "s3.visibility_timeout: must be between 30s and 12h (the SQS maximum) (line 3)",
            ),
            (
                format!("{q}  visibility_timeout: 13h\n"),
                "s3.visibility_timeout: must be between 30s and 12h (the SQS maximum) (line 3)",
            ),
            (format!("{q}  shutdown_grace: 11m\n"), "s3.shutdown_grace: must be at most 10m (line 3)"),
            (
                format!("{q}  dedup_table: \"a b\"\n"),
                "s3.dedup_table: must be a DynamoDB table name (3-255 of A-Z a-z 0-9 _ - .), got \"a b\" (line 3)",
            ),
            (
                format!("{q}  endpoint_url: \"ftp://u:secret@h\"\n"),
                "s3.endpoint_url: must start with http:// or https://, got \"ftp://h\" (line 3)",
            ),
            (
                format!("{q}  role_arn: x\n"),
                "s3.role_arn: must be an IAM role ARN (arn:aws:iam::...), got \"x\" (line 3)",
            ),
            (format!("{q}  region: \"\"\n"), "s3.region: must not be empty (line 3)"),
            (format!("{q}  queue: x\n"), ""),
        ];
        for (yaml, want) in cases {
            let e = load(&yaml).unwrap_err();
            if want.is_empty() {
                assert!(e.contains("queue") && e.contains("queue_url"), "{e}");
            } else {
                assert_eq!(e, want, "{yaml}");
            }
            assert!(!e.contains("secret"));
        }
    }
}
