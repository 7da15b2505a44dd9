//! The exporter's own logs on standard error: the `--log.level` and
//! `--log.format` values, and one formatter that writes each event as one line
//! of logfmt (`ts=… level=info target=… msg="…" key=value`) or of JSON (one
//! object with the same keys). Values are escaped, so no field can break a line.

use std::ffi::OsStr;
use std::fmt::{self, Write as _};

use clap::builder::{EnumValueParser, PossibleValue, TypedValueParser};
use clap::ValueEnum;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// The crate whose events `--log.level` governs; other crates (the AWS SDK,
/// hyper) log at `info` and above unless the level is `trace`.
const OWN_TARGET: &str = "vpc_flow_exporter";

/// `--log.level`: the least severe events written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    /// Failures only.
    Error,
    /// Failures and what an operator should look at.
    Warn,
    /// Start-up, reloads, shutdown (the default).
    Info,
    /// Also per-request and per-line details of this exporter.
    Debug,
    /// Everything, including the AWS SDK's and the HTTP stack's own debug and trace events.
    Trace,
}

impl LogLevel {
    fn filter(self) -> LevelFilter {
        match self {
            LogLevel::Error => LevelFilter::ERROR,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Trace => LevelFilter::TRACE,
        }
    }

    /// This crate at the level; dependencies at `info` at most, except at `trace`.
    fn targets(self) -> Targets {
        let own = self.filter();
        let others = if self == LogLevel::Trace { LevelFilter::TRACE } else { own.min(LevelFilter::INFO) };
        Targets::new().with_target(OWN_TARGET, own).with_default(others)
    }
}

/// `--log.format`: how each event is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `key=value` pairs, values quoted where needed (Loki's `| logfmt`, go-logfmt).
    Logfmt,
    /// One JSON object per line.
    Json,
}

/// The value parser of `--log.format`: the enum's own, plus a hint when the
/// value looks like a flow-log format (`${version} ...`), which belongs to
/// `replay --log-format`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogFormatParser;

/// The hint printed when `--log.format` receives a flow-log format.
pub const FLOW_FORMAT_HINT: &str = "did you mean --log-format (the flow-log format of replay)?";

impl TypedValueParser for LogFormatParser {
    type Value = LogFormat;

    fn parse_ref(&self, cmd: &clap::Command, arg: Option<&clap::Arg>, value: &OsStr) -> Result<LogFormat, clap::Error> {
        let inner = EnumValueParser::<LogFormat>::new();
        match inner.parse_ref(cmd, arg, value) {
            Ok(v) => Ok(v),
            Err(_) if value.to_string_lossy().contains("${") => {
                let flag = arg.map_or_else(|| "--log.format".to_owned(), |a| a.to_string());
                // Laid out as clap's own invalid-value errors, with the hint as the tip.
                let message = format!(
                    "invalid value '{}' for '{flag}' (the format of the exporter's own logs)\n  \
                     [possible values: logfmt, json]\n\n  tip: {FLOW_FORMAT_HINT}\n",
                    value.to_string_lossy()
                );
                Err(clap::Error::raw(clap::error::ErrorKind::InvalidValue, message).with_cmd(cmd))
            }
            Err(e) => Err(e),
        }
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(LogFormat::value_variants().iter().filter_map(ValueEnum::to_possible_value)))
    }
}

/// Logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// A global subscriber was already installed.
    #[error("cannot install the logger: {0}")]
    Init(#[from] tracing_subscriber::util::TryInitError),
}

/// Installs the process-wide logger: events at `level` and above, written to
/// standard error in `format`.
pub fn init(level: LogLevel, format: LogFormat) -> Result<(), LoggingError> {
    subscriber(level, format, std::io::stderr).try_init()?;
    Ok(())
}

/// The logger as a subscriber that writes to `writer` (tests capture it).
pub fn subscriber<W>(level: LogLevel, format: LogFormat, writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(writer)
        .fmt_fields(FieldsFormat { encoding: format })
        .event_format(EventFormat { encoding: format })
        .with_filter(level.targets());
    tracing_subscriber::registry().with(layer)
}

/// One field value as recorded.
#[derive(Debug)]
enum Value {
    Text(String),
    /// A finite number, written bare.
    Number(String),
    Bool(bool),
}

/// Collects an event's or a span's fields; `message` is kept apart.
#[derive(Debug, Default)]
struct Collect {
    message: Option<String>,
    fields: Vec<(&'static str, Value)>,
}

impl Collect {
    fn push(&mut self, field: &Field, value: Value) {
        match (field.name(), value) {
            ("message", Value::Text(s)) => self.message = Some(s),
            (name, value) => self.fields.push((name, value)),
        }
    }

    fn number(&mut self, field: &Field, n: impl fmt::Display) {
        self.push(field, Value::Number(n.to_string()));
    }
}

impl Visit for Collect {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.number(field, value);
        } else {
            self.push(field, Value::Text(value.to_string()));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.number(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.number(field, value);
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.number(field, value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.number(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, Value::Text(value.to_owned()));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // The whole chain of causes, as the binary prints errors.
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            let _ = write!(text, ": {cause}");
            source = cause.source();
        }
        self.push(field, Value::Text(text));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, Value::Text(format!("{value:?}")));
    }
}

/// Writes `key=value` pairs (logfmt) or `"key":value` members (JSON), with the
/// separator between them.
struct Line<'a> {
    encoding: LogFormat,
    out: &'a mut String,
    first: bool,
}

impl<'a> Line<'a> {
    fn new(encoding: LogFormat, out: &'a mut String) -> Self {
        let first = out.is_empty();
        Line { encoding, out, first }
    }

    fn separator(&mut self) {
        if !self.first {
            self.out.push(match self.encoding {
                LogFormat::Logfmt => ' ',
                LogFormat::Json => ',',
            });
        }
        self.first = false;
    }

    fn key(&mut self, key: &str) {
        self.separator();
        match self.encoding {
            LogFormat::Logfmt => {
                if key.is_empty() {
                    self.out.push('_');
                }
                // A key is one bare word: anything that would end it or need quoting becomes `_`.
                self.out.extend(key.chars().map(|c| if needs_quoting(c) { '_' } else { c }));
                self.out.push('=');
            }
            LogFormat::Json => {
                quote(self.out, key);
                self.out.push(':');
            }
        }
    }

    /// A text value: quoted in JSON; in logfmt quoted when empty or when it
    /// holds a space, `=`, `"`, `\` or a control character.
    fn text(&mut self, key: &str, value: &str) {
        self.key(key);
        if self.encoding == LogFormat::Json || value.is_empty() || value.chars().any(needs_quoting) {
            quote(self.out, value);
        } else {
            self.out.push_str(value);
        }
    }

    /// A text value that is quoted whatever it holds (`msg`).
    fn quoted(&mut self, key: &str, value: &str) {
        self.key(key);
        quote(self.out, value);
    }

    fn value(&mut self, key: &str, value: &Value) {
        match value {
            Value::Text(s) => self.text(key, s),
            Value::Number(n) => {
                self.key(key);
                self.out.push_str(n);
            }
            Value::Bool(b) => {
                self.key(key);
                self.out.push_str(if *b { "true" } else { "false" });
            }
        }
    }

    /// Members already written by [`FieldsFormat`] in the same encoding.
    fn raw(&mut self, members: &str) {
        if !members.is_empty() {
            self.separator();
            self.out.push_str(members);
        }
    }
}

/// Characters that a bare logfmt value cannot hold.
fn needs_quoting(c: char) -> bool {
    c <= ' ' || c == '=' || c == '"' || c == '\\' || c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// A double-quoted string with JSON escapes (`\"`, `\\`, `\n`, `\t`, `\u00XX`),
/// which logfmt readers (go-logfmt, Loki) and JSON readers both decode.
fn quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Control characters, and the Unicode line and paragraph separators
            // that some viewers break lines at.
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Formats span fields in the line's encoding, so that the event formatter
/// can append them as they are.
#[derive(Debug, Clone, Copy)]
struct FieldsFormat {
    encoding: LogFormat,
}

impl<'w> FormatFields<'w> for FieldsFormat {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: Writer<'w>,
        fields: R,
    ) -> fmt::Result {
        let mut collect = Collect::default();
        fields.record(&mut collect);
        let mut out = String::new();
        let mut line = Line::new(self.encoding, &mut out);
        if let Some(m) = &collect.message {
            line.text("message", m);
        }
        for (k, v) in &collect.fields {
            line.value(k, v);
        }
        writer.write_str(&out)
    }

    fn add_fields(&self, current: &'w mut FormattedFields<Self>, fields: &tracing::span::Record<'_>) -> fmt::Result {
        let mut more = String::new();
        self.format_fields(Writer::new(&mut more), fields)?;
        let mut line = Line::new(self.encoding, &mut current.fields);
        line.raw(&more);
        Ok(())
    }
}

/// Writes one event as one line.
#[derive(Debug, Clone, Copy)]
struct EventFormat {
    encoding: LogFormat,
}

impl<S> FormatEvent<S, FieldsFormat> for EventFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, FieldsFormat>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut ts = String::new();
        SystemTime.format_time(&mut Writer::new(&mut ts))?;
        let mut collect = Collect::default();
        event.record(&mut collect);
        let meta = event.metadata();

        let mut out = String::with_capacity(160);
        if self.encoding == LogFormat::Json {
            out.push('{');
        }
        let mut line = Line::new(self.encoding, &mut out);
        // `{` is not a member: the first member still needs no separator.
        line.first = true;
        line.text("ts", &ts);
        line.text("level", &meta.level().as_str().to_ascii_lowercase());
        line.text("target", meta.target());
        line.quoted("msg", collect.message.as_deref().unwrap_or(""));
        for (k, v) in &collect.fields {
            line.value(k, v);
        }
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<FormattedFields<FieldsFormat>>() {
                    line.raw(&fields.fields);
                }
            }
        }
        if self.encoding == LogFormat::Json {
            out.push('}');
        }
        out.push('\n');
        writer.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    fn capture(level: LogLevel, format: LogFormat, f: impl FnOnce()) -> String {
        let buf = Buffer::default();
        tracing::subscriber::with_default(subscriber(level, format, buf.clone()), f);
        let bytes = buf.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn logfmt_quotes_msg_and_values_that_need_it() {
        let out = capture(LogLevel::Info, LogFormat::Logfmt, || {
            tracing::info!(
                path = "/metrics",
                file = "my flows.log",
                n = 3u64,
                ok = true,
                snippet = "a\"b\\c\nd=e",
                empty = "",
                "Listening now"
            );
        });
        assert_eq!(out.lines().count(), 1, "{out}");
        let line = out.trim_end();
        assert!(line.starts_with("ts=20"), "{line}");
        let rest = line.split_once(' ').unwrap().1;
        assert_eq!(
            rest,
            r#"level=info target=vpc_flow_exporter::logging::tests msg="Listening now" path=/metrics file="my flows.log" n=3 ok=true snippet="a\"b\\c\nd=e" empty="""#
        );
    }

    #[test]
    fn logfmt_escapes_control_characters_and_keeps_unicode() {
        let out = capture(LogLevel::Info, LogFormat::Logfmt, || {
            tracing::warn!(line = "\u{1b}[31mred\u{7f}", city = "Zürich", sep = "a\u{2028}b", "Ünïcode msg");
        });
        assert!(out.contains(r#"msg="Ünïcode msg" line="\u001b[31mred\u007f" city=Zürich sep="a\u2028b""#), "{out}");
        assert_eq!(out.lines().count(), 1, "{out}");
    }

    #[test]
    fn json_is_one_object_per_line_with_typed_values() {
        let out = capture(LogLevel::Debug, LogFormat::Json, || {
            tracing::debug!(reason = "bad_field", count = 7i64, ratio = 0.5f64, nan = f64::NAN, "Invalid \"line\"");
            tracing::info!("second");
        });
        let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{out}");
        let first = &lines[0];
        assert_eq!(first["level"], "debug");
        assert_eq!(first["msg"], "Invalid \"line\"");
        assert_eq!(first["reason"], "bad_field");
        assert_eq!(first["count"], 7);
        assert_eq!(first["ratio"], 0.5);
        assert_eq!(first["nan"], "NaN");
        assert!(first["ts"].as_str().unwrap().ends_with('Z'));
        assert_eq!(lines[1]["msg"], "second");
    }

    #[test]
    fn span_fields_follow_the_event_fields() {
        for format in [LogFormat::Logfmt, LogFormat::Json] {
            let out = capture(LogLevel::Info, format, || {
                let span = tracing::info_span!("poll", log_group = "/vpc/flow logs");
                let _g = span.enter();
                span.record("log_group", "/vpc/other");
                tracing::info!(events = 2u64, "Polled");
            });
            match format {
                LogFormat::Logfmt => {
                    assert!(
                        out.contains(r#"msg="Polled" events=2 log_group="/vpc/flow logs" log_group=/vpc/other"#),
                        "{out}"
                    )
                }
                LogFormat::Json => {
                    let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
                    assert_eq!(v["events"], 2);
                    assert_eq!(v["msg"], "Polled");
                }
            }
        }
    }

    #[test]
    fn level_filters_own_events_and_caps_dependencies_at_info() {
        let out = capture(LogLevel::Warn, LogFormat::Logfmt, || {
            tracing::info!("hidden");
            tracing::warn!("shown");
        });
        assert!(!out.contains("hidden") && out.contains("shown"), "{out}");
        let out = capture(LogLevel::Debug, LogFormat::Logfmt, || {
            tracing::debug!(target: "aws_smithy_runtime", "sdk detail");
            tracing::info!(target: "aws_smithy_runtime", "sdk info");
            tracing::debug!("own detail");
        });
        assert!(!out.contains("sdk detail") && out.contains("sdk info") && out.contains("own detail"), "{out}");
        let out = capture(LogLevel::Trace, LogFormat::Logfmt, || {
            tracing::trace!(target: "hyper", "wire detail");
        });
        assert!(out.contains("wire detail"), "{out}");
    }

    #[test]
    fn log_format_parser_hints_at_the_flow_log_format_flag() {
        let cmd = clap::Command::new("t").arg(clap::Arg::new("f").long("log.format").value_parser(LogFormatParser));
        let err = cmd.clone().try_get_matches_from(["t", "--log.format", "${version} ${srcaddr}"]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("--log.format") && text.contains(FLOW_FORMAT_HINT), "{text}");
        let err = cmd.clone().try_get_matches_from(["t", "--log.format", "text"]).unwrap_err();
        assert!(!err.to_string().contains(FLOW_FORMAT_HINT), "{err}");
        let m = cmd.try_get_matches_from(["t", "--log.format", "json"]).unwrap();
        assert_eq!(m.get_one::<LogFormat>("f"), Some(&LogFormat::Json));
    }
}
