//! JSON-object lines: a record that was already turned into JSON, keyed by
//! AWS field names (hyphen or underscore form). The object is streamed with
//! serde_json into a reusable scratch buffer as the text of each known field
//! (numbers written in decimal), so the typed fields are then read by the same
//! code as the text path. `null`, `"-"`, `""` and a missing key are "no value";
//! a repeated key keeps its last value; unknown keys are skipped whatever they hold.
//! The scratch buffer is capped ([`MAX_SCRATCH`]): a line of repeated keys
//! whose values grow when written (`1e308` is 309 digits) is
//! [`ParseError::TooLong`], so a parser's memory stays bounded.

use std::fmt;
use std::io::Write as _;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::fields::N_KNOWN;
use super::{ParseError, Span};

/// The most bytes of field text one JSON line may decode to: four times the
/// longest line, far above what any record needs (a repeated key appends).
pub(crate) const MAX_SCRATCH: usize = 4 * super::MAX_LINE_LEN;

/// The text of every known field of the last JSON line.
#[derive(Debug, Clone)]
pub(crate) struct Scratch {
    pub(crate) buf: Vec<u8>,
    /// Indexed like [`super::KNOWN_FIELDS`]; [`Span::ABSENT`] for no value.
    pub(crate) spans: [Span; N_KNOWN],
    /// A known key held something other than a string, a number or null.
    bad_value: bool,
    /// The object had at least one known key.
    any_key: bool,
    /// The text written went over [`MAX_SCRATCH`].
    too_long: bool,
}

impl Default for Scratch {
    fn default() -> Scratch {
        Scratch { buf: Vec::new(), spans: [Span::ABSENT; N_KNOWN], bad_value: false, any_key: false, too_long: false }
    }
}

impl Scratch {
    /// Reads one JSON object into the scratch buffer.
    pub(crate) fn read(&mut self, line: &[u8]) -> Result<(), ParseError> {
        self.buf.clear();
        self.spans = [Span::ABSENT; N_KNOWN];
        self.bad_value = false;
        self.any_key = false;
        self.too_long = false;
        let mut de = serde_json::Deserializer::from_slice(line);
        let read = de.deserialize_map(ObjectVisitor { out: self }).and_then(|()| de.end());
        match read {
            Ok(()) if !self.any_key => Err(ParseError::FieldCount),
            Ok(()) => Ok(()),
            Err(_) if self.too_long => Err(ParseError::TooLong),
            Err(_) if self.bad_value => Err(ParseError::BadValue),
            Err(_) => Err(ParseError::BadJson),
        }
    }

    /// Writes a field's text; `Err` once the buffer is over [`MAX_SCRATCH`].
    fn set_text(&mut self, id: usize, text: &[u8]) -> Result<(), ()> {
        let Some(span) = self.spans.get_mut(id) else { return Ok(()) };
        if text.is_empty() || text == b"-" {
            *span = Span::ABSENT;
            return Ok(());
        }
        let start = self.buf.len();
        if start.saturating_add(text.len()) > MAX_SCRATCH {
            self.too_long = true;
            return Err(());
        }
        self.buf.extend_from_slice(text);
        *span = Span::new(start, self.buf.len());
        Ok(())
    }

    fn set_display(&mut self, id: usize, value: impl fmt::Display) -> Result<(), ()> {
        let start = self.buf.len();
        // Writing to a Vec cannot fail; a number is at most a few hundred bytes.
        let _ = write!(self.buf, "{value}");
        if self.buf.len() > MAX_SCRATCH {
            self.too_long = true;
            return Err(());
        }
        if let Some(span) = self.spans.get_mut(id) {
            *span = Span::new(start, self.buf.len());
        }
        Ok(())
    }
}

struct ObjectVisitor<'s> {
    out: &'s mut Scratch,
}

impl<'de> Visitor<'de> for ObjectVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object keyed by flow-log field names")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let out = self.out;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match key {
                Some(id) => {
                    out.any_key = true;
                    map.next_value_seed(ValueSeed { out: &mut *out, id })?
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

fn too_long<E: de::Error>() -> E {
    E::custom("the field values are too long")
}

/// A key: the index of the known field it names, or `None`.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(super::fields::field_id(v))
    }
}

/// The value of a known field, written as text into the scratch buffer.
struct ValueSeed<'s> {
    out: &'s mut Scratch,
    id: usize,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl ValueSeed<'_> {
    fn reject<E: de::Error>(self) -> Result<(), E> {
        self.out.bad_value = true;
        Err(E::custom("a flow-log value is a string, a number or null"))
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, a number or null")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.out.set_text(self.id, v.as_bytes()).map_err(|()| too_long())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.out.set_display(self.id, v).map_err(|()| too_long())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.out.set_display(self.id, v).map_err(|()| too_long())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        // Display never uses an exponent: 1e30 is all digits (out of range
        // for a numeric field), 1.5 keeps its point (not a number).
        self.out.set_display(self.id, v).map_err(|()| too_long())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        if let Some(span) = self.out.spans.get_mut(self.id) {
            *span = Span::ABSENT;
        }
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.visit_unit()
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.reject()
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.reject()
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.reject()
    }
}
