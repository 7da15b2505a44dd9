//! The demo source: a generator of realistic VPC traffic that needs no AWS
//! account. About three dozen interfaces by default (`--demo.interfaces`; a NAT gateway, a load balancer, a
//! bastion and application instances) exchange east-west traffic, NAT egress,
//! DNS and ICMP, while internet noise is rejected at the edge. Within its first
//! minute, and then every minute, it plays every scenario the shipped alerts
//! look for. Lines are rendered as text in a version-5 custom format and go
//! through the pipeline's stream input, so the same parser and aggregator as
//! real flow logs. Flow times are the wall clock.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Detections};
use crate::parse::Format;
use crate::pipeline::Pipeline;

/// The log format the demo writes (fields of versions 2 to 5).
pub const DEMO_FORMAT: &str = "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status} ${vpc-id} ${subnet-id} ${instance-id} ${tcp-flags} ${type} ${pkt-srcaddr} ${pkt-dstaddr}";

/// The detection settings the demo uses unless a configuration file is given.
pub const DEMO_CONFIG: &str = r#"
detections:
  allowed_source_cidrs: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
  approved_destination_cidrs: ["10.0.0.0/8", "52.94.0.0/16", "140.82.112.0/20"]
"#;

/// Seconds after start when the first round of scenarios plays.
pub const FIRST_SCENARIOS_AFTER: Duration = Duration::from_secs(10);
/// Time between rounds of scenarios.
pub const SCENARIO_PERIOD: Duration = Duration::from_secs(60);

/// Prefixes the scenarios use (illegal source, reject storm, port scan), kept
/// out of the background noise.
const ATTACK_PREFIXES: &[&str] = &["203.0.113.0/24", "198.51.100.0/24", "45.155.205.0/24"];
const ACCOUNT: &str = "123456789012";
const VPC: &str = "vpc-0a1b2c3d4e5f60718";
/// Interfaces of the demo VPC unless `--demo.interfaces` says otherwise.
pub const DEFAULT_INTERFACES: usize = 36;
/// Bounds of `--demo.interfaces`: the fixed roles need the first few; the
/// addresses `10.0.x.y` run out beyond the upper bound.
pub const INTERFACES_RANGE: std::ops::RangeInclusive<usize> = 8..=50_000;
/// Bounds of `--demo.rate` (base records per second).
pub const RATE_RANGE: std::ops::RangeInclusive<u32> = 1..=1_000_000;
const NAT: usize = 0;
const ALB: usize = 1;
const BASTION: usize = 2;
const SHORT_CONN_IFACE: usize = 5;

/// Public sources by (made-up) country for internet noise: documentation and
/// example ranges whose "countries" come from the demo's own table.
pub use crate::detect::geo::DEMO_PREFIXES;

/// The configuration of the demo: `DEMO_CONFIG` with the defaults.
pub fn demo_config() -> Config {
    // DEMO_CONFIG is a constant that a unit test parses.
    Config::from_yaml(DEMO_CONFIG, std::path::Path::new(".")).unwrap_or_default()
}

/// Detection settings, for the landing page and logs.
pub fn describe(d: &Detections) -> String {
    format!("allowed sources {:?}, approved destinations {:?}", d.allowed_source_cidrs, d.approved_destination_cidrs)
}

/// The demo generator.
#[derive(Debug)]
pub struct Generator {
    rng: SmallRng,
    out: String,
    public: Vec<(u32, u32)>,
    cycle: u64,
    /// Interfaces of the VPC; the first few have fixed roles (NAT, ALB, ...).
    interfaces: usize,
}

fn iface_id(i: usize) -> String {
    format!("eni-0{:016x}", 0x5eed_0000_0000_0000u64 + i as u64 * 0x1_0001)
}

fn iface_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, (i / 200) as u8 + 1, (i % 200) as u8 + 10)
}

fn subnet(i: usize) -> &'static str {
    if i < 3 {
        "subnet-0public000000001"
    } else {
        "subnet-0private00000002"
    }
}

fn instance(i: usize) -> String {
    if i == NAT || i == ALB {
        "-".to_owned()
    } else {
        format!("i-0{:016x}", 0xabc0_0000_0000_0000u64 + i as u64)
    }
}

/// One flow to render.
struct Flow {
    iface: usize,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    proto: u8,
    packets: u64,
    bytes: u64,
    accept: bool,
    flags: u16,
    pkt_dst: Option<Ipv4Addr>,
    /// The original source behind a NAT gateway (else srcaddr).
    pkt_src: Option<Ipv4Addr>,
}

impl Generator {
    pub fn new(seed: u64) -> Generator {
        Generator::with_interfaces(seed, DEFAULT_INTERFACES)
    }

    /// A generator over `interfaces` interfaces (clamped to [`INTERFACES_RANGE`]).
    pub fn with_interfaces(seed: u64, interfaces: usize) -> Generator {
        let interfaces = interfaces.clamp(*INTERFACES_RANGE.start(), *INTERFACES_RANGE.end());
        let public = DEMO_PREFIXES
            .iter()
            .filter_map(|(cidr, _)| cidr.parse::<ipnet::Ipv4Net>().ok())
            .filter(|n| !ATTACK_PREFIXES.contains(&n.to_string().as_str()))
            .map(|n| (u32::from(n.network()), u32::from(n.hostmask())))
            .collect();
        Generator {
            rng: SmallRng::seed_from_u64(seed),
            out: String::with_capacity(64 * 1024),
            public,
            cycle: 0,
            interfaces,
        }
    }

    fn now() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    }

    fn push(&mut self, f: &Flow, end: u64) {
        let start = end.saturating_sub(self.rng.random_range(1..60));
        let pkt_dst = f.pkt_dst.unwrap_or(f.dst);
        let pkt_src = f.pkt_src.unwrap_or(f.src);
        let _ = writeln!(
            self.out,
            "5 {ACCOUNT} {iface} {src} {dst} {sport} {dport} {proto} {packets} {bytes} {start} {end} {action} OK {VPC} {subnet} {instance} {flags} IPv4 {pkt_src} {pkt_dst}",
            iface = iface_id(f.iface),
            src = f.src,
            dst = f.dst,
            sport = f.sport,
            dport = f.dport,
            proto = f.proto,
            packets = f.packets,
            bytes = f.bytes,
            action = if f.accept { "ACCEPT" } else { "REJECT" },
            subnet = subnet(f.iface),
            instance = instance(f.iface),
            flags = f.flags,
        );
    }

    fn public_addr(&mut self) -> Ipv4Addr {
        if self.public.is_empty() {
            return Ipv4Addr::new(8, 8, 8, 8);
        }
        let (net, mask) = self.public[self.rng.random_range(0..self.public.len())];
        Ipv4Addr::from(net | (self.rng.random::<u32>() & mask))
    }

    fn internal(&mut self) -> usize {
        self.rng.random_range(3..self.interfaces)
    }

    /// One base-traffic flow.
    fn base_flow(&mut self, end: u64) {
        let roll: u32 = self.rng.random_range(0..100);
        let sport = self.rng.random_range(32768..61000);
        let f = match roll {
            0..=64 => self.east_west(sport),
            65..=79 => self.nat_egress(sport),
            80..=91 => self.dns(sport),
            92..=96 => self.icmp(),
            _ => self.internet_noise(sport),
        };
        self.push(&f, end);
    }

    /// East-west application traffic.
    fn east_west(&mut self, sport: u16) -> Flow {
        let (n, r) = (self.interfaces, &mut self.rng);
        let (a, b) = (r.random_range(3..n), r.random_range(3..n));
        let dport = [443, 443, 5432, 6379, 3306, 80, 8080, 22][r.random_range(0..8)];
        let packets = r.random_range(2..400);
        Flow {
            iface: a,
            src: iface_ip(a),
            dst: iface_ip(b),
            sport,
            dport,
            proto: 6,
            packets,
            bytes: packets * r.random_range(60..1400),
            accept: true,
            flags: [18, 16, 24, 2][r.random_range(0..4)],
            pkt_dst: None,
            pkt_src: None,
        }
    }

    /// NAT gateway egress to approved services.
    fn nat_egress(&mut self, sport: u16) -> Flow {
        let (n, r) = (self.interfaces, &mut self.rng);
        let src_if = r.random_range(3..n);
        let dst = if r.random_bool(0.5) {
            Ipv4Addr::new(52, 94, r.random_range(0..=255), r.random_range(1..255))
        } else {
            Ipv4Addr::new(140, 82, 112 + r.random_range(0..16), r.random_range(1..255))
        };
        let packets = r.random_range(5..2000);
        Flow {
            iface: NAT,
            src: iface_ip(NAT),
            dst,
            sport,
            dport: 443,
            proto: 6,
            packets,
            bytes: packets * r.random_range(200..1500),
            accept: true,
            flags: 18,
            pkt_dst: Some(dst),
            pkt_src: Some(iface_ip(src_if)),
        }
    }

    /// DNS to the VPC resolver.
    fn dns(&mut self, sport: u16) -> Flow {
        let (n, r) = (self.interfaces, &mut self.rng);
        Flow {
            iface: r.random_range(3..n),
            src: Ipv4Addr::new(10, 0, 1, r.random_range(13..46)),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            sport,
            dport: 53,
            proto: 17,
            packets: 1,
            bytes: r.random_range(60..200),
            accept: true,
            flags: 0,
            pkt_dst: None,
            pkt_src: None,
        }
    }

    /// ICMP health checks from the bastion.
    fn icmp(&mut self) -> Flow {
        let a = self.rng.random_range(3..self.interfaces);
        Flow {
            iface: a,
            src: Ipv4Addr::new(10, 0, 1, 10 + BASTION as u8),
            dst: iface_ip(a),
            sport: 0,
            dport: 0,
            proto: 1,
            packets: 4,
            bytes: 336,
            accept: true,
            flags: 0,
            pkt_dst: None,
            pkt_src: None,
        }
    }

    /// Internet noise, rejected at the edge.
    fn internet_noise(&mut self, sport: u16) -> Flow {
        let r = &mut self.rng;
        let iface = if r.random_bool(0.5) { ALB } else { BASTION };
        let dport = [22, 23, 445, 3389, 1433, 8080, 443, 5900][r.random_range(0..8)];
        let src = self.public_addr();
        Flow {
            iface,
            src,
            dst: iface_ip(iface),
            sport,
            dport,
            proto: 6,
            packets: 1,
            bytes: 44,
            accept: false,
            flags: 2,
            pkt_dst: None,
            pkt_src: None,
        }
    }

    /// A TCP flow to an interface's own address, for the scenarios.
    fn tcp_to(iface: usize, src: Ipv4Addr, sport: u16, dport: u16, packets: u64, bytes: u64) -> Flow {
        Flow {
            iface,
            src,
            dst: iface_ip(iface),
            sport,
            dport,
            proto: 6,
            packets,
            bytes,
            accept: true,
            flags: 18,
            pkt_dst: None,
            pkt_src: None,
        }
    }

    /// Every alert scenario, once.
    fn scenarios(&mut self, end: u64) {
        self.cycle += 1;
        // Illegal traffic: accepted from outside the allowed ranges.
        for i in 0..3u8 {
            let f = Self::tcp_to(ALB, Ipv4Addr::new(203, 0, 113, 7 + i), 51000 + i as u16, 22, 12, 2400);
            self.push(&f, end);
        }
        self.reject_storm(end);
        self.short_connections(end);
        self.nat_breach(end);
        // Telnet from inside.
        let t = self.internal();
        for (i, accept) in [false, false, true].into_iter().enumerate() {
            let src = iface_ip(self.internal());
            let f = Flow { accept, ..Self::tcp_to(t, src, 41000 + i as u16, 23, 6, 360) };
            self.push(&f, end);
        }
        self.port_scan(end);
        self.status_lines(end);
    }

    /// Reject storm on one internal interface (rotating).
    fn reject_storm(&mut self, end: u64) {
        let storm = 3 + self.cycle as usize % (self.interfaces - 3);
        for i in 0..30u16 {
            let src = Ipv4Addr::new(198, 51, 100, 10 + (i % 5) as u8);
            let dport = [3389, 445][i as usize % 2];
            let f = Flow { accept: false, flags: 2, ..Self::tcp_to(storm, src, 40000 + i, dport, 1, 44) };
            self.push(&f, end);
        }
    }

    /// SYN+FIN burst: short connections.
    fn short_connections(&mut self, end: u64) {
        for i in 0..150u16 {
            let src = iface_ip(self.internal());
            let flags = if i % 2 == 0 { 3 } else { 19 };
            let f = Flow { flags, ..Self::tcp_to(SHORT_CONN_IFACE, src, 30000 + i, 8080, 3, 180) };
            self.push(&f, end);
        }
    }

    /// NAT breach: egress to an unapproved destination.
    fn nat_breach(&mut self, end: u64) {
        for i in 0..3u8 {
            let dst = Ipv4Addr::new(185, 220, 101, 20 + i);
            let src = iface_ip(self.internal());
            let f = Flow {
                dst,
                pkt_dst: Some(dst),
                pkt_src: Some(src),
                ..Self::tcp_to(NAT, iface_ip(NAT), 45000 + i as u16, 9001, 40, 52_000)
            };
            self.push(&f, end);
        }
    }

    /// Port scan: one source, 40 distinct ports.
    fn port_scan(&mut self, end: u64) {
        let scanner = Ipv4Addr::new(45, 155, 205, 233);
        let base: u16 = self.rng.random_range(1..60000);
        for i in 0..40u16 {
            let f = Flow { accept: false, flags: 2, ..Self::tcp_to(ALB, scanner, 61000, base + i * 7, 1, 40) };
            self.push(&f, end);
        }
    }

    /// NODATA and SKIPDATA, and one malformed line so that the parse-error
    /// metric has data.
    fn status_lines(&mut self, end: u64) {
        let start = end.saturating_sub(60);
        let (a, b) = (iface_id(self.internal()), iface_id(self.internal()));
        let _ = writeln!(self.out, "5 {ACCOUNT} {a} - - - - - - - {start} {end} - NODATA {VPC} - - - - - -");
        let _ = writeln!(self.out, "5 {ACCOUNT} {b} - - - - - - - {start} {end} - SKIPDATA {VPC} - - - - - -");
        let _ = writeln!(
            self.out,
            "5 {ACCOUNT} {a} 10.0.1.300 10.0.1.12 443 49152 6 10 840 {start} {end} ACCEPT OK {VPC} - - 18 IPv4 - -"
        );
    }

    /// Renders `base` base-traffic lines, plus a round of scenarios when `scenarios`;
    /// returns the buffer of lines.
    pub fn batch(&mut self, base: usize, scenarios: bool, end: u64) -> &str {
        self.out.clear();
        for _ in 0..base {
            self.base_flow(end);
        }
        if scenarios {
            self.scenarios(end);
        }
        &self.out
    }
}

/// Runs the generator until `shutdown`, into a stream input of `pipeline`
/// named `demo`: `rate` base records per second in ten batches a second, and
/// the scenarios after [`FIRST_SCENARIOS_AFTER`] and every [`SCENARIO_PERIOD`].
pub async fn run_pipeline(pipeline: &Pipeline, rate: u32, interfaces: usize, shutdown: CancellationToken) {
    let format = match Format::parse(DEMO_FORMAT) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "The demo format does not parse");
            return;
        }
    };
    let mut input = pipeline.stream("demo", format);
    let mut generator = Generator::with_interfaces(Generator::now(), interfaces);
    let started = tokio::time::Instant::now();
    let mut next_round = started + FIRST_SCENARIOS_AFTER;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut carry = 0u32;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        carry += rate;
        let base = (carry / 10) as usize;
        carry %= 10;
        let now = tokio::time::Instant::now();
        let play = now >= next_round;
        if play {
            next_round += SCENARIO_PERIOD;
            tracing::info!("Demo: playing every alert scenario");
        }
        input.lines(generator.batch(base, play, Generator::now()).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Aggregator;
    use crate::parse::LineParser;

    #[test]
    fn demo_config_and_format_are_valid() {
        assert!(Config::from_yaml(DEMO_CONFIG, std::path::Path::new(".")).is_ok());
        assert!(!demo_config().detections.allowed_source_cidrs.is_empty());
        assert!(Format::parse(DEMO_FORMAT).is_ok());
    }

    /// The exposition of the demo's lines through a fresh pipeline.
    fn exposition(lines: &str) -> String {
        let mut agg = Aggregator::new(&demo_config());
        let mut parser = LineParser::for_stream(Format::parse(DEMO_FORMAT).unwrap());
        agg.ingest_lines(&mut parser, lines.as_bytes());
        crate::expose::encode(&crate::expose::registry(&agg.into_shared()))
    }

    /// One round of scenarios feeds every detection, and only the one
    /// malformed line is invalid.
    #[test]
    fn scenarios_trigger_every_detection() {
        let mut g = Generator::new(7);
        let expo = exposition(g.batch(2000, true, 1_700_000_000));
        for family in [
            "vpc_flow_illegal_source_accepts_total{",
            "vpc_flow_short_connections_total{",
            "vpc_flow_unapproved_destination_records_total{",
            "vpc_flow_forbidden_port_records_total{",
            "log_status=\"NODATA\"",
            "log_status=\"SKIPDATA\"",
            "vpc_flow_top_port_scanners{srcaddr=\"45.155.205.233\"} 40",
            "vpc_flow_top_rejected_sources{",
            "vpc_flow_exporter_parse_errors_total{reason=\"bad_address\"} 1",
        ] {
            assert!(expo.contains(family), "missing {family}");
        }
        // Background traffic alone must not look like an attack.
        let expo = exposition(g.batch(5000, false, 1_700_000_100));
        for absent in [
            "vpc_flow_illegal_source_accepts_total{",
            "vpc_flow_short_connections_total{",
            "vpc_flow_unapproved_destination_records_total{",
        ] {
            assert!(!expo.contains(absent), "base traffic produced {absent}");
        }
        assert!(expo.contains("vpc_flow_exporter_parse_errors_total{reason=\"bad_address\"} 0"));
    }

    /// The demo loop feeds the pipeline: within its first scenario round
    /// every detection has data, named `demo`.
    #[tokio::test(start_paused = true)]
    async fn run_feeds_the_pipeline_and_plays_the_scenarios() {
        let p = Pipeline::new(&demo_config()).unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let (p, shutdown) = (p.clone(), shutdown.clone());
            async move { run_pipeline(&p, 1000, 12, shutdown).await }
        });
        tokio::time::sleep(FIRST_SCENARIOS_AFTER + Duration::from_millis(500)).await;
        shutdown.cancel();
        task.await.unwrap();
        let expo = p.exposition();
        assert!(expo.contains("vpc_flow_top_port_scanners{srcaddr=\"45.155.205.233\"} 40"), "{expo}");
        assert!(expo.contains("vpc_flow_exporter_parse_errors_total{reason=\"bad_address\"} 1"));
        let lines: f64 =
            expo.lines().find_map(|l| l.strip_prefix("vpc_flow_exporter_lines_total ")?.parse().ok()).unwrap();
        assert!(lines > 10_000.0, "{lines}");
    }
}
