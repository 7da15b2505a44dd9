//! Parquet flow-log objects to typed records, without the text parser.
//! Columns are matched by AWS field name, hyphen or underscore form
//! (`pkt-srcaddr`, `pkt_srcaddr`); integer fields take INT32, INT64 or a
//! string of digits (the AWS "Flow log records" table gives INT_32 or
//! INT_64), the others strings. Row groups are read one after the other
//! through column readers, [`BATCH_ROWS`] rows at a time, so memory holds
//! a batch and the current page of each column. A row with a bad value is
//! one invalid line by reason, as a text line would be; a file that cannot
//! be read is a [`ParquetError`]. AWS writes these files with GZIP; the
//! other codecs are refused by name before any row is read.

use std::fs::File;
use std::net::IpAddr;

use ::parquet::basic::{Compression, Type as Physical};
use ::parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use ::parquet::data_type::{ByteArray, ByteArrayType, DataType, Int32Type, Int64Type};
use ::parquet::file::reader::FileReader;
use ::parquet::file::serialized_reader::SerializedFileReader;

use super::object::ObjectSink;
use crate::parse::{field_id, Action, KnownField, LogStatus, ParseError, Record, Slot, KNOWN_FIELDS};

/// Rows decoded per batch of column reads.
pub const BATCH_ROWS: usize = 4096;

/// The largest row group read, by the uncompressed size its footer states:
/// 256 MiB. AWS row groups of a 75 MB object are far smaller.
pub const MAX_ROW_GROUP_BYTES: i64 = 256 << 20;

/// The most columns a file's schema may have (AWS defines 40 fields).
pub const MAX_COLUMNS: usize = 1024;

/// Why a Parquet object cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ParquetError {
    /// Not a Parquet file, truncated, or corrupt.
    #[error("bad Parquet file: {0}")]
    Format(String),
    #[error("column {column} uses the {codec} codec; only GZIP and uncompressed are read")]
    Codec { column: String, codec: String },
    #[error("column {column} ({field}) has physical type {found}")]
    ColumnType { column: String, field: &'static str, found: String },
    #[error("row group {index} states {bytes} uncompressed bytes, over the limit of {MAX_ROW_GROUP_BYTES}")]
    RowGroupTooLarge { index: usize, bytes: i64 },
    #[error("the schema has {0} columns, over the limit of {MAX_COLUMNS}")]
    TooManyColumns(usize),
    #[error("no column is a flow-log field")]
    NoKnownColumns,
    #[error("column {column} of row group {index}: {source}")]
    Pages { column: String, index: usize, source: pages::PageError },
}

impl ParquetError {
    /// The bounded `reason` label value.
    pub fn reason(&self) -> &'static str {
        match self {
            ParquetError::Format(_) => "bad_parquet",
            ParquetError::Codec { .. } => "parquet_codec",
            ParquetError::ColumnType { .. } => "parquet_column_type",
            ParquetError::RowGroupTooLarge { .. } => "too_large",
            ParquetError::TooManyColumns(_) => "parquet_schema",
            ParquetError::NoKnownColumns => "parquet_schema",
            ParquetError::Pages { source: pages::PageError::TooLarge(_), .. } => "too_large",
            ParquetError::Pages { .. } => "bad_parquet",
        }
    }
}

impl From<::parquet::errors::ParquetError> for ParquetError {
    fn from(e: ::parquet::errors::ParquetError) -> ParquetError {
        ParquetError::Format(e.to_string())
    }
}

/// The typed [`Record`] field a column of this name fills (hyphen or
/// underscore form), from the parser's table of AWS fields; `None` for a
/// name AWS does not define or a field kept only as text.
fn typed_field(column: &str) -> Option<&'static KnownField> {
    let known = field_id(column).and_then(|i| KNOWN_FIELDS.get(i))?;
    (!matches!(known.slot, Slot::Text | Slot::Unknown)).then_some(known)
}

/// The largest value of an integer field; `None` for a text field.
fn max(slot: Slot) -> Option<u64> {
    match slot {
        Slot::Version | Slot::Protocol | Slot::TcpFlags => Some(u8::MAX.into()),
        Slot::SrcPort | Slot::DstPort => Some(u16::MAX.into()),
        Slot::Packets | Slot::Bytes | Slot::Start | Slot::End => Some(u64::MAX),
        _ => None,
    }
}

/// The values of one column for one batch of rows.
enum Values {
    I32(Vec<i32>),
    I64(Vec<i64>),
    Bytes(Vec<ByteArray>),
}

/// One column read into a batch: its values and, per row, the index of
/// its value (`u32::MAX` for null).
struct Column {
    index: usize,
    field: &'static KnownField,
    max_def: i16,
    def: Vec<i16>,
    values: Values,
    at: Vec<u32>,
}

/// Reads every row group of a spooled Parquet object into `sink`; returns
/// the rows read (valid or not). The `parquet` crate asserts some
/// invariants of the file instead of returning errors (a data page that
/// refers to a missing dictionary): such a panic is caught and returned as
/// [`ParquetError::Format`]; the sink then holds part of the object and is
/// dropped like after any error.
pub fn read<S: ObjectSink>(file: File, sink: &mut S) -> Result<u64, ParquetError> {
    let len = file.metadata().map_err(|e| ParquetError::Format(e.to_string()))?.len();
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_checked(file, len, sink)));
    read.unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the reader panicked".to_owned());
        Err(ParquetError::Format(why))
    })
}

fn read_checked<S: ObjectSink>(file: File, len: u64, sink: &mut S) -> Result<u64, ParquetError> {
    let headers = file.try_clone().map_err(|e| ParquetError::Format(e.to_string()))?;
    let reader = SerializedFileReader::new(file)?;
    let mut columns = columns(&reader)?;
    check_row_groups(&reader, len)?;
    check_pages(&reader, &headers, &columns)?;
    let mut rows = 0u64;
    for g in 0..reader.num_row_groups() {
        let group = reader.get_row_group(g)?;
        let mut readers = Vec::with_capacity(columns.len());
        for c in &columns {
            readers.push(group.get_column_reader(c.index)?);
        }
        loop {
            let n = read_batch(&mut readers, &mut columns)?;
            if n == 0 {
                break;
            }
            emit(&columns, n, sink);
            rows += n as u64;
        }
    }
    Ok(rows)
}

/// The columns that fill a typed field, checked for their physical type;
/// nested, repeated and unknown columns are left out. When two columns
/// name one field (`pkt_srcaddr` and `pkt-srcaddr`), the last wins.
fn columns(reader: &SerializedFileReader<File>) -> Result<Vec<Column>, ParquetError> {
    let schema = reader.metadata().file_metadata().schema_descr();
    if schema.num_columns() > MAX_COLUMNS {
        return Err(ParquetError::TooManyColumns(schema.num_columns()));
    }
    let mut out: Vec<Column> = Vec::new();
    for (index, descr) in schema.columns().iter().enumerate() {
        if descr.path().parts().len() != 1 || descr.max_rep_level() > 0 {
            continue;
        }
        let Some(field) = typed_field(descr.name()) else { continue };
        let values = match (descr.physical_type(), max(field.slot)) {
            (Physical::INT32, Some(_)) => Values::I32(Vec::new()),
            (Physical::INT64, Some(_)) => Values::I64(Vec::new()),
            (Physical::BYTE_ARRAY, _) => Values::Bytes(Vec::new()),
            (found, _) => {
                let (column, field) = (descr.name().to_owned(), field.name);
                return Err(ParquetError::ColumnType { column, field, found: found.to_string() });
            }
        };
        out.retain(|c| c.field.slot != field.slot);
        out.push(Column { index, field, max_def: descr.max_def_level(), def: Vec::new(), values, at: Vec::new() });
    }
    if out.is_empty() {
        return Err(ParquetError::NoKnownColumns);
    }
    Ok(out)
}

/// Refuses, before reading rows, codecs other than GZIP and none, row
/// groups over [`MAX_ROW_GROUP_BYTES`], and column chunks outside the file
/// (which the `parquet` crate asserts against).
fn check_row_groups(reader: &SerializedFileReader<File>, file_len: u64) -> Result<(), ParquetError> {
    for (index, group) in reader.metadata().row_groups().iter().enumerate() {
        if group.total_byte_size() > MAX_ROW_GROUP_BYTES {
            return Err(ParquetError::RowGroupTooLarge { index, bytes: group.total_byte_size() });
        }
        for column in group.columns() {
            let start = column.dictionary_page_offset().unwrap_or(column.data_page_offset());
            let inside = u64::try_from(start)
                .ok()
                .zip(u64::try_from(column.compressed_size()).ok())
                .and_then(|(start, len)| start.checked_add(len))
                .is_some_and(|end| end <= file_len);
            if !inside {
                let name = column.column_descr().name();
                return Err(ParquetError::Format(format!("column {name} of row group {index} lies outside the file")));
            }
            match column.compression() {
                Compression::UNCOMPRESSED | Compression::GZIP(_) => {}
                other => {
                    let column = column.column_descr().name().to_owned();
                    return Err(ParquetError::Codec { column, codec: other.to_string() });
                }
            }
        }
    }
    Ok(())
}

/// Refuses, before reading rows, a page of a column to be read whose
/// header states more than [`pages::MAX_PAGE_BYTES`] uncompressed.
fn check_pages(reader: &SerializedFileReader<File>, file: &File, columns: &[Column]) -> Result<(), ParquetError> {
    for (index, group) in reader.metadata().row_groups().iter().enumerate() {
        for c in columns {
            let chunk = group.column(c.index);
            let start = chunk.dictionary_page_offset().unwrap_or(chunk.data_page_offset());
            // Both lie inside the file: check_row_groups ran first.
            let (start, len) = (start.max(0) as u64, chunk.compressed_size().max(0) as u64);
            pages::check_chunk(file, start, len).map_err(|source| ParquetError::Pages {
                column: chunk.column_descr().name().to_owned(),
                index,
                source,
            })?;
        }
    }
    Ok(())
}

/// Reads up to [`BATCH_ROWS`] rows of every column; returns how many. The
/// columns must agree.
fn read_batch(readers: &mut [ColumnReader], columns: &mut [Column]) -> Result<usize, ParquetError> {
    let mut rows = None;
    for (reader, c) in readers.iter_mut().zip(columns.iter_mut()) {
        c.def.clear();
        let (n, _values, _levels) = match (reader, &mut c.values) {
            (ColumnReader::Int32ColumnReader(r), Values::I32(v)) => read_column::<Int32Type>(r, &mut c.def, v)?,
            (ColumnReader::Int64ColumnReader(r), Values::I64(v)) => read_column::<Int64Type>(r, &mut c.def, v)?,
            (ColumnReader::ByteArrayColumnReader(r), Values::Bytes(v)) => {
                read_column::<ByteArrayType>(r, &mut c.def, v)?
            }
            _ => return Err(ParquetError::Format("a column reader does not match its column's type".into())),
        };
        if *rows.get_or_insert(n) != n {
            return Err(ParquetError::Format("columns of one row group hold different numbers of rows".into()));
        }
        index_values(c, n)?;
    }
    Ok(rows.unwrap_or(0))
}

fn read_column<T: DataType>(
    r: &mut ColumnReaderImpl<T>,
    def: &mut Vec<i16>,
    values: &mut Vec<T::T>,
) -> Result<(usize, usize, usize), ParquetError> {
    values.clear();
    Ok(r.read_records(BATCH_ROWS, Some(def), None, values)?)
}

/// Where each row's value is in the column's values (nulls skipped).
fn index_values(c: &mut Column, rows: usize) -> Result<(), ParquetError> {
    let len = match &c.values {
        Values::I32(v) => v.len(),
        Values::I64(v) => v.len(),
        Values::Bytes(v) => v.len(),
    };
    c.at.clear();
    if c.max_def == 0 {
        c.at.extend((0..rows).map(|i| i as u32));
    } else {
        let mut next = 0u32;
        for &d in c.def.iter().take(rows) {
            if d == c.max_def {
                c.at.push(next);
                next += 1;
            } else {
                c.at.push(u32::MAX);
            }
        }
    }
    if c.at.len() != rows || c.at.iter().filter(|&&i| i != u32::MAX).count() != len {
        return Err(ParquetError::Format("a column's values do not match its definition levels".into()));
    }
    Ok(())
}

/// Builds the records of one batch and hands them to the sink; a row with
/// a bad value is one invalid line.
fn emit<S: ObjectSink>(columns: &[Column], rows: usize, sink: &mut S) {
    let mut records: Vec<Record<'_>> = Vec::with_capacity(rows);
    'rows: for row in 0..rows {
        let mut record = Record::default();
        for c in columns {
            if let Err(e) = fill(&mut record, c, row) {
                sink.invalid(e);
                continue 'rows;
            }
        }
        records.push(record);
    }
    sink.records(&records);
}

/// A value of a column: an integer, bytes, or none (null).
enum Cell<'a> {
    Int(i64),
    Text(&'a [u8]),
    Null,
}

fn cell(c: &Column, row: usize) -> Cell<'_> {
    let Some(&i) = c.at.get(row) else { return Cell::Null };
    let i = i as usize;
    let cell = match &c.values {
        Values::I32(v) => v.get(i).map(|&x| Cell::Int(x.into())),
        Values::I64(v) => v.get(i).map(|&x| Cell::Int(x)),
        Values::Bytes(v) => v.get(i).map(|b| Cell::Text(b.data())),
    };
    match cell {
        // `-` and an empty string are no value, as in text.
        Some(Cell::Text(b"-" | b"")) | None => Cell::Null,
        Some(cell) => cell,
    }
}

/// Puts one column's value for `row` into its typed field.
fn fill<'a>(r: &mut Record<'a>, c: &'a Column, row: usize) -> Result<(), ParseError> {
    let value = cell(c, row);
    if let Cell::Null = value {
        return Ok(());
    }
    if let Some(max) = max(c.field.slot) {
        let n = integer(&value, max)?;
        // Every cast is within the field's maximum, checked by `integer`.
        match c.field.slot {
            Slot::Version => r.version = Some(n as u8),
            Slot::Protocol => r.protocol = Some(n as u8),
            Slot::TcpFlags => r.tcp_flags = Some(n as u16),
            Slot::SrcPort => r.srcport = Some(n as u16),
            Slot::DstPort => r.dstport = Some(n as u16),
            Slot::Packets => r.packets = Some(n),
            Slot::Bytes => r.bytes = Some(n),
            Slot::Start => r.start = Some(seconds(n)),
            Slot::End => r.end = Some(seconds(n)),
            _ => {}
        }
        return Ok(());
    }
    let Cell::Text(t) = value else { return Err(ParseError::BadValue) };
    match c.field.slot {
        Slot::AccountId => r.account_id = Some(t),
        Slot::InterfaceId => r.interface_id = Some(t),
        Slot::SrcAddr => r.srcaddr = Some(addr(t)?),
        Slot::DstAddr => r.dstaddr = Some(addr(t)?),
        Slot::PktSrcAddr => r.pkt_srcaddr = Some(addr(t)?),
        Slot::PktDstAddr => r.pkt_dstaddr = Some(addr(t)?),
        Slot::Action => r.action = Some(action(t)?),
        Slot::LogStatus => r.log_status = Some(log_status(t)?),
        _ => {}
    }
    Ok(())
}

/// The value of an integer field, at most `max`: an integer column's
/// value, or a string of ASCII digits.
fn integer(value: &Cell<'_>, max: u64) -> Result<u64, ParseError> {
    let n = match *value {
        Cell::Int(n) => u64::try_from(n).map_err(|_| ParseError::OutOfRange)?,
        Cell::Text(t) => {
            if t.is_empty() || !t.iter().all(u8::is_ascii_digit) {
                return Err(ParseError::BadNumber);
            }
            t.iter()
                .try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
                .ok_or(ParseError::OutOfRange)?
        }
        Cell::Null => return Err(ParseError::BadValue),
    };
    if n > max {
        return Err(ParseError::OutOfRange);
    }
    Ok(n)
}

/// Start and end times: values of 13 digits or more are milliseconds, as
/// in text (docs/parsing.md).
fn seconds(n: u64) -> u64 {
    if n >= 1_000_000_000_000 {
        n / 1000
    } else {
        n
    }
}

fn addr(t: &[u8]) -> Result<IpAddr, ParseError> {
    std::str::from_utf8(t).ok().and_then(|s| s.parse().ok()).ok_or(ParseError::BadAddress)
}

fn action(t: &[u8]) -> Result<Action, ParseError> {
    match t {
        b"ACCEPT" => Ok(Action::Accept),
        b"REJECT" => Ok(Action::Reject),
        _ => Err(ParseError::BadValue),
    }
}

fn log_status(t: &[u8]) -> Result<LogStatus, ParseError> {
    match t {
        b"OK" => Ok(LogStatus::Ok),
        b"NODATA" => Ok(LogStatus::NoData),
        b"SKIPDATA" => Ok(LogStatus::SkipData),
        _ => Err(ParseError::BadValue),
    }
}

pub mod pages;

#[cfg(test)]
mod tests;
