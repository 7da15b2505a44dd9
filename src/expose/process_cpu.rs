//! The standard `process_*` metrics with a `process_cpu_seconds_total` that
//! counts fractions of a second: the prometheus crate's process collector
//! counts whole seconds only, so an exporter using less than a second of CPU
//! showed 0 for its whole life. This collector wraps that one, leaves out its
//! CPU family and adds its own, read from `/proc/self/stat` (user plus system
//! clock ticks, divided by the ticks per second) — one metric name, one
//! registration.

use prometheus::core::{Collector, Desc};
use prometheus::process_collector::ProcessCollector;
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Opts};

const CPU: &str = "process_cpu_seconds_total";

/// The process metrics of this process.
#[derive(Debug)]
pub struct ProcessMetrics {
    inner: ProcessCollector,
    descs: Vec<Desc>,
    cpu: Counter,
}

impl ProcessMetrics {
    pub fn for_self() -> Result<ProcessMetrics, prometheus::Error> {
        let inner = ProcessCollector::for_self();
        let cpu = Counter::with_opts(Opts::new(CPU, "Total user and system CPU time spent in seconds."))?;
        let mut descs: Vec<Desc> = inner.desc().into_iter().filter(|d| d.fq_name != CPU).cloned().collect();
        descs.extend(cpu.desc().into_iter().cloned());
        Ok(ProcessMetrics { inner, descs, cpu })
    }
}

/// CPU seconds (user + system) from the text of `/proc/self/stat`: fields 14
/// and 15, counted after the command name's closing parenthesis (the name may
/// hold spaces and parentheses).
pub fn cpu_seconds(stat: &str, ticks_per_second: u64) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After ")": field 3 (state) is the first; utime is field 14.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    if ticks_per_second == 0 {
        return None;
    }
    Some((utime + stime) as f64 / ticks_per_second as f64)
}

impl Collector for ProcessMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut out: Vec<MetricFamily> = self.inner.collect().into_iter().filter(|m| m.name() != CPU).collect();
        let now = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| cpu_seconds(&s, rustix::param::clock_ticks_per_second()));
        if let Some(now) = now {
            let past = self.cpu.get();
            if now > past {
                self.cpu.inc_by(now - past);
            }
        }
        out.extend(self.cpu.collect());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_keeps_its_fractions() {
        let stat = "1234 (a (b) c) S 1 1 1 0 -1 4194304 100 0 0 0 7 5 0 0 20 0 3 0 100 1000 10";
        assert_eq!(cpu_seconds(stat, 100), Some(0.12));
    }

    #[test]
    fn one_family_with_the_standard_name() {
        let m = ProcessMetrics::for_self().unwrap();
        let families = m.collect();
        let cpu: Vec<_> = families.iter().filter(|f| f.name() == CPU).collect();
        assert_eq!(cpu.len(), 1);
        let r = prometheus::Registry::new();
        r.register(Box::new(m)).unwrap();
        // Burn a little CPU: the counter shows it below a second.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let text = crate::expose::encode(&r);
        let line = text.lines().find(|l| l.starts_with("process_cpu_seconds_total ")).unwrap();
        let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(v > 0.0, "{line}");
    }
}
