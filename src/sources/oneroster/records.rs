//! Splits CSV text into records, numbering lines as an editor does and refusing any record too
//! big to hold before it is held.
//!
//! The `csv` crate's reader grows its record buffer without bound (an unclosed quote swallows
//! the rest of the file) and counts only `\n` as a line break, after the `\r` of a CRLF has
//! already ended the record (so every row of a CRLF file came out one line early). This drives
//! `csv_core` directly instead: the buffers grow only up to the limits, and lines are counted
//! here, with `\r\n`, `\n` and a lone `\r` each one line break.

use std::io::{self, BufRead};

use csv_core::ReadRecordResult;

/// How big one record may grow while it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of field content in one record (quotes and delimiters not counted).
    pub max_record_bytes: usize,
    /// Fields in one record.
    pub max_columns: usize,
}

/// Why a record could not be read. `line` is where the record starts (1 = the first line).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("the row is longer than {limit} bytes (a quote that never closes?): the rest of the file is not read")]
    TooLong {
        line: u64,
        /// 0-based index of the field that was being read.
        field: usize,
        limit: usize,
    },
    #[error("the row has more than {limit} fields: the rest of the file is not read")]
    TooManyFields { line: u64, limit: usize },
    #[error("the value is not valid UTF-8")]
    NotUtf8 {
        line: u64,
        /// 0-based index of the offending field.
        field: usize,
    },
    #[error("cannot read the file: {source}")]
    Io { line: u64, source: io::Error },
}

impl RecordError {
    pub fn line(&self) -> u64 {
        match self {
            RecordError::TooLong { line, .. }
            | RecordError::TooManyFields { line, .. }
            | RecordError::NotUtf8 { line, .. }
            | RecordError::Io { line, .. } => *line,
        }
    }

    /// The 0-based field the error is about, when it is about one (for too many fields, the
    /// first one past the limit).
    pub fn field(&self) -> Option<usize> {
        match self {
            RecordError::TooLong { field, .. } | RecordError::NotUtf8 { field, .. } => Some(*field),
            RecordError::TooManyFields { limit, .. } => Some(*limit),
            RecordError::Io { .. } => None,
        }
    }

    /// Can reading go on with the next record? (Only a record that was read whole but is
    /// unusable leaves the reader at a record boundary.)
    pub fn is_recoverable(&self) -> bool {
        matches!(self, RecordError::NotUtf8 { .. })
    }
}

/// Buffers start this small and double up to the limits, so ordinary rows cost little.
const INITIAL_BYTES: usize = 4 << 10;
const INITIAL_FIELDS: usize = 64;

/// Reads records one at a time from buffered input.
pub struct Records<R> {
    input: R,
    core: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    limits: Limits,
    /// Line of the next unread byte.
    line: u64,
    /// Was the last byte counted a `\r`? (Then a `\n` right after it ends no further line.)
    after_cr: bool,
}

impl<R: BufRead> Records<R> {
    pub fn new(input: R, limits: Limits) -> Self {
        let limits = Limits {
            max_record_bytes: limits.max_record_bytes.max(1),
            max_columns: limits.max_columns.max(1),
        };
        Records {
            input,
            core: csv_core::Reader::new(),
            out: vec![0; INITIAL_BYTES.min(limits.max_record_bytes + 1)],
            ends: vec![0; INITIAL_FIELDS.min(limits.max_columns)],
            limits,
            line: 1,
            after_cr: false,
        }
    }

    /// Reads the next record into `record`, each field trimmed of surrounding white space.
    /// Returns the line it starts on, or `None` at the end of the input.
    pub fn read(&mut self, record: &mut csv::StringRecord) -> Result<Option<u64>, RecordError> {
        record.clear();
        let Some((line, row)) = self.read_row()? else {
            return Ok(None);
        };
        for field in row.iter() {
            record.push_field(field);
        }
        Ok(Some(line))
    }

    /// Reads the next record and returns the line it starts on with its fields, as they lie in
    /// this reader's buffer (each trimmed of surrounding white space); `None` at the end of the
    /// input. [`Self::read`] copies them out; a reader that takes each field once need not.
    pub fn read_row(&mut self) -> Result<Option<(u64, Row<'_>)>, RecordError> {
        self.skip_line_breaks()?;
        let line = self.line;
        let (mut nout, mut nend) = (0, 0);
        loop {
            let input = self
                .input
                .fill_buf()
                .map_err(|source| RecordError::Io { line, source })?;
            let (result, nin, o, e) =
                self.core
                    .read_record(input, &mut self.out[nout..], &mut self.ends[nend..]);
            count_lines(&input[..nin], &mut self.line, &mut self.after_cr);
            self.input.consume(nin);
            nout += o;
            nend += e;
            match result {
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => {
                    // The buffer holds one byte past the limit, so a full one is over it.
                    if self.out.len() > self.limits.max_record_bytes {
                        return Err(RecordError::TooLong {
                            line,
                            field: nend,
                            limit: self.limits.max_record_bytes,
                        });
                    }
                    let len = (self.out.len() * 2).min(self.limits.max_record_bytes + 1);
                    self.out.resize(len, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    if self.ends.len() >= self.limits.max_columns {
                        return Err(RecordError::TooManyFields {
                            line,
                            limit: self.limits.max_columns,
                        });
                    }
                    let len = (self.ends.len() * 2).min(self.limits.max_columns);
                    self.ends.resize(len, 0);
                }
                ReadRecordResult::Record => {
                    let ends = &self.ends[..nend];
                    return match whole_text(&self.out, ends) {
                        Some(text) => Ok(Some((line, Row { text, ends }))),
                        None => Err(RecordError::NotUtf8 {
                            line,
                            field: first_not_utf8(&self.out, ends),
                        }),
                    };
                }
                ReadRecordResult::End => return Ok(None),
            }
        }
    }

    /// Consumes the line breaks before a record (`csv_core` would skip them as empty lines), so
    /// that the record's line is the line of its first byte.
    fn skip_line_breaks(&mut self) -> Result<(), RecordError> {
        loop {
            let line = self.line;
            let input = self
                .input
                .fill_buf()
                .map_err(|source| RecordError::Io { line, source })?;
            let breaks = input
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            let more = breaks == input.len() && breaks > 0;
            count_lines(&input[..breaks], &mut self.line, &mut self.after_cr);
            self.input.consume(breaks);
            if !more {
                return Ok(());
            }
        }
    }
}

/// One record's fields, borrowed from the reader that read it ([`Records::read_row`]).
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    /// Every field's text, one after another.
    text: &'a str,
    /// Where each field ends in `text`.
    ends: &'a [usize],
}

impl<'a> Row<'a> {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The `index`th field, trimmed.
    pub fn get(&self, index: usize) -> Option<&'a str> {
        let end = *self.ends.get(index)?;
        let start = index.checked_sub(1).map_or(0, |before| self.ends[before]);
        Some(self.text[start..end].trim())
    }

    /// Every field, trimmed, in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let text = self.text;
        spans(self.ends).map(move |(start, end)| text[start..end].trim())
    }
}

/// Each field's (start, end), from where each ends.
fn spans(ends: &[usize]) -> impl Iterator<Item = (usize, usize)> + '_ {
    std::iter::once(0)
        .chain(ends.iter().copied())
        .zip(ends.iter().copied())
}

/// The first field that is not UTF-8 of a record whose whole text is not ([`whole_text`]).
fn first_not_utf8(out: &[u8], ends: &[usize]) -> usize {
    spans(ends)
        .position(|(start, end)| std::str::from_utf8(&out[start..end]).is_err())
        .unwrap_or(0)
}

/// A record's fields as one text, checked once (a check per field cost more in calls than in
/// bytes), when every field is UTF-8: the whole is, and no field ends inside a character.
fn whole_text<'a>(out: &'a [u8], ends: &[usize]) -> Option<&'a str> {
    let used = ends.last().copied().unwrap_or(0);
    let text = std::str::from_utf8(&out[..used]).ok()?;
    ends.iter()
        .all(|&end| text.is_char_boundary(end))
        .then_some(text)
}

/// Advances `line` over `bytes`: `\r\n`, `\n` and a lone `\r` each end one line.
fn count_lines(bytes: &[u8], line: &mut u64, after_cr: &mut bool) {
    let Some(&first) = bytes.first() else {
        return;
    };
    if !bytes.contains(&b'\r') {
        // Line feeds alone (nearly every file): counted in one pass, less the one that ends a
        // CRLF split across two reads.
        let feeds = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        *line += feeds - u64::from(*after_cr && first == b'\n');
        *after_cr = false;
        return;
    }
    for &b in bytes {
        if b == b'\r' || (b == b'\n' && !*after_cr) {
            *line += 1;
        }
        *after_cr = b == b'\r';
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOMY: Limits = Limits {
        max_record_bytes: 1 << 20,
        max_columns: 512,
    };

    fn lines_and_rows(text: &str) -> Vec<(u64, Vec<String>)> {
        let mut records = Records::new(text.as_bytes(), ROOMY);
        let mut record = csv::StringRecord::new();
        let mut out = Vec::new();
        while let Some(line) = records.read(&mut record).unwrap() {
            out.push((line, record.iter().map(str::to_string).collect()));
        }
        out
    }

    #[test]
    fn records_start_on_the_line_an_editor_shows() {
        // (text, expected (line, first field) of each record)
        let table: [(&str, &[(u64, &str)]); 9] = [
            ("h\na\nb\n", &[(1, "h"), (2, "a"), (3, "b")]),
            ("h\r\na\r\nb\r\n", &[(1, "h"), (2, "a"), (3, "b")]),
            ("h\ra\rb\r", &[(1, "h"), (2, "a"), (3, "b")]),
            ("h\r\na\r\nb", &[(1, "h"), (2, "a"), (3, "b")]),
            ("h\n\na\n\r\n\rb\n", &[(1, "h"), (3, "a"), (6, "b")]),
            ("h\n\"x\ny\",1\nb\n", &[(1, "h"), (2, "x\ny"), (4, "b")]),
            (
                "h\r\n\"x\r\ny\r\nz\",1\r\nb\r\n",
                &[(1, "h"), (2, "x\r\ny\r\nz"), (5, "b")],
            ),
            ("h\r\"x\ry\",1\rb\r", &[(1, "h"), (2, "x\ry"), (4, "b")]),
            ("\u{feff}h\r\na\n", &[(1, "h"), (2, "a")]),
        ];
        for (text, expected) in table {
            let got: Vec<(u64, String)> = lines_and_rows(text)
                .into_iter()
                .map(|(line, fields)| (line, fields[0].clone()))
                .collect();
            let expected: Vec<(u64, String)> =
                expected.iter().map(|&(l, f)| (l, f.to_string())).collect();
            assert_eq!(got, expected, "{text:?}");
        }
    }

    #[test]
    fn records_start_on_the_same_line_whatever_size_the_reads_come_in() {
        // Line breaks of every kind, a CRLF and quoted breaks among them: each size of read
        // splits some of them, a CRLF included, between two reads.
        let text = "h\r\na\n\n\"x\r\ny\",1\r\n\rb\r\n\nc\n\"p\nq\"\r\nd";
        let whole = lines_and_rows(text);
        assert_eq!(
            whole.iter().map(|(line, _)| *line).collect::<Vec<_>>(),
            [1, 2, 4, 7, 9, 10, 12]
        );
        for size in 1..=text.len() {
            let mut records =
                Records::new(io::BufReader::with_capacity(size, text.as_bytes()), ROOMY);
            let mut record = csv::StringRecord::new();
            let mut got = Vec::new();
            while let Some(line) = records.read(&mut record).unwrap() {
                got.push((line, record.iter().map(str::to_string).collect::<Vec<_>>()));
            }
            assert_eq!(got, whole, "reads of {size} bytes");
        }
    }

    #[test]
    fn a_row_lends_each_field_trimmed_and_none_past_its_last() {
        let mut records = Records::new(" a ,\"b, c\",,\u{e9} \n".as_bytes(), ROOMY);
        let (line, row) = records.read_row().unwrap().unwrap();
        assert_eq!(line, 1);
        assert_eq!(row.len(), 4);
        assert_eq!(row.iter().collect::<Vec<_>>(), ["a", "b, c", "", "\u{e9}"]);
        let got: Vec<Option<&str>> = (0..5).map(|i| row.get(i)).collect();
        assert_eq!(
            got,
            [Some("a"), Some("b, c"), Some(""), Some("\u{e9}"), None]
        );
        assert!(records.read_row().unwrap().is_none());
    }

    #[test]
    fn a_character_split_between_two_fields_is_refused_at_the_first() {
        // "é" is 0xC3 0xA9: the record's bytes read as one valid text, its fields do not.
        let text: &[u8] = b"a,b\nx\xc3,\xa9y\nok,1\n";
        let mut records = Records::new(text, ROOMY);
        let mut record = csv::StringRecord::new();
        assert_eq!(records.read(&mut record).unwrap(), Some(1));
        let error = records.read(&mut record).unwrap_err();
        assert!(
            matches!(error, RecordError::NotUtf8 { line: 2, field: 0 }),
            "{error}"
        );
        assert_eq!(records.read(&mut record).unwrap(), Some(3));
        let fields: Vec<&str> = record.iter().collect();
        assert_eq!(fields, ["ok", "1"]);
    }

    /// Yields `head` once, then `tail` forever, counting the bytes handed out.
    struct Endless {
        head: &'static [u8],
        tail: u8,
        given: u64,
    }

    impl io::Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = if (self.given as usize) < self.head.len() {
                let rest = &self.head[self.given as usize..];
                let n = rest.len().min(buf.len());
                buf[..n].copy_from_slice(&rest[..n]);
                n
            } else {
                buf.fill(self.tail);
                buf.len()
            };
            self.given += n as u64;
            Ok(n)
        }
    }

    #[test]
    fn endless_input_stops_at_the_limit_having_read_little_more() {
        const BUFFER: usize = 8 << 10;
        let limits = Limits {
            max_record_bytes: 64 << 10,
            max_columns: 512,
        };
        // An unclosed quote then line breaks forever; a header of commas forever.
        let cases: [(&[u8], u8, u64, Option<usize>); 3] = [
            (b"a,b\nx,\"", b'\n', 2, Some(1)),
            (b"a,b\r\nx,\"", b'\r', 2, Some(1)),
            (b"a", b',', 1, Some(512)),
        ];
        for (head, tail, line, field) in cases {
            let mut source = Endless {
                head,
                tail,
                given: 0,
            };
            let mut records =
                Records::new(io::BufReader::with_capacity(BUFFER, &mut source), limits);
            let mut record = csv::StringRecord::new();
            let error = loop {
                match records.read(&mut record) {
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("endless input ended"),
                    Err(e) => break e,
                }
            };
            drop(records);
            assert_eq!(error.line(), line, "{head:?}: {error}");
            assert_eq!(error.field(), field, "{head:?}: {error}");
            assert!(!error.is_recoverable());
            let expected = if head == b"a" {
                "more than 512 fields"
            } else {
                "longer than"
            };
            assert!(error.to_string().contains(expected), "{error}");
            let bound = (limits.max_record_bytes + BUFFER + head.len()) as u64;
            assert!(
                source.given <= bound,
                "{head:?}: read {} bytes, more than {bound}",
                source.given
            );
        }
    }

    #[test]
    fn a_record_within_the_limits_reads_whole_and_bad_utf8_skips_one_record() {
        let limits = Limits {
            max_record_bytes: 8,
            max_columns: 3,
        };
        let text: &[u8] = b"a,b,c\nabcd,efgh\n\xff,x\nok,1\n";
        let mut records = Records::new(text, limits);
        let mut record = csv::StringRecord::new();
        assert_eq!(records.read(&mut record).unwrap(), Some(1));
        assert_eq!(records.read(&mut record).unwrap(), Some(2));
        assert_eq!(&record[1], "efgh");
        let error = records.read(&mut record).unwrap_err();
        assert!(error.is_recoverable());
        assert_eq!((error.line(), error.field()), (3, Some(0)));
        assert_eq!(records.read(&mut record).unwrap(), Some(4));
        assert_eq!(&record[0], "ok");
        assert_eq!(records.read(&mut record).unwrap(), None);
        let error = Records::new(&b"a,b,c,d\n"[..], limits)
            .read(&mut record)
            .unwrap_err();
        assert!(matches!(error, RecordError::TooManyFields { line: 1, .. }));
    }
}
