//! The ingest interface: every source (replay files, demo, CloudWatch, S3,
//! Firehose) hands its lines or records to a [`Pipeline`] through an input,
//! and never sees the line parser or the aggregator.
//!
//! - [`StreamInput`] (CloudWatch events, Firehose records, demo ticks): each
//!   line is one record in the stream's configured format; a header-looking
//!   line is invalid. A batch takes the shared lock once.
//! - [`FileInput`] (a replayed file, an S3 object): a header line sets the
//!   format for the rest of the input; lines count into a private shard,
//!   without the lock, and [`FileInput::commit`] adds the shard to the live
//!   aggregates in one step under the lock: all or nothing (dropping the input
//!   discards it).
//!
//! The pipeline also owns what is built from a configuration ([`Prepared`]:
//! the rules, with the GeoIP database opened) and the reload that swaps rules
//! and limits in place while keeping the counters whose series still exist.

mod input;

use std::path::PathBuf;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use prometheus::Registry;

use crate::aggregate::{Aggregator, SharedAggregator};
use crate::config::Config;
use crate::detect::geo::{CountryLookup, GeoIpError};
use crate::detect::Rules;
use crate::parse::{Format, LineParser};
pub use input::{FileInput, StreamBatch, StreamInput};

/// Why a configuration cannot be made into a pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// `geoip.database` names a file that cannot be read or is not a MaxMind DB.
    #[error("geoip.database: cannot open {}: {reason}", path.display())]
    GeoIp { path: PathBuf, reason: String },
}

impl From<GeoIpError> for PipelineError {
    fn from(e: GeoIpError) -> PipelineError {
        match e {
            GeoIpError::Open { path, reason } => PipelineError::GeoIp { path, reason },
        }
    }
}

/// What a configuration makes of the pipeline before anything is counted:
/// its rules (the GeoIP database read) and empty aggregates. Building one
/// reads files, so a reload builds it off the async runtime and then hands it
/// to [`Pipeline::replace`], which is quick.
#[derive(Debug)]
pub struct Prepared {
    agg: Aggregator,
    /// A country table that replaces the configuration's (the demo's).
    countries: Option<Arc<dyn CountryLookup>>,
}

impl Prepared {
    /// The rules and empty aggregates of `config`.
    pub fn new(config: &Config) -> Result<Prepared, PipelineError> {
        let rules = Rules::load(config)?;
        Ok(Prepared { agg: Aggregator::with_rules(Arc::new(rules), config), countries: None })
    }

    /// Takes source countries from `countries` (the demo's table) instead of
    /// the configuration, now and at every reload.
    pub fn with_countries(mut self, countries: Arc<dyn CountryLookup>) -> Prepared {
        self.agg = self.agg.with_country_lookup(countries.clone());
        self.countries = Some(countries);
        self
    }
}

/// The live aggregates, the inputs that count into them and the registry
/// that exposes them. Cheap to clone: clones share the aggregates.
#[derive(Debug, Clone)]
pub struct Pipeline {
    live: SharedAggregator,
    countries: Option<Arc<dyn CountryLookup>>,
}

impl Pipeline {
    /// A pipeline for `config` (the GeoIP database opened when it names one).
    pub fn new(config: &Config) -> Result<Pipeline, PipelineError> {
        Ok(Pipeline::start(Prepared::new(config)?))
    }

    /// Starts counting with prepared aggregates.
    pub fn start(prepared: Prepared) -> Pipeline {
        Pipeline { live: prepared.agg.into_shared(), countries: prepared.countries }
    }

    /// An input for a stream of one record per line in `format`; `name`
    /// (a log group, a delivery stream, `demo`) names it in diagnostics.
    pub fn stream(&self, name: &str, format: Format) -> StreamInput {
        StreamInput::new(self.live.clone(), LineParser::for_stream(format), name)
    }

    /// An input for one file or object whose lines are in `format` until a
    /// header line says otherwise; counted when committed.
    pub fn file(&self, name: &str, format: Format) -> FileInput {
        let scratch = self.lock().shard();
        FileInput::new(self.live.clone(), scratch, LineParser::for_file(format), name)
    }

    /// An all-or-nothing batch of stream lines in several formats (a
    /// Firehose request's log groups); `formats` must not be empty (the
    /// default format stands in for an empty list).
    pub fn stream_batch(&self, name: &str, formats: &[Format]) -> StreamBatch {
        let scratch = self.lock().shard();
        let mut parsers: Vec<LineParser> = formats.iter().cloned().map(LineParser::for_stream).collect();
        if parsers.is_empty() {
            parsers.push(LineParser::for_stream(Format::default_v2()));
        }
        StreamBatch::new(self.live.clone(), scratch, parsers, name)
    }

    /// A registry exposing the aggregates, new series held at 0 for `hold`
    /// (`Duration::ZERO`: values at once, as replay wants); sources add their
    /// own health metrics to it.
    pub fn registry(&self, hold: Duration) -> Registry {
        crate::expose::registry_with_new_series_hold(&self.live, hold)
    }

    /// The text exposition of the aggregates alone (no hold, no process
    /// metrics): what `replay` prints.
    pub fn exposition(&self) -> String {
        crate::expose::encode(&self.registry(Duration::ZERO))
    }

    /// Applies a reloaded configuration: `fresh` takes every counter whose
    /// series still exists and every window whose settings are unchanged (see
    /// [`Aggregator::keep_from`]), then replaces the running aggregates, in
    /// one step under the lock.
    pub fn replace(&self, fresh: Prepared) {
        let mut fresh = fresh.agg;
        let mut live = self.lock();
        fresh.keep_from(&mut live);
        *live = fresh;
    }

    /// Builds the aggregates of `config` (keeping a country table given at
    /// the start) and [`replace`](Pipeline::replace)s the running ones. On
    /// error the running configuration stays.
    pub fn reload(&self, config: &Config) -> Result<(), PipelineError> {
        let mut fresh = Prepared::new(config)?;
        if let Some(c) = &self.countries {
            fresh = fresh.with_countries(c.clone());
        }
        self.replace(fresh);
        Ok(())
    }

    /// `replay`'s whole run: `count` takes an empty shard of the live
    /// aggregates (the same rules, limits and windows) and returns it with
    /// every input counted (on its own workers, without the lock); the result
    /// then stands in for the live aggregates, exactly as counted (a merge
    /// would fold the trackers' windows). Meant for a pipeline that has
    /// counted nothing yet: counts made meanwhile are replaced.
    pub fn replay_with<E>(&self, count: impl FnOnce(Aggregator) -> Result<Aggregator, E>) -> Result<(), E> {
        let counted = count(self.lock().shard())?;
        *self.lock() = counted;
        Ok(())
    }

    /// Reads the live aggregates under the lock (checks in tests and fuzzers).
    pub fn inspect<R>(&self, read: impl FnOnce(&Aggregator) -> R) -> R {
        read(&self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Aggregator> {
        // A poisoned lock means a writer panicked mid-batch; the counts are
        // still the best we have.
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::Record;

    const LINE: &str = "2 123456789010 eni-a 10.0.0.1 10.0.0.2 40000 443 6 2 100 1700000000 1700000060 ACCEPT OK";

    fn value(expo: &str, series: &str) -> Option<f64> {
        expo.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn a_stream_counts_what_one_aggregator_counts() {
        let config = Config::default();
        let p = Pipeline::new(&config).unwrap();
        let mut s = p.stream("group", Format::default_v2());
        s.batch(&[format!("{LINE}\n"), "version account-id".to_owned()]);
        s.lines(format!("{LINE}\n{LINE}").as_bytes());
        let mut agg = Aggregator::new(&config);
        let mut parser = LineParser::for_stream(Format::default_v2());
        agg.ingest_lines(&mut parser, format!("{LINE}\nversion account-id\n{LINE}\n{LINE}").as_bytes());
        assert_eq!(p.exposition(), crate::expose::encode(&crate::expose::registry(&agg.into_shared())));
        let expo = p.exposition();
        assert_eq!(value(&expo, "vpc_flow_records_total{action=\"ACCEPT\",interface_id=\"eni-a\"}"), Some(3.0));
        assert_eq!(value(&expo, "vpc_flow_exporter_lines_total"), Some(4.0));
        let invalid: f64 = expo
            .lines()
            .filter(|l| l.starts_with("vpc_flow_exporter_parse_errors_total{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum();
        assert_eq!(invalid, 1.0, "a header-looking line in a stream is invalid");
    }

    #[test]
    fn a_file_counts_all_or_nothing() {
        let p = Pipeline::new(&Config::default()).unwrap();
        let mut f = p.file("a.log", Format::default_v2());
        f.lines(format!("{LINE}\n{LINE}\n").as_bytes());
        assert_eq!(f.lines_read(), 2);
        drop(f);
        assert_eq!(value(&p.exposition(), "vpc_flow_exporter_lines_total"), Some(0.0));

        // A header sets the format for the rest of its file only.
        let mut f = p.file("b.log", Format::default_v2());
        f.lines(b"interface-id action\neni-b REJECT\n");
        let mut g = p.file("c.log", Format::default_v2());
        g.line(b"eni-b REJECT");
        f.commit();
        g.commit();
        let expo = p.exposition();
        assert_eq!(value(&expo, "vpc_flow_records_total{action=\"REJECT\",interface_id=\"eni-b\"}"), Some(1.0));
        assert_eq!(value(&expo, "vpc_flow_exporter_lines_total"), Some(3.0));
    }

    #[test]
    fn a_stream_batch_counts_all_or_nothing_in_its_formats() {
        let p = Pipeline::new(&Config::default()).unwrap();
        let short = Format::parse("${interface-id} ${action}").unwrap();
        let mut b = p.stream_batch("firehose", &[Format::default_v2(), short.clone()]);
        b.line(0, LINE.as_bytes());
        drop(b);
        assert_eq!(value(&p.exposition(), "vpc_flow_exporter_lines_total"), Some(0.0));
        let mut b = p.stream_batch("firehose", &[Format::default_v2(), short]);
        b.line(0, LINE.as_bytes());
        b.line(1, b"eni-b REJECT");
        b.line(1, b"interface-id action");
        assert_eq!(b.lines_read(), 3);
        b.commit();
        let expo = p.exposition();
        assert_eq!(value(&expo, "vpc_flow_records_total{action=\"ACCEPT\",interface_id=\"eni-a\"}"), Some(1.0));
        assert_eq!(value(&expo, "vpc_flow_records_total{action=\"REJECT\",interface_id=\"eni-b\"}"), Some(1.0));
        assert_eq!(value(&expo, "vpc_flow_exporter_lines_total"), Some(3.0), "a header-looking line is invalid");
    }

    #[test]
    fn typed_records_count_as_lines() {
        let p = Pipeline::new(&Config::default()).unwrap();
        let mut parser = LineParser::for_file(Format::default_v2());
        let crate::parse::Line::Record(r) = parser.parse_line(LINE.as_bytes()) else { panic!() };
        let records: Vec<Record<'_>> = vec![r.clone(), r];
        p.stream("parquet", Format::default_v2()).records(&records);
        let mut f = p.file("object.parquet", Format::default_v2());
        f.records(&records);
        f.commit();
        let expo = p.exposition();
        assert_eq!(value(&expo, "vpc_flow_records_total{action=\"ACCEPT\",interface_id=\"eni-a\"}"), Some(4.0));
        assert_eq!(value(&expo, "vpc_flow_exporter_lines_total"), Some(4.0));
    }

    #[test]
    fn a_reload_keeps_counters_and_a_bad_one_changes_nothing() {
        let p = Pipeline::new(&Config::default()).unwrap();
        p.stream("s", Format::default_v2()).lines(LINE.as_bytes());
        let mut config = Config::default();
        config.detections.forbidden_ports = vec![443];
        p.reload(&config).unwrap();
        p.stream("s", Format::default_v2()).lines(LINE.as_bytes());
        let expo = p.exposition();
        assert_eq!(value(&expo, "vpc_flow_records_total{action=\"ACCEPT\",interface_id=\"eni-a\"}"), Some(2.0));
        let forbidden =
            "vpc_flow_forbidden_port_records_total{action=\"ACCEPT\",dstport=\"443\",interface_id=\"eni-a\"}";
        assert_eq!(value(&expo, forbidden), Some(1.0));

        config.geoip = Some(crate::config::GeoIpConfig { database: "/nonexistent/country.mmdb".into() });
        let e = p.reload(&config).unwrap_err();
        assert!(e.to_string().starts_with("geoip.database: cannot open /nonexistent/country.mmdb: "), "{e}");
        assert!(Pipeline::new(&config).is_err());
        assert_eq!(p.exposition(), expo);
    }

    #[test]
    fn a_country_table_given_at_the_start_survives_reloads() {
        let demo = Arc::new(crate::detect::geo::demo_countries());
        let p = Pipeline::start(Prepared::new(&Config::default()).unwrap().with_countries(demo));
        p.reload(&Config::default()).unwrap();
        p.stream("s", Format::default_v2()).lines(LINE.as_bytes());
        assert!(p
            .exposition()
            .contains("vpc_flow_source_country_records_total{action=\"ACCEPT\",country=\"private\"} 1"));
    }
}
