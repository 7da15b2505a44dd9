//! Log formats: the ordered list of fields of a flow log, compiled once into a
//! table from column position to typed [`Slot`]. A format comes from a spec in
//! AWS `${field}` syntax (or a plain space-separated list of names), or from an
//! S3 header line (`version account-id ...`), which this module recognises.

use std::fmt;

use super::fields::{self, Slot};

/// A compiled log format: the ordered fields of `${...}` syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    /// Field names, hyphen form (`log_status` in a spec becomes `log-status`).
    fields: Vec<String>,
    /// Column position -> slot; same length as `fields`.
    slots: Vec<Slot>,
    /// The columns with a typed slot, in column order (the others are only
    /// located, not read).
    typed: Vec<(usize, Slot)>,
    /// The AWS default format (read by a dedicated fast path).
    default_v2: bool,
}

/// Error from compiling a format string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("the format has no fields")]
    Empty,
    #[error("bad token {0:?}: fields are written ${{field-name}}")]
    BadToken(String),
}

impl Format {
    /// The AWS default (version 2) format.
    pub const DEFAULT: &'static str = "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status}";

    pub fn default_v2() -> Format {
        Format::from_names(fields::KNOWN_FIELDS[..14].iter().map(|f| f.name.to_string()).collect())
    }

    /// Compiles a format string in AWS `${field}` syntax. Fields are separated
    /// by whitespace and may come in any order; a plain list of names without
    /// `${}` is accepted too, and `_` in a name reads as `-`. Names are
    /// lowercase letters, digits, `-` and `_`; names that AWS does not define
    /// are kept as ignored columns (see [`Format::unknown_fields`]).
    pub fn parse(spec: &str) -> Result<Format, FormatError> {
        let mut names = Vec::new();
        for token in spec.split_ascii_whitespace() {
            let name = match token.strip_prefix("${") {
                Some(rest) => rest.strip_suffix('}').ok_or_else(|| FormatError::BadToken(token.to_string()))?,
                None => token,
            };
            if !valid_name(name) {
                return Err(FormatError::BadToken(token.to_string()));
            }
            names.push(name.replace('_', "-"));
        }
        if names.is_empty() {
            return Err(FormatError::Empty);
        }
        Ok(Format::from_names(names))
    }

    /// The format named by an S3 header line, or `None` when the line is not
    /// a header: a header is made only of words of lowercase letters (and
    /// digits) joined by hyphens, at least one of them a known AWS field.
    pub(crate) fn from_header(line: &[u8]) -> Option<Format> {
        let text = header_text(line)?;
        Some(Format::from_names(header_words(text).map(str::to_string).collect()))
    }

    /// Whether the line is a header line (see [`Format::from_header`]),
    /// without building its format: no allocation.
    pub(crate) fn is_header(line: &[u8]) -> bool {
        header_text(line).is_some()
    }

    fn from_names(fields: Vec<String>) -> Format {
        let slots: Vec<Slot> = fields.iter().map(|n| fields::slot_of(n)).collect();
        let default_v2 =
            fields.len() == 14 && fields.iter().zip(fields::KNOWN_FIELDS).all(|(name, known)| name == known.name);
        let typed = slots
            .iter()
            .enumerate()
            .filter(|(_, s)| !matches!(s, Slot::Text | Slot::Unknown))
            .map(|(i, s)| (i, *s))
            .collect();
        Format { fields, slots, typed, default_v2 }
    }

    /// The columns that fill a typed field of the record, with their slot.
    pub(crate) fn typed_columns(&self) -> &[(usize, Slot)] {
        &self.typed
    }

    /// Whether this is the AWS default format, field for field.
    pub(crate) fn is_default_v2(&self) -> bool {
        self.default_v2
    }

    /// Field names that AWS does not define (kept as ignored columns), each
    /// once, in format order.
    pub fn unknown_fields(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for (name, slot) in self.fields.iter().zip(&self.slots) {
            if *slot == Slot::Unknown && !out.contains(&name.as_str()) {
                out.push(name);
            }
        }
        out
    }

    /// Whether the format has the named field (`tcp-flags`, `log-status`, ...).
    pub fn has_field(&self, name: &str) -> bool {
        self.fields.iter().any(|f| f == name)
    }

    /// The field names, in column order (hyphen form).
    pub fn fields(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.fields.iter().map(String::as_str)
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Never true for a compiled format; here for completeness.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub(crate) fn slots(&self) -> &[Slot] {
        &self.slots
    }

    pub(crate) fn names(&self) -> &[String] {
        &self.fields
    }
}

impl Default for Format {
    fn default() -> Format {
        Format::default_v2()
    }
}

/// The spec in `${field}` syntax, as accepted by [`Format::parse`].
impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "${{{name}}}")?;
        }
        Ok(())
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_'))
}

/// The line as text when it is a header line: only words of lowercase
/// letters and digits joined by hyphens, at least one a known AWS field.
/// Checked without allocating: a record of lowercase words (`eni-0abc
/// vpc-0def`) costs nothing.
fn header_text(line: &[u8]) -> Option<&str> {
    if !line.iter().all(|&b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b' ' | b'\t')) {
        return None;
    }
    // Only the bytes above pass, so the line is ASCII.
    let text = std::str::from_utf8(line).ok()?;
    if !header_words(text).all(header_word) || !header_words(text).any(|w| fields::field_id(w).is_some()) {
        return None;
    }
    Some(text)
}

fn header_words(text: &str) -> impl Iterator<Item = &str> {
    text.split([' ', '\t']).filter(|w| !w.is_empty())
}

/// `word(-word)*`, each word of lowercase letters and digits, starting with a letter.
fn header_word(word: &str) -> bool {
    word.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && word
            .split('-')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_format() {
        let f = Format::default_v2();
        assert_eq!(f, Format::parse(Format::DEFAULT).unwrap());
        assert_eq!(f.len(), 14);
        assert!(f.has_field("log-status"));
        assert!(!f.has_field("tcp-flags"));
        assert!(f.unknown_fields().is_empty());
        assert_eq!(f.to_string(), Format::DEFAULT);
        assert_eq!(Format::default(), f);
        assert!(f.is_default_v2());
        assert!(Format::parse("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status").unwrap().is_default_v2());
        assert!(!Format::parse("version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end log-status action").unwrap().is_default_v2());
        assert!(!Format::parse("version account-id").unwrap().is_default_v2());
    }

    #[test]
    fn plain_and_mixed_lists() {
        let a = Format::parse("${version} ${srcaddr}\t${tcp-flags}").unwrap();
        let b = Format::parse("version srcaddr tcp-flags").unwrap();
        let c = Format::parse("  version ${srcaddr}\n tcp_flags  ").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a.fields().collect::<Vec<_>>(), ["version", "srcaddr", "tcp-flags"]);
        assert_eq!(a.slots(), [Slot::Version, Slot::SrcAddr, Slot::TcpFlags]);
        let t = Format::parse("vpc-id srcport x-new log-status").unwrap();
        assert_eq!(t.typed_columns(), [(1, Slot::SrcPort), (3, Slot::LogStatus)]);
    }

    #[test]
    fn unknown_fields_are_kept_as_columns() {
        let f = Format::parse("${version} ${resource-id} ${srcaddr} ${resource-id} ${encryption-status}").unwrap();
        assert_eq!(f.len(), 5);
        assert_eq!(f.unknown_fields(), ["resource-id", "encryption-status"]);
        assert_eq!(f.slots()[1], Slot::Unknown);
    }

    #[test]
    fn errors() {
        assert_eq!(Format::parse(""), Err(FormatError::Empty));
        assert_eq!(Format::parse("  \n "), Err(FormatError::Empty));
        for bad in ["${version", "${}", "$version", "${a}${b}", "${Version}", "version,srcaddr", "${a b}", "{version}"]
        {
            assert!(matches!(Format::parse(bad), Err(FormatError::BadToken(_))), "{bad}");
        }
        let e = Format::parse("${version} ${Bad}").unwrap_err();
        assert_eq!(e.to_string(), "bad token \"${Bad}\": fields are written ${field-name}");
    }

    #[test]
    fn header_lines() {
        let h = Format::from_header(b"version account-id interface-id srcaddr").unwrap();
        assert_eq!(h.fields().collect::<Vec<_>>(), ["version", "account-id", "interface-id", "srcaddr"]);
        // Unknown words are fine as long as one word is a known field.
        let h = Format::from_header(b"version resource-id instance-tag-2").unwrap();
        assert_eq!(h.unknown_fields(), ["resource-id", "instance-tag-2"]);
        assert!(Format::is_header(b"version resource-id instance-tag-2"));
        for not in [
            &b"foo bar"[..],
            b"eni-0123 i-0abc",
            b"2 123456789010 eni-1 - - - - - - - 1 2 - NODATA",
            b"version Account-id",
            b"version -x",
            b"version x-",
            b"version a--b",
            b"version 9abc",
            b"version ${srcaddr}",
            b"version_x srcaddr_y",
        ] {
            assert_eq!(Format::from_header(not), None, "{:?}", String::from_utf8_lossy(not));
            assert!(!Format::is_header(not));
        }
    }
}
