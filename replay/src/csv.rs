//! CSV parameter sources, indexed rather than read whole.
//!
//! Opening a source reads the file once, front to back in 64 KiB pieces, checking that it is
//! UTF-8 and noting where each row starts (8 bytes a row). A row is read again from the file,
//! by position, when a virtual user takes it. The rules are RFC 4180's as ld has always read
//! them: fields in double quotes may hold commas, newlines and doubled quotes, a quote opens
//! a quoted run anywhere in a field, CR is dropped outside quotes, a UTF-8 byte order mark
//! is skipped, the first row names the columns, and empty lines are not rows.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The longest row, in bytes, quotes and line ending included.
pub(crate) const MAX_ROW_BYTES: u64 = 1024 * 1024;

/// Why a CSV source could not be opened.
#[derive(Debug)]
pub(crate) enum CsvError {
    Io(std::io::Error),
    /// The content breaks a rule: a message naming the file and the line.
    Content(String),
}

/// An opened CSV source: its columns and where its rows start.
#[derive(Debug)]
pub(crate) struct CsvFile {
    file: File,
    pub(crate) columns: Vec<String>,
    starts: Vec<u64>,
}

/// Where the scan is within a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Unquoted,
    Quoted,
    /// A quote inside quotes: a doubled quote if the next byte is one, else the closing one.
    QuotedQuote,
}

/// The scan of a whole file: one row at a time, noting starts and lengths.
struct Indexer {
    state: State,
    /// Offset of the current row's first byte.
    row_start: u64,
    /// Line of the current row's first byte (1-based).
    row_line: u64,
    /// The row holds a field separator or a character: it is not an empty line.
    content: bool,
    rows: u64,
    header: Option<u64>,
    starts: Vec<u64>,
}

impl Indexer {
    fn end_row(&mut self, next: u64) {
        if self.rows == 0 {
            self.header = Some(self.row_start);
        } else if self.content {
            self.starts.push(self.row_start);
        }
        self.rows += 1;
        self.row_start = next;
        self.content = false;
    }
}

impl CsvFile {
    /// Opens and indexes the CSV file at `path`. Errors are messages that name the file and,
    /// for its content, the line.
    pub(crate) fn open(path: &Path) -> Result<CsvFile, CsvError> {
        let mut file = File::open(path).map_err(CsvError::Io)?;
        let shown = path.display();
        let mut ix = Indexer {
            state: State::Unquoted,
            row_start: 0,
            row_line: 1,
            content: false,
            rows: 0,
            header: None,
            starts: Vec::new(),
        };
        let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024 + 4);
        let mut chunk = vec![0u8; 64 * 1024];
        // Offset of buf[0] in the file; line and column (in characters) of the next byte.
        let mut offset: u64 = 0;
        let mut line: u64 = 1;
        let mut column: u64 = 1;
        let mut head = [0u8; 3];
        let h = read_full(&mut file, &mut head).map_err(CsvError::Io)?;
        if head[..h] == *"\u{feff}".as_bytes() {
            offset = 3;
            column = 2;
            ix.row_start = 3;
        } else {
            buf.extend_from_slice(&head[..h]);
        }
        loop {
            let n = read_full(&mut file, &mut chunk).map_err(CsvError::Io)?;
            let eof = n == 0;
            buf.extend_from_slice(&chunk[..n]);
            let (valid, bad) = match std::str::from_utf8(&buf) {
                Ok(_) => (buf.len(), None),
                Err(e) if e.error_len().is_none() && !eof => (e.valid_up_to(), None),
                Err(e) => (e.valid_up_to(), Some(e.valid_up_to())),
            };
            for (i, &b) in buf[..valid].iter().enumerate() {
                let at = offset + i as u64;
                scan(&mut ix, b, at);
                if b == b'\n' {
                    line += 1;
                    column = 1;
                    if ix.row_start == at + 1 {
                        ix.row_line = line;
                    }
                } else if b & 0xC0 != 0x80 {
                    column += 1;
                }
                if at + 1 - ix.row_start > MAX_ROW_BYTES {
                    return Err(CsvError::Content(format!(
                        "{shown}:{}: a CSV row is longer than {MAX_ROW_BYTES} bytes (1 MiB), \
                         the most a row may be",
                        ix.row_line
                    )));
                }
            }
            if let Some(bad) = bad {
                return Err(CsvError::Content(format!(
                    "{shown}:{line}:{column}: invalid UTF-8 (byte 0x{:02x} at offset {})",
                    buf[bad],
                    offset + bad as u64
                )));
            }
            offset += valid as u64;
            buf.drain(..valid);
            if eof {
                break;
            }
        }
        if ix.content {
            ix.end_row(offset);
        }
        let columns = match ix.header {
            Some(start) => read_row(&file, start).map_err(CsvError::Io)?,
            None => Vec::new(),
        };
        Ok(CsvFile {
            file,
            columns,
            starts: ix.starts,
        })
    }

    /// How many rows the source has (the header not counted).
    pub(crate) fn len(&self) -> usize {
        self.starts.len()
    }

    /// Field `column` of row `row`; `None` past the end or when the file cannot be read.
    pub(crate) fn cell(&self, row: usize, column: usize) -> Option<String> {
        let start = *self.starts.get(row)?;
        let mut fields = read_row(&self.file, start).ok()?;
        (column < fields.len()).then(|| fields.swap_remove(column))
    }
}

/// One byte of the index scan.
fn scan(ix: &mut Indexer, b: u8, at: u64) {
    match ix.state {
        State::Quoted => {
            if b == b'"' {
                ix.state = State::QuotedQuote;
            } else {
                ix.content = true;
            }
            return;
        }
        State::QuotedQuote => {
            if b == b'"' {
                ix.content = true;
                ix.state = State::Quoted;
                return;
            }
            ix.state = State::Unquoted;
        }
        State::Unquoted => {}
    }
    match b {
        b'"' => ix.state = State::Quoted,
        b'\r' => {}
        b'\n' => ix.end_row(at + 1),
        _ => ix.content = true,
    }
}

/// Reads as much as fills `buf`, or up to the end of the file.
fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// Reads the row starting at `start`: pieces are read until its end.
fn read_row(file: &File, start: u64) -> std::io::Result<Vec<String>> {
    let mut buf = Vec::new();
    let mut piece = vec![0u8; 4096];
    loop {
        let n = loop {
            match read_at(file, &mut piece, start + buf.len() as u64) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                other => break other?,
            }
        };
        buf.extend_from_slice(&piece[..n]);
        if let Some(fields) = parse_row(&buf, n == 0) {
            return Ok(fields);
        }
        if buf.len() as u64 > MAX_ROW_BYTES + 4096 {
            return Err(std::io::Error::other(
                "the CSV file changed since it was opened",
            ));
        }
        if piece.len() < 64 * 1024 {
            piece.resize(piece.len() * 2, 0);
        }
    }
}

/// The fields of the row at the start of `bytes`; `None` when its end is not in `bytes` yet
/// and more may follow (`eof` false).
fn parse_row(bytes: &[u8], eof: bool) -> Option<Vec<String>> {
    let mut row = Vec::new();
    let mut field = Vec::new();
    let mut state = State::Unquoted;
    let text = |f: &mut Vec<u8>| match String::from_utf8(std::mem::take(f)) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    for &b in bytes {
        match state {
            State::Quoted => {
                if b == b'"' {
                    state = State::QuotedQuote;
                } else {
                    field.push(b);
                }
                continue;
            }
            State::QuotedQuote => {
                if b == b'"' {
                    field.push(b'"');
                    state = State::Quoted;
                    continue;
                }
                state = State::Unquoted;
            }
            State::Unquoted => {}
        }
        match b {
            b'"' => state = State::Quoted,
            b',' => row.push(text(&mut field)),
            b'\r' => {}
            b'\n' => {
                row.push(text(&mut field));
                return Some(row);
            }
            other => field.push(other),
        }
    }
    if !eof {
        return None;
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(text(&mut field));
    }
    Some(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reader ld had before sources were indexed: the whole text at once.
    fn parse_whole(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut rows = Vec::new();
        let mut row = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if quoted {
                match c {
                    '"' if chars.peek() == Some(&'"') => {
                        field.push('"');
                        chars.next();
                    }
                    '"' => quoted = false,
                    other => field.push(other),
                }
                continue;
            }
            match c {
                '"' => quoted = true,
                ',' => row.push(std::mem::take(&mut field)),
                '\r' => {}
                '\n' => {
                    row.push(std::mem::take(&mut field));
                    rows.push(std::mem::take(&mut row));
                }
                other => field.push(other),
            }
        }
        if !field.is_empty() || !row.is_empty() {
            row.push(field);
            rows.push(row);
        }
        let mut rows = rows.into_iter();
        let columns = rows.next().unwrap_or_default();
        let rows = rows
            .filter(|r| !(r.len() == 1 && r[0].is_empty()))
            .collect();
        (columns, rows)
    }

    fn open_text(bytes: &[u8]) -> Result<CsvFile, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.csv");
        std::fs::write(&path, bytes).expect("write");
        match CsvFile::open(&path) {
            Ok(csv) => Ok(csv),
            Err(CsvError::Content(m)) => Err(m.replace(&path.display().to_string(), "s.csv")),
            Err(CsvError::Io(e)) => Err(e.to_string()),
        }
    }

    fn rows_of(csv: &CsvFile) -> Vec<Vec<String>> {
        (0..csv.len())
            .map(|r| {
                let start = csv.starts[r];
                read_row(&csv.file, start).expect("row")
            })
            .collect()
    }

    #[test]
    fn rows_read_from_the_index_are_the_rows_of_the_whole_text() {
        let cases = [
            "a,b\r\n\"x,1\",\"say \"\"hi\"\"\"\n",
            "user,pw\nann,1\nbob,2",
            "user,pw\nann,\"multi\nline\"\n\nbob,2\r\n\r\n",
            "\u{feff}name\nzoë\n",
            "h\n\"\"\n\n,\nx\n",
            "h\n\"unterminated,\nstill",
            "",
            "\n\nh\n",
            "only a header",
            "a,\"b\"c\"d\"\n1,\"2\"\"\"\n",
            "a\n\"\"\"\"\n",
            "a\n\r\n\"\"\n",
            "a,b\n1,2\n3",
        ];
        for text in cases {
            let csv = open_text(text.as_bytes()).expect("opens");
            let (columns, rows) = parse_whole(text);
            assert_eq!(csv.columns, columns, "{text:?}");
            assert_eq!(rows_of(&csv), rows, "{text:?}");
        }
    }

    #[test]
    fn rows_across_read_pieces_and_cells() {
        let mut text = String::from("id,note\n");
        for i in 0..20_000 {
            text.push_str(&format!(
                "{i},\"line {i}\nwith \"\"quotes\"\", commas\"\r\n"
            ));
        }
        let csv = open_text(text.as_bytes()).expect("opens");
        let (columns, rows) = parse_whole(&text);
        assert_eq!(csv.columns, columns);
        assert_eq!(csv.len(), rows.len());
        assert_eq!(rows_of(&csv), rows);
        assert_eq!(csv.cell(12_345, 0).as_deref(), Some("12345"));
        assert_eq!(
            csv.cell(7, 1).as_deref(),
            Some("line 7\nwith \"quotes\", commas")
        );
        assert_eq!(csv.cell(7, 2), None);
        assert_eq!(csv.cell(20_000, 0), None);
    }

    #[test]
    fn invalid_utf8_gives_line_and_column() {
        let Err(e) = open_text(b"a,b\nok,\xff\n") else {
            panic!("invalid UTF-8 is an error");
        };
        assert_eq!(e, "s.csv:2:4: invalid UTF-8 (byte 0xff at offset 7)");
        // A character cut by a read piece is not an error.
        let mut text = "x".repeat(64 * 1024 - 1).into_bytes();
        text.extend_from_slice("\né\n".as_bytes());
        let mut t = b"h\n".to_vec();
        t.extend_from_slice(&text);
        assert!(open_text(&t).is_ok());
    }

    #[test]
    fn a_row_over_the_bound_names_its_line() {
        let mut text = String::from("h\nshort\n\"");
        text.push_str(&"x\n".repeat(600 * 1024));
        text.push_str("\"\n");
        let Err(e) = open_text(text.as_bytes()) else {
            panic!("a row past the bound is an error");
        };
        assert!(
            e.starts_with("s.csv:3: a CSV row is longer than 1048576 bytes"),
            "{e}"
        );
    }
}
