//! Parsing: from raw bytes of one flow-log line to a typed [`Record`].
//!
//! A [`Format`] is the ordered list of AWS fields of a log format (`${version}
//! ${account-id} ...`), compiled once into a table from column to typed slot. A
//! [`LineParser`] owns a format and turns one line at a time into a [`Record`]
//! that borrows from the line, without allocating: fields are split on runs of
//! spaces or tabs, `-` is "no value", numbers and addresses are checked for
//! range. The kind of input is fixed when the parser is built
//! ([`LineParser::for_file`], [`LineParser::for_stream`]): in a file or an S3
//! object a header line switches the format until [`LineParser::reset`]; in
//! an event stream (CloudWatch, Firehose, the demo) a header-looking line is
//! invalid ([`ParseError::HeaderInStream`]), so no input changes how later
//! input is read. JSON-object lines are read by field name. Anything else
//! that does not fit is a [`ParseError`], whose kind is the bounded `reason`
//! label of `vpc_flow_exporter_parse_errors_total`. The parser keeps no state
//! between lines except a file's header-chosen format. docs/parsing.md is the
//! user-facing description of these rules.

mod fields;
mod format;
mod json;
mod scan;

use std::fmt;
use std::net::IpAddr;

pub use fields::{is_known_field, KnownField, KNOWN_FIELDS};
pub use format::{Format, FormatError};

pub(crate) use fields::{field_id, Slot};

/// The longest line read (after its line end is cut); longer lines are
/// [`ParseError::TooLong`]. A record with every AWS field is well under 2 KiB.
pub const MAX_LINE_LEN: usize = 32 * 1024;

/// The action of a record: the `action` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Accept = 0,
    Reject = 1,
    /// `-` or a format without `action`.
    Unknown = 2,
}

impl Action {
    pub const ALL: [Action; 3] = [Action::Accept, Action::Reject, Action::Unknown];
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Accept => "ACCEPT",
            Action::Reject => "REJECT",
            Action::Unknown => "unknown",
        }
    }
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The log status of a record: the `log_status` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogStatus {
    /// `OK`, or a format without `log-status`.
    Ok = 0,
    NoData = 1,
    SkipData = 2,
}

impl LogStatus {
    pub const ALL: [LogStatus; 3] = [LogStatus::Ok, LogStatus::NoData, LogStatus::SkipData];
    pub fn as_str(self) -> &'static str {
        match self {
            LogStatus::Ok => "OK",
            LogStatus::NoData => "NODATA",
            LogStatus::SkipData => "SKIPDATA",
        }
    }
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One valid flow-log record. Every field is `None` where the format lacks it or
/// the line holds `-`. Byte-string fields borrow from the line (or from the
/// parser's scratch buffer for JSON lines). `start` and `end` are Unix seconds:
/// values of 13 digits or more are read as milliseconds and divided by 1000.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record<'a> {
    pub version: Option<u8>,
    pub account_id: Option<&'a [u8]>,
    pub interface_id: Option<&'a [u8]>,
    pub srcaddr: Option<IpAddr>,
    pub dstaddr: Option<IpAddr>,
    pub srcport: Option<u16>,
    pub dstport: Option<u16>,
    pub protocol: Option<u8>,
    pub packets: Option<u64>,
    pub bytes: Option<u64>,
    pub start: Option<u64>,
    pub end: Option<u64>,
    pub action: Option<Action>,
    pub log_status: Option<LogStatus>,
    pub tcp_flags: Option<u16>,
    pub pkt_srcaddr: Option<IpAddr>,
    pub pkt_dstaddr: Option<IpAddr>,
    /// The raw text of every column, typed or not (see [`Record::field`]).
    /// Not part of equality: records compare by their typed fields.
    pub raw: RawFields<'a>,
}

impl<'a> Record<'a> {
    /// `OK`, or the format has no log-status field.
    pub fn is_traffic(&self) -> bool {
        matches!(self.log_status, None | Some(LogStatus::Ok))
    }
    /// The record's flow time: `end`, else `start`.
    pub fn time(&self) -> Option<u64> {
        self.end.or(self.start)
    }

    /// The raw text of a field by AWS name (hyphen or underscore form), for any
    /// field of the format, known to AWS or not; `None` where the field is
    /// absent or `-`. For JSON lines, only the fields that AWS defines.
    pub fn field(&self, name: &str) -> Option<&'a [u8]> {
        self.raw.get(name)
    }

    /// The value of a field by AWS name: the typed value for the fields that
    /// have one (`srcport` is a number even where the line wrote `0443`,
    /// `start` is in seconds), the raw text for the others.
    pub fn get(&self, name: &str) -> Option<Value<'a>> {
        let num = |v: Option<u64>| v.map(Value::Number);
        match fields::slot_of(name) {
            Slot::Version => num(self.version.map(u64::from)),
            Slot::AccountId => self.account_id.map(Value::Text),
            Slot::InterfaceId => self.interface_id.map(Value::Text),
            Slot::SrcAddr => self.srcaddr.map(Value::Addr),
            Slot::DstAddr => self.dstaddr.map(Value::Addr),
            Slot::SrcPort => num(self.srcport.map(u64::from)),
            Slot::DstPort => num(self.dstport.map(u64::from)),
            Slot::Protocol => num(self.protocol.map(u64::from)),
            Slot::Packets => num(self.packets),
            Slot::Bytes => num(self.bytes),
            Slot::Start => num(self.start),
            Slot::End => num(self.end),
            Slot::Action => self.action.map(Value::Action),
            Slot::LogStatus => self.log_status.map(Value::LogStatus),
            Slot::TcpFlags => num(self.tcp_flags.map(u64::from)),
            Slot::PktSrcAddr => self.pkt_srcaddr.map(Value::Addr),
            Slot::PktDstAddr => self.pkt_dstaddr.map(Value::Addr),
            Slot::Text | Slot::Unknown => self.raw.get(name).map(Value::Text),
        }
    }
}

/// The value of one field, as [`Record::get`] returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Number(u64),
    Addr(IpAddr),
    Action(Action),
    LogStatus(LogStatus),
    /// Raw bytes (not checked for UTF-8).
    Text(&'a [u8]),
}

/// The value as AWS writes it (text lossily decoded from UTF-8).
impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(n) => write!(f, "{n}"),
            Value::Addr(a) => write!(f, "{a}"),
            Value::Action(a) => f.write_str(a.as_str()),
            Value::LogStatus(s) => f.write_str(s.as_str()),
            Value::Text(t) => write!(f, "{}", String::from_utf8_lossy(t)),
        }
    }
}

/// Start and end of one field's text in a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    pub(crate) const ABSENT: Span = Span { start: u32::MAX, end: u32::MAX };

    /// Both ends are below [`MAX_LINE_LEN`] (text) or the scratch length of
    /// one capped JSON line, which fit a u32.
    pub(crate) fn new(start: usize, end: usize) -> Span {
        Span { start: start as u32, end: end as u32 }
    }

    pub(crate) fn is_absent(self) -> bool {
        self.start == u32::MAX
    }

    fn slice(self, buf: &[u8]) -> Option<&[u8]> {
        if self.is_absent() {
            return None;
        }
        buf.get(self.start as usize..self.end as usize)
    }
}

/// The raw text of the columns of one record: the line and the position of
/// each field (text lines), or the text of each known field (JSON lines).
#[derive(Clone, Copy, Default)]
pub struct RawFields<'a> {
    buf: &'a [u8],
    spans: &'a [Span],
    /// Column names for text lines; `None` for JSON lines, whose spans are
    /// indexed like [`KNOWN_FIELDS`].
    names: Option<&'a [String]>,
}

impl<'a> RawFields<'a> {
    /// The text of a field (hyphen or underscore form); `None` where absent
    /// or `-`. When a format repeats a name, the last column wins.
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        let span = match self.names {
            Some(names) => {
                let i = if name.contains('_') {
                    let name = name.replace('_', "-");
                    names.iter().rposition(|n| *n == name)
                } else {
                    names.iter().rposition(|n| n == name)
                }?;
                *self.spans.get(i)?
            }
            None => *self.spans.get(fields::field_id(name)?)?,
        };
        span.slice(self.buf).filter(|t| *t != b"-")
    }

    /// Every column in order, as (name, text); `None` for `-`. For JSON
    /// lines, the known fields that have a value, in AWS table order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a [u8]>)> + '_ {
        let buf = self.buf;
        let text = move |s: &Span| s.slice(buf).filter(|t| *t != b"-");
        let columns = self
            .names
            .into_iter()
            .flat_map(move |names| names.iter().zip(self.spans).map(move |(n, s)| (n.as_str(), text(s))));
        let known = self.names.is_none().then_some(()).into_iter().flat_map(move |()| {
            KNOWN_FIELDS.iter().zip(self.spans).filter(|(_, s)| !s.is_absent()).map(move |(f, s)| (f.name, text(s)))
        });
        columns.chain(known)
    }
}

/// Raw text is a view of the same record: it never makes records unequal.
impl PartialEq for RawFields<'_> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for RawFields<'_> {}

impl fmt::Debug for RawFields<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(n, v)| (n, v.map(|t| String::from_utf8_lossy(t).into_owned()))))
            .finish()
    }
}

/// Why a line is invalid: the bounded `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ParseError {
    #[error("wrong number of fields")]
    FieldCount = 0,
    #[error("bad number")]
    BadNumber = 1,
    #[error("number out of range")]
    OutOfRange = 2,
    #[error("bad address")]
    BadAddress = 3,
    #[error("bad value")]
    BadValue = 4,
    #[error("bad json")]
    BadJson = 5,
    #[error("line too long")]
    TooLong = 6,
    /// A header line in an event stream, where no line may change the format.
    #[error("header line in an event stream")]
    HeaderInStream = 7,
}

impl ParseError {
    pub const ALL: [ParseError; 8] = [
        ParseError::FieldCount,
        ParseError::BadNumber,
        ParseError::OutOfRange,
        ParseError::BadAddress,
        ParseError::BadValue,
        ParseError::BadJson,
        ParseError::TooLong,
        ParseError::HeaderInStream,
    ];
    /// The `reason` label value.
    pub fn reason(self) -> &'static str {
        match self {
            ParseError::FieldCount => "field_count",
            ParseError::BadNumber => "bad_number",
            ParseError::OutOfRange => "out_of_range",
            ParseError::BadAddress => "bad_address",
            ParseError::BadValue => "bad_value",
            ParseError::BadJson => "bad_json",
            ParseError::TooLong => "too_long",
            ParseError::HeaderInStream => "header_in_stream",
        }
    }
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What one line was.
// The record is returned by value on purpose: boxing it would allocate per line.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Line<'a> {
    Record(Record<'a>),
    /// A header line of a file: the parser switched to the format it names.
    Header,
    /// An empty (or whitespace-only) line.
    Empty,
    Invalid(ParseError),
}

/// What kind of input a parser reads: whether a header line may set the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// A file or an S3 object: a header line sets the format for the rest of
    /// it (until [`LineParser::reset`], at the start of the next one).
    File,
    /// An event stream (CloudWatch Logs events, Firehose records, demo
    /// ticks): every line is one record in the configured format; a
    /// header-looking line is [`ParseError::HeaderInStream`].
    Stream,
}

/// Parses the lines of one input (a file, a log group). What a header line
/// does depends on the [`InputKind`] chosen at construction.
#[derive(Debug, Clone)]
pub struct LineParser {
    kind: InputKind,
    configured: Format,
    /// The format of the last header line of a file, until `reset` (always
    /// `None` for a stream).
    header: Option<Format>,
    /// Per column of the last text line: where its field is.
    spans: Vec<Span>,
    /// Separator mask of the last text line (sized once for the longest line).
    seps: Vec<u64>,
    json: json::Scratch,
}

impl LineParser {
    /// A parser for files and S3 objects, where a header line sets the format
    /// for the rest of the file; call [`LineParser::reset`] between files.
    pub fn for_file(format: Format) -> LineParser {
        LineParser::with_kind(InputKind::File, format)
    }

    /// A parser for an event stream, where every line is a record in
    /// `format` and a header-looking line is invalid.
    pub fn for_stream(format: Format) -> LineParser {
        LineParser::with_kind(InputKind::Stream, format)
    }

    pub fn with_kind(kind: InputKind, format: Format) -> LineParser {
        LineParser {
            kind,
            spans: vec![Span::ABSENT; format.len()],
            seps: Vec::with_capacity(MAX_LINE_LEN / 64 + 1),
            configured: format,
            header: None,
            json: json::Scratch::default(),
        }
    }

    pub fn kind(&self) -> InputKind {
        self.kind
    }

    /// Back to the configured format (a new file begins).
    pub fn reset(&mut self) {
        self.header = None;
    }

    /// Parses one line (without its `\n`; a trailing `\r` is allowed).
    #[inline]
    pub fn parse_line<'a>(&'a mut self, line: &'a [u8]) -> Line<'a> {
        let line = trim_line_end(line);
        if line.len() > MAX_LINE_LEN {
            return Line::Invalid(ParseError::TooLong);
        }
        let line = trim_blanks(line);
        let Some(&first) = line.first() else {
            return Line::Empty;
        };
        if first == b'{' {
            return self.parse_json(line);
        }
        if first.is_ascii_lowercase() {
            match self.kind {
                InputKind::File => {
                    if let Some(format) = Format::from_header(line) {
                        self.header = Some(format);
                        return Line::Header;
                    }
                }
                InputKind::Stream => {
                    if Format::is_header(line) {
                        return Line::Invalid(ParseError::HeaderInStream);
                    }
                }
            }
        }
        self.parse_text(line)
    }

    /// The format the next line is read with: the last header's, else the
    /// configured one.
    pub fn format(&self) -> &Format {
        self.header.as_ref().unwrap_or(&self.configured)
    }

    /// The format the parser was built with, which `reset` returns to.
    pub fn configured_format(&self) -> &Format {
        &self.configured
    }

    fn parse_text<'a>(&'a mut self, line: &'a [u8]) -> Line<'a> {
        let LineParser { configured, header, spans, seps, .. } = self;
        let header: &'a Option<Format> = header;
        let format: &'a Format = header.as_ref().unwrap_or(configured);
        let slots = format.slots();
        if spans.len() != slots.len() {
            spans.resize(slots.len(), Span::ABSENT);
        }
        scan::separator_mask(line, seps);
        // Every field is found first: a wrong field count is the reason,
        // whatever else is wrong with the line.
        if scan::field_spans(seps, spans) != slots.len() {
            return Line::Invalid(ParseError::FieldCount);
        }
        let spans: &'a [Span] = spans;
        let raw = RawFields { buf: line, spans, names: Some(format.names()) };
        if let Some(columns) = default_v2_spans(format, spans) {
            // The AWS default format, the common case: straight-line code
            // that builds the record in place.
            return match default_v2(line, columns, raw) {
                Ok(record) => Line::Record(record),
                Err(e) => Line::Invalid(e),
            };
        }
        let mut record = Record::default();
        for &(column, slot) in format.typed_columns() {
            let Some(span) = spans.get(column) else { continue };
            if let Err(e) = fill(&mut record, slot, line, span.start as usize, span.end as usize) {
                return Line::Invalid(e);
            }
        }
        record.raw = raw;
        Line::Record(record)
    }

    #[cold]
    fn parse_json<'a>(&'a mut self, line: &'a [u8]) -> Line<'a> {
        if let Err(e) = self.json.read(line) {
            return Line::Invalid(e);
        }
        let scratch: &'a json::Scratch = &self.json;
        let mut record = Record::default();
        for (field, span) in KNOWN_FIELDS.iter().zip(&scratch.spans) {
            if !span.is_absent() {
                let (start, end) = (span.start as usize, span.end as usize);
                if let Err(e) = fill(&mut record, field.slot, &scratch.buf, start, end) {
                    return Line::Invalid(e);
                }
            }
        }
        record.raw = RawFields { buf: &scratch.buf, spans: &scratch.spans, names: None };
        Line::Record(record)
    }
}

/// The columns of a line in the AWS default format, when `format` is it.
#[inline(always)]
fn default_v2_spans<'s>(format: &Format, spans: &'s [Span]) -> Option<&'s [Span; 14]> {
    if !format.is_default_v2() {
        return None;
    }
    spans.try_into().ok()
}

/// A line in the AWS default (version 2) format, read without the per-column
/// dispatch: the same checks as [`fill`], in column order.
#[inline(always)]
fn default_v2<'a>(line: &'a [u8], c: &[Span; 14], raw: RawFields<'a>) -> Result<Record<'a>, ParseError> {
    #[inline(always)]
    fn text(line: &[u8], s: Span) -> Option<&[u8]> {
        line.get(s.start as usize..s.end as usize).filter(|t| *t != b"-")
    }
    #[inline(always)]
    fn number(line: &[u8], s: Span, max: u64) -> Result<Option<u64>, ParseError> {
        if text(line, s).is_none() {
            return Ok(None);
        }
        scan::bounded_in(line, s.start as usize, s.end as usize, max).map(Some)
    }
    #[inline(always)]
    fn time(line: &[u8], s: Span) -> Result<Option<u64>, ParseError> {
        if text(line, s).is_none() {
            return Ok(None);
        }
        scan::timestamp_in(line, s.start as usize, s.end as usize).map(Some)
    }
    #[inline(always)]
    fn addr(line: &[u8], s: Span) -> Result<Option<IpAddr>, ParseError> {
        text(line, s).map(scan::addr).transpose()
    }
    Ok(Record {
        version: number(line, c[0], u8::MAX as u64)?.map(|v| v as u8),
        account_id: text(line, c[1]),
        interface_id: text(line, c[2]),
        srcaddr: addr(line, c[3])?,
        dstaddr: addr(line, c[4])?,
        srcport: number(line, c[5], u16::MAX as u64)?.map(|v| v as u16),
        dstport: number(line, c[6], u16::MAX as u64)?.map(|v| v as u16),
        protocol: number(line, c[7], u8::MAX as u64)?.map(|v| v as u8),
        packets: number(line, c[8], u64::MAX)?,
        bytes: number(line, c[9], u64::MAX)?,
        start: time(line, c[10])?,
        end: time(line, c[11])?,
        action: text(line, c[12]).map(action).transpose()?,
        log_status: text(line, c[13]).map(log_status).transpose()?,
        tcp_flags: None,
        pkt_srcaddr: None,
        pkt_dstaddr: None,
        raw,
    })
}

/// Puts the field `buf[start..end]` (of a text line, or a JSON line's
/// scratch buffer) into its typed slot; `-` is no value.
#[inline(always)]
fn fill<'a>(r: &mut Record<'a>, slot: Slot, buf: &'a [u8], start: usize, end: usize) -> Result<(), ParseError> {
    let t = buf.get(start..end).unwrap_or_default();
    if t == b"-" {
        return Ok(());
    }
    match slot {
        Slot::Version => r.version = Some(scan::bounded_in(buf, start, end, u8::MAX as u64)? as u8),
        Slot::AccountId => r.account_id = Some(t),
        Slot::InterfaceId => r.interface_id = Some(t),
        Slot::SrcAddr => r.srcaddr = Some(scan::addr(t)?),
        Slot::DstAddr => r.dstaddr = Some(scan::addr(t)?),
        Slot::SrcPort => r.srcport = Some(scan::bounded_in(buf, start, end, u16::MAX as u64)? as u16),
        Slot::DstPort => r.dstport = Some(scan::bounded_in(buf, start, end, u16::MAX as u64)? as u16),
        Slot::Protocol => r.protocol = Some(scan::bounded_in(buf, start, end, u8::MAX as u64)? as u8),
        Slot::Packets => r.packets = Some(scan::number_in(buf, start, end)?),
        Slot::Bytes => r.bytes = Some(scan::number_in(buf, start, end)?),
        Slot::Start => r.start = Some(scan::timestamp_in(buf, start, end)?),
        Slot::End => r.end = Some(scan::timestamp_in(buf, start, end)?),
        Slot::Action => r.action = Some(action(t)?),
        Slot::LogStatus => r.log_status = Some(log_status(t)?),
        Slot::TcpFlags => r.tcp_flags = Some(scan::bounded_in(buf, start, end, MAX_TCP_FLAGS)? as u16),
        Slot::PktSrcAddr => r.pkt_srcaddr = Some(scan::addr(t)?),
        Slot::PktDstAddr => r.pkt_dstaddr = Some(scan::addr(t)?),
        Slot::Text | Slot::Unknown => {}
    }
    Ok(())
}

#[inline(always)]
fn action(t: &[u8]) -> Result<Action, ParseError> {
    match t {
        b"ACCEPT" => Ok(Action::Accept),
        b"REJECT" => Ok(Action::Reject),
        _ => Err(ParseError::BadValue),
    }
}

#[inline(always)]
fn log_status(t: &[u8]) -> Result<LogStatus, ParseError> {
    match t {
        b"OK" => Ok(LogStatus::Ok),
        b"NODATA" => Ok(LogStatus::NoData),
        b"SKIPDATA" => Ok(LogStatus::SkipData),
        _ => Err(ParseError::BadValue),
    }
}

/// tcp-flags is a bitmask of the 8 TCP header flags (AWS reports FIN 1,
/// SYN 2, RST 4 and SYN-ACK 18, OR-ed over the aggregation interval).
const MAX_TCP_FLAGS: u64 = 0xff;

/// Cuts the line end: any trailing `\r` and `\n`.
fn trim_line_end(mut line: &[u8]) -> &[u8] {
    while let [rest @ .., b'\r' | b'\n'] = line {
        line = rest;
    }
    line
}

fn trim_blanks(mut line: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = line {
        line = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = line {
        line = rest;
    }
    line
}

#[cfg(test)]
mod tests;
