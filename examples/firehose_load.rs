//! A load generator for the Firehose receiver (docs/firehose.md, "Throughput"):
//! `cargo run --release --example firehose_load -- ADDR [SECONDS] [CONNECTIONS] [RATE]`
//! sends gzip requests of 500 default-format records (direct delivery, one
//! line per record) over keep-alive connections, each with a new request id,
//! and prints requests and records per second and the latency percentiles.
//! `RATE` (requests per second over all connections) paces the sending; 0 or
//! absent sends as fast as the receiver answers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine;
use flate2::write::GzEncoder;

const RECORDS: usize = 500;

fn body() -> Vec<u8> {
    let records: Vec<String> = (0..RECORDS)
        .map(|i| {
            let line = format!(
                "2 123456789012 eni-{:08x} 10.0.{}.{} 172.31.{}.{} {} {} 6 {} {} 1700000000 1700000060 {} OK",
                i % 97,
                i % 200,
                i % 250,
                i % 7,
                i % 250,
                1024 + i,
                [22, 80, 443, 3389][i % 4],
                1 + i % 20,
                40 + i * 3,
                if i % 3 == 0 { "REJECT" } else { "ACCEPT" }
            );
            format!("{{\"data\":\"{}\"}}", base64::engine::general_purpose::STANDARD.encode(line))
        })
        .collect();
    let doc = format!("{{\"timestamp\":1578090901599,\"records\":[{}]}}", records.join(","));
    let mut z = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(doc.as_bytes()).expect("gzip");
    z.finish().expect("gzip")
}

/// Sends requests on one connection until `until`; the latency of each.
fn run(addr: &str, body: &[u8], conn: usize, until: Instant, interval: Option<Duration>) -> Vec<Duration> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut latencies = Vec::new();
    let mut next = Instant::now();
    let mut n = 0u64;
    while Instant::now() < until {
        if let Some(i) = interval {
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
            next += i;
        }
        n += 1;
        let head = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Firehose-Request-Id: load-{conn}-{n}\r\n\
             X-Amz-Firehose-Access-Key: load-test-key\r\nContent-Type: application/json\r\n\
             Content-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let start = Instant::now();
        stream.write_all(head.as_bytes()).expect("write");
        stream.write_all(body).expect("write");
        let mut status = String::new();
        reader.read_line(&mut status).expect("read");
        assert!(status.contains(" 200 "), "{status}");
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read");
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().expect("length");
            }
        }
        let mut rest = vec![0u8; length];
        reader.read_exact(&mut rest).expect("body");
        latencies.push(start.elapsed());
    }
    latencies
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr = args.get(1).cloned().unwrap_or_else(|| "127.0.0.1:10191".into());
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let conns: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(4);
    let rate: f64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    let body = body();
    let interval = (rate > 0.0).then(|| Duration::from_secs_f64(conns as f64 / rate));
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let threads: Vec<_> = (0..conns)
        .map(|c| {
            let (addr, body) = (addr.clone(), body.clone());
            std::thread::spawn(move || run(&addr, &body, c, until, interval))
        })
        .collect();
    let mut all: Vec<Duration> = threads.into_iter().flat_map(|t| t.join().expect("thread")).collect();
    let took = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "{} requests in {took:.1}s: {:.0} requests/s, {:.0} records/s; body {} bytes gzip; latency p50 {:?} p99 {:?} max {:?}",
        all.len(),
        all.len() as f64 / took,
        (all.len() * RECORDS) as f64 / took,
        body.len(),
        pct(0.5),
        pct(0.99),
        all[all.len() - 1]
    );
}
