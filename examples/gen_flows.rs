//! Writes synthetic flow-log lines in the default (version 2) format, for the
//! benchmark script: `cargo run --release --example gen_flows -- N [DISTINCT_SOURCES] [REJECT_PERCENT] [SEED]`.
//! Sources cycle through DISTINCT_SOURCES addresses; REJECT records get a random
//! destination port (the worst case for top-K and port-scan tracking).

use std::io::{BufWriter, Write};

fn main() -> std::io::Result<()> {
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.parse().unwrap_or(0)).collect();
    let n = args.first().copied().unwrap_or(1_000_000);
    let distinct = args.get(1).copied().filter(|&d| d > 0).unwrap_or(50_000);
    let reject_pct = args.get(2).copied().unwrap_or(20).min(100);
    let mut state = args.get(3).copied().unwrap_or(42) | 1;
    let mut rand = move || {
        // xorshift64*: fast, reproducible, good enough for test data.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let out = std::io::stdout();
    let mut w = BufWriter::with_capacity(1 << 20, out.lock());
    let base: u64 = 1_700_000_000;
    for i in 0..n {
        let r = rand();
        let src = (i % distinct) as u32;
        let src = [(src >> 16) as u8 | 0x40, (src >> 8) as u8, src as u8];
        let iface = r % 200;
        let dst = (r >> 8) % 250 + 1;
        let reject = (r >> 16) % 100 < reject_pct;
        let dport = if reject { (r >> 24) % 65535 + 1 } else { [443, 80, 22, 5432, 53][((r >> 24) % 5) as usize] };
        let proto = if dport == 53 { 17 } else { 6 };
        let packets = (r >> 32) % 100 + 1;
        let bytes = packets * ((r >> 40) % 1400 + 40);
        let start = base + i / 10_000;
        writeln!(
            w,
            "2 123456789010 eni-{iface:017x} {}.{}.{}.9 10.0.{}.{} {} {dport} {proto} {packets} {bytes} {start} {} {} OK",
            src[0],
            src[1],
            src[2],
            dst % 4,
            dst,
            (r >> 48) % 30000 + 32768,
            start + 60,
            if reject { "REJECT" } else { "ACCEPT" },
        )?;
    }
    w.flush()
}
