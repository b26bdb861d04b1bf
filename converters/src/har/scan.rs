//! The fast path of the HAR import: the input is read in large chunks, the entries of
//! `log.entries` are found in them and parsed from the bytes in memory, on as many threads as
//! there are cores, and joined into the plan in file order.
//!
//! serde_json parses a slice several times faster than a reader (a reader is consumed byte by
//! byte, a slice is searched for the end of each string at once), but the whole file in memory
//! would double an import's peak memory. Here memory holds a few chunks, or one entry when an
//! entry is larger.
//!
//! Only the outer structure (keys, commas, brackets) is read here; entries are read in full on
//! worker threads (see `entry`, and serde_json for the unusual ones).
//! Whenever the input is anything but a well-formed document of the usual shape, the fast path
//! gives up ([`Unsure`]) and the caller imports with the streaming parser, so results and error
//! messages (line, column, what was expected) are exactly those of that parser. A well-formed
//! value parsed on its own gives what it gives parsed in place: a JSON value ends where its
//! outermost bracket closes, whatever follows, and the types the entries are read into nest
//! only a few levels deep (skipped values are not counted against serde_json's recursion limit;
//! see `model::take_nested_number` for the one exception), so the few levels of the document
//! around an entry make no difference.
//!
//! Entries are handed to the workers in batches, one chunk's worth each, and their results
//! taken back in order: the names of secrets, think times, the summary and where the import
//! stops (an error, entries out of order) are decided as the one-thread import decides them.
//! An import stops at the first entry, in file order, that stops it: entries found after it
//! may be parsed, but nothing of them is kept.
//!
//! Where the entries of a chunk end is not searched byte by byte: producers begin every entry
//! with the same key, so the last `,{"key":` of a chunk, with that key one found only at the top
//! of an entry (`startedDateTime`, `_resourceType`...), is taken for the start of an entry, and
//! the run of entries before it goes to a worker as one region. The worker reads the region's
//! entries one after the other, and checks that they fill it exactly. Read this way from a
//! known start, an entry ends where it ends; a guess inside an entry would cut that entry short,
//! which fails to parse, and the streaming parser imports the file instead. The entry that
//! straddles two chunks, and those at the end of the list, are found by their brackets.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Mutex, mpsc};

use super::{Outcome, StreamState, model};
use crate::output::{Drafts, Rules};
use crate::words;

/// Bytes read at a time.
pub(super) const CHUNK: usize = 1 << 20;
/// The largest single value the fast path holds in memory. A recording with a larger entry
/// (a video in a response body, say) is imported by the streaming parser, whose memory does not
/// grow with an entry's size.
const MAX_VALUE: usize = 64 << 20;
/// Batches of entries handed to the workers and not yet joined, at most: bounds memory.
const IN_FLIGHT: usize = 6;
/// Worker threads, at most.
const MAX_WORKERS: usize = 4;

/// The fast path gave up; the streaming parser decides.
#[derive(Debug)]
pub(super) struct Unsure;

/// Whether the import goes on after a value.
pub(super) enum Flow {
    Continue,
    /// The importer stopped at an entry (an error, or entries out of order).
    Stop,
}

/// Runs of entries (separated by commas) as byte ranges of a buffer.
type Ranges = Vec<(usize, usize)>;

/// Keys that stand only at the top of an entry, one of which producers write first in every
/// entry: a guess at where entries start (see the module's documentation).
const FIRST_KEYS: &[&[u8]] = &[
    b"startedDateTime",
    b"pageref",
    b"_initiator",
    b"_priority",
    b"_resourceType",
    b"request",
    b"cache",
    b"serverIPAddress",
    b"connection",
    b"timings",
];

/// Input read in chunks; `buf[pos..]` is what has not been scanned yet.
pub(super) struct Source<R> {
    reader: R,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    chunk: usize,
    /// Entries found in `buf` and not handed on yet.
    found: Ranges,
    /// Buffers of entries, with the entries' ranges, handed on by [`Source::fill`].
    full: Vec<(Vec<u8>, Ranges)>,
    /// Emptied buffers, to read into again.
    spare: Vec<Vec<u8>>,
    /// Finds `"key"` of the first key of the entries (see the module's documentation).
    first_key: Option<memchr::memmem::FinderRev<'static>>,
    /// No entry is known to start in `buf` after `pos`.
    no_start: bool,
}

impl<R: Read> Source<R> {
    pub(super) fn new(reader: R) -> Source<R> {
        Source::with_chunk(reader, CHUNK)
    }

    pub(super) fn with_chunk(reader: R, chunk: usize) -> Source<R> {
        Source {
            reader,
            buf: Vec::new(),
            pos: 0,
            eof: false,
            chunk,
            found: Vec::new(),
            full: Vec::new(),
            spare: Vec::new(),
            first_key: None,
            no_start: false,
        }
    }

    /// Skips a UTF-8 byte order mark at the start.
    pub(super) fn skip_bom(&mut self) -> Result<(), Unsure> {
        while self.buf.len() - self.pos < super::BOM.len() && !self.eof {
            self.fill()?;
        }
        if self.buf[self.pos..].starts_with(super::BOM) {
            self.pos += super::BOM.len();
        }
        Ok(())
    }

    /// Drops what has been scanned and reads more: at least a chunk, and as much as is already
    /// held, so that a value larger than a chunk is scanned again only a few times. Entries
    /// found and not handed on yet leave with the buffer that holds them (see `full`).
    fn fill(&mut self) -> Result<(), Unsure> {
        self.no_start = false;
        if !self.found.is_empty() {
            let mut next = self.spare.pop().unwrap_or_default();
            next.clear();
            next.extend_from_slice(self.buf.get(self.pos..).unwrap_or_default());
            let full = std::mem::replace(&mut self.buf, next);
            self.full.push((full, std::mem::take(&mut self.found)));
            self.pos = 0;
        } else if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let start = self.buf.len();
        let want = self.chunk.max(start);
        if start + want > MAX_VALUE + self.chunk {
            return Err(Unsure);
        }
        // Read into the spare capacity, which is never zeroed first.
        self.buf.reserve(want);
        let read = (&mut self.reader)
            .take(want as u64)
            .read_to_end(&mut self.buf)
            // The streaming parser reads again and reports the error.
            .map_err(|_| Unsure)?;
        if read < want {
            self.eof = true;
        }
        Ok(())
    }

    /// The entries found and not handed on yet, copied out of `buf`, which reads on.
    fn take_found(&mut self) -> Option<(Vec<u8>, Ranges)> {
        let first = self.found.first()?.0;
        let last = self.found.last()?.1;
        let mut bytes = self.spare.pop().unwrap_or_default();
        bytes.clear();
        bytes.extend_from_slice(self.buf.get(first..last)?);
        let ranges = self
            .found
            .drain(..)
            .map(|(from, to)| (from - first, to - first))
            .collect();
        Some((bytes, ranges))
    }

    /// The next byte that is not JSON whitespace (left unconsumed), or `None` at the end.
    fn peek(&mut self) -> Result<Option<u8>, Unsure> {
        loop {
            while let Some(&b) = self.buf.get(self.pos) {
                if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                    return Ok(Some(b));
                }
                self.pos += 1;
            }
            if self.eof {
                return Ok(None);
            }
            self.fill()?;
        }
    }

    /// Consumes `byte`, after whitespace.
    fn expect(&mut self, byte: u8) -> Result<(), Unsure> {
        if self.peek()? != Some(byte) {
            return Err(Unsure);
        }
        self.pos += 1;
        Ok(())
    }

    /// Parses the value that starts at the next non-whitespace byte and consumes it.
    ///
    /// serde_json finds where the value ends. A value cut short by the end of the buffer gives
    /// an error (or, for a number, possibly a shorter number), so on any error, and on a value
    /// that is not self-delimited (`{`, `[`, `"`) ending at the end of the buffer, more input
    /// is read and the value parsed again; only at the end of the input is an error final.
    fn parse<T: serde::de::DeserializeOwned>(&mut self) -> Result<T, Unsure> {
        let first = self.peek()?.ok_or(Unsure)?;
        let delimited = matches!(first, b'{' | b'[' | b'"');
        loop {
            let rest = &self.buf[self.pos..];
            let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<T>();
            if let Some(Ok(value)) = values.next() {
                let end = values.byte_offset();
                if delimited || end < rest.len() || self.eof {
                    self.pos += end;
                    return Ok(value);
                }
            }
            if self.eof {
                return Err(Unsure);
            }
            self.fill()?;
        }
    }

    /// Consumes a value that the import does not read, checking it as the streaming parser
    /// does while skipping it.
    fn skip(&mut self) -> Result<(), Unsure> {
        self.parse::<serde::de::IgnoredAny>().map(|_| ())
    }

    /// Learns the first key of the entry at `pos`, if it is one of [`FIRST_KEYS`].
    fn learn_first_key(&mut self) {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let Some(rest) = rest.strip_prefix(b"{") else {
            return;
        };
        let rest = rest.trim_ascii_start();
        let Some(key) = FIRST_KEYS.iter().find(|key| {
            rest.strip_prefix(b"\"")
                .and_then(|r| r.strip_prefix(**key))
                .is_some_and(|r| r.starts_with(b"\""))
        }) else {
            return;
        };
        let mut quoted = Vec::with_capacity(key.len() + 2);
        quoted.push(b'"');
        quoted.extend_from_slice(key);
        quoted.push(b'"');
        self.first_key = Some(memchr::memmem::FinderRev::new(&quoted).into_owned());
    }

    /// The last place after `pos` in `buf` where an entry seems to start: `,`, `{` and the first
    /// key, whitespace between, and a colon after the key. `(comma, brace)`.
    fn next_start(&mut self) -> Option<(usize, usize)> {
        if self.no_start {
            return None;
        }
        // Past the guess taken, or with none found, `buf` holds no other.
        self.no_start = true;
        let finder = self.first_key.as_ref()?;
        let from = self.pos + 1;
        let space = |b: &u8| matches!(b, b' ' | b'\n' | b'\t' | b'\r');
        for at in finder.rfind_iter(self.buf.get(from..)?) {
            let key = from + at;
            let after = self
                .buf
                .get(key + finder.needle().len()..)
                .unwrap_or_default();
            if after.iter().find(|b| !space(b)) != Some(&b':') {
                continue;
            }
            let before = self.buf.get(..key).unwrap_or_default();
            let Some(brace) = before.iter().rposition(|b| !space(b)) else {
                continue;
            };
            if before.get(brace) != Some(&b'{') {
                continue;
            }
            let Some(comma) = before
                .get(..brace)
                .and_then(|b| b.iter().rposition(|b| !space(b)))
            else {
                continue;
            };
            if before.get(comma) == Some(&b',') && comma > self.pos {
                return Some((comma, brace));
            }
        }
        None
    }

    /// Notes the entries up to the last one found to start in `buf` (see
    /// [`Source::next_start`]) as a region, and moves to that one; `false` if there is none.
    fn region(&mut self) -> bool {
        let Some((comma, brace)) = self.next_start() else {
            return false;
        };
        self.found.push((self.pos, comma));
        self.pos = brace;
        true
    }

    /// Consumes the array or object that starts at the next byte, without parsing it, and
    /// notes it among the entries found.
    fn entry(&mut self) -> Result<(), Unsure> {
        loop {
            if let Some(len) = value_len(self.buf.get(self.pos..).unwrap_or_default()) {
                self.found.push((self.pos, self.pos + len));
                self.pos += len;
                return Ok(());
            }
            if self.eof {
                return Err(Unsure);
            }
            self.fill()?;
        }
    }

    /// Consumes an object key and its colon.
    fn key(&mut self) -> Result<Key, Unsure> {
        if self.peek()? != Some(b'"') {
            return Err(Unsure);
        }
        let end = loop {
            if let Some(end) = string_end(&self.buf[self.pos..], 1) {
                break end;
            }
            if self.eof {
                return Err(Unsure);
            }
            self.fill()?;
        };
        let inner = self
            .buf
            .get(self.pos + 1..self.pos + end - 1)
            .ok_or(Unsure)?;
        // Escapes would need decoding, and a key is parsed as text: both rare, both left to
        // the parser.
        if inner.iter().any(|&b| b == b'\\' || b < 0x20) || std::str::from_utf8(inner).is_err() {
            return Err(Unsure);
        }
        let key = match inner {
            b"log" => Key::Log,
            b"creator" => Key::Creator,
            b"entries" => Key::Entries,
            _ => Key::Other,
        };
        self.pos += end;
        self.expect(b':')?;
        Ok(key)
    }

    /// After a member of an object or array: `true` for a comma, `false` for `close`.
    fn next_member(&mut self, close: u8) -> Result<bool, Unsure> {
        match self.peek()? {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(b) if b == close => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(Unsure),
        }
    }
}

#[derive(PartialEq, Eq)]
enum Key {
    Log,
    Creator,
    Entries,
    Other,
}

/// Entries for a worker: a buffer and where its entries stand in it.
struct Batch {
    /// Batches are numbered in file order from 0.
    seq: usize,
    /// mitmproxy's way with binary bodies (see `is_mitmproxy`).
    latin1: bool,
    bytes: Vec<u8>,
    ranges: Ranges,
    /// Where the tasks are drafted.
    drafts: Drafts,
}

/// A batch done.
struct Worked {
    seq: usize,
    /// One per entry, in order, up to the first that ends the import or the fast path.
    items: Vec<Item>,
    drafts: Drafts,
    /// The batch's buffer, for reuse.
    bytes: Vec<u8>,
}

enum Item {
    Entry(super::Prepared),
    /// The entry is not what the fast path reads: the streaming parser decides.
    Unsure,
}

/// A worker's report: the batch done, or what it panicked with.
type Report = (usize, std::thread::Result<Worked>);

/// Parses and prepares a batch's entries.
fn work(rules: Rules<'_>, batch: Batch) -> Worked {
    let Batch {
        seq,
        latin1,
        bytes,
        ranges,
        mut drafts,
    } = batch;
    drafts.clear();
    let mut items = Vec::new();
    'regions: for &(from, to) in &ranges {
        let region = bytes.get(from..to).unwrap_or_default();
        // Checked whole, the region's strings need no check of their own.
        let text = std::str::from_utf8(region).ok();
        let mut at = 0;
        loop {
            let Some((entry, end)) = read_entry(region, text, at) else {
                items.push(Item::Unsure);
                break 'regions;
            };
            let prepared = super::prepare(rules, &entry, latin1, &mut drafts);
            let stop = matches!(prepared.outcome, Outcome::BadUrl(_));
            items.push(Item::Entry(prepared));
            if stop {
                break 'regions;
            }
            // The next entry, after a comma, or the end of the region.
            at = skip_space(region, end);
            if at == region.len() {
                break;
            }
            if region.get(at) != Some(&b',') {
                items.push(Item::Unsure);
                break 'regions;
            }
            at = skip_space(region, at + 1);
        }
    }
    Worked {
        seq,
        items,
        drafts,
        bytes,
    }
}

/// The entry at `at` in `region`, and where it ends: read by hand when it has the usual shape,
/// by serde_json otherwise.
fn read_entry<'a>(
    region: &'a [u8],
    text: Option<&'a str>,
    at: usize,
) -> Option<(model::Entry<model::Str<'a>>, usize)> {
    let rest = region.get(at..)?;
    // An entry is an object (or, to serde, a struct written as an array); anything else is an
    // error that the streaming parser reports.
    if !matches!(rest.first(), Some(b'{' | b'[')) {
        return None;
    }
    if let Some(read) = super::entry::read_at(region, text, at) {
        return Some(read);
    }
    model::take_nested_number();
    let mut values =
        serde_json::Deserializer::from_slice(rest).into_iter::<model::Entry<model::Str<'_>>>();
    match values.next() {
        Some(Ok(entry)) if !model::take_nested_number() => Some((entry, at + values.byte_offset())),
        _ => None,
    }
}

/// The index of the first byte at or after `at` that is not JSON whitespace.
fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\t' | b'\r') = bytes.get(at) {
        at += 1;
    }
    at
}

/// A worker thread: batches until there are no more.
fn worker(rules: Rules<'_>, jobs: &Mutex<mpsc::Receiver<Batch>>, done: mpsc::Sender<Report>) {
    loop {
        let batch = match jobs.lock() {
            Ok(jobs) => match jobs.recv() {
                Ok(batch) => batch,
                Err(_) => return,
            },
            Err(_) => return,
        };
        let seq = batch.seq;
        // A panic goes back to the importing thread, which would otherwise wait for this
        // batch for ever.
        let worked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(rules, batch)));
        if done.send((seq, worked)).is_err() {
            return;
        }
    }
}

/// How the entries joined so far end the import.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Joined {
    /// Every entry joined the plan (or was dropped): the import goes on.
    Clean,
    /// An entry stopped the import; the state holds why.
    Stopped,
    /// An entry is left to the streaming parser.
    Unsure,
}

/// Hands batches to the workers (or prepares them itself, without workers) and joins their
/// results in file order.
struct Pipeline<'p> {
    rules: Rules<'p>,
    /// `None` without workers.
    jobs: Option<mpsc::Sender<Batch>>,
    done: mpsc::Receiver<Report>,
    /// For the entries found from now on.
    latin1: bool,
    /// The number of the next batch handed on, and of the next to be joined.
    next_batch: usize,
    next_join: usize,
    /// Batches done ahead of their turn.
    waiting: BTreeMap<usize, Worked>,
    in_flight: usize,
    joined: Joined,
    spare_drafts: Vec<Drafts>,
}

impl Pipeline<'_> {
    /// Hands on the buffers the source filled with entries.
    fn hand_on<R>(&mut self, src: &mut Source<R>, state: &mut StreamState<'_>) {
        for (bytes, ranges) in std::mem::take(&mut src.full) {
            self.send(bytes, ranges, state, &mut src.spare);
        }
    }

    fn send(
        &mut self,
        bytes: Vec<u8>,
        ranges: Ranges,
        state: &mut StreamState<'_>,
        spare: &mut Vec<Vec<u8>>,
    ) {
        if self.joined != Joined::Clean {
            // The outcome is known: later entries change nothing.
            spare.push(bytes);
            return;
        }
        let batch = Batch {
            seq: self.next_batch,
            latin1: self.latin1,
            bytes,
            ranges,
            drafts: self.spare_drafts.pop().unwrap_or_default(),
        };
        self.next_batch += 1;
        let batch = match &self.jobs {
            Some(jobs) => match jobs.send(batch) {
                Ok(()) => {
                    self.in_flight += 1;
                    None
                }
                Err(mpsc::SendError(batch)) => Some(batch),
            },
            None => Some(batch),
        };
        if let Some(batch) = batch {
            let worked = work(self.rules, batch);
            self.join(worked, state, spare);
        }
        while let Ok(report) = self.done.try_recv() {
            self.receive(report, state, spare);
        }
        while self.in_flight >= IN_FLIGHT {
            self.wait(state, spare);
        }
    }

    /// Waits for a batch to be done.
    fn wait(&mut self, state: &mut StreamState<'_>, spare: &mut Vec<Vec<u8>>) {
        match self.done.recv() {
            Ok(report) => self.receive(report, state, spare),
            Err(_) => {
                // No worker left: not reached, as workers end only once `jobs` is closed.
                self.in_flight = 0;
                self.joined = Joined::Unsure;
            }
        }
    }

    fn receive(&mut self, report: Report, state: &mut StreamState<'_>, spare: &mut Vec<Vec<u8>>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        match report.1 {
            Ok(worked) => self.join(worked, state, spare),
            Err(panic) => {
                self.jobs = None;
                std::panic::resume_unwind(panic);
            }
        }
    }

    /// Joins the batches done up to the next one not done.
    fn join(&mut self, worked: Worked, state: &mut StreamState<'_>, spare: &mut Vec<Vec<u8>>) {
        self.waiting.insert(worked.seq, worked);
        while let Some(worked) = self.waiting.remove(&self.next_join) {
            self.next_join += 1;
            for item in worked.items {
                if self.joined != Joined::Clean {
                    break;
                }
                match item {
                    Item::Entry(prepared) => {
                        if !state.take(prepared, &worked.drafts) {
                            self.joined = Joined::Stopped;
                        }
                    }
                    Item::Unsure => self.joined = Joined::Unsure,
                }
            }
            spare.push(worked.bytes);
            self.spare_drafts.push(worked.drafts);
        }
    }

    /// Waits for every batch handed on; how the entries end the import.
    fn finish(mut self, state: &mut StreamState<'_>, spare: &mut Vec<Vec<u8>>) -> Joined {
        // Workers end once the last batch is taken.
        self.jobs = None;
        while self.in_flight > 0 {
            self.wait(state, spare);
        }
        self.joined
    }

    /// After handing batches on: whether to go on.
    fn flow(&self) -> Result<Flow, Unsure> {
        match self.joined {
            Joined::Clean => Ok(Flow::Continue),
            Joined::Stopped => Ok(Flow::Stop),
            Joined::Unsure => Err(Unsure),
        }
    }
}

/// Imports the document into `state`: `Ok` when `state` holds the outcome (the import went
/// through, or stopped at an entry), `Unsure` when the streaming parser must decide.
pub(super) fn import<R: Read>(
    mut src: Source<R>,
    state: &mut StreamState<'_>,
) -> Result<(), Unsure> {
    if src.buf.len() == src.pos && !src.eof {
        src.fill()?;
    }
    // An input read whole at once (a small one) is imported without threads.
    let workers = if src.eof {
        0
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_WORKERS))
    };
    let secrets = state.builder.secret_rules().clone();
    let rules = Rules::new(state.builder.options(), &secrets);
    let (jobs, queue) = mpsc::channel::<Batch>();
    let queue = Mutex::new(queue);
    let (report, done) = mpsc::channel::<Report>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (queue, report) = (&queue, report.clone());
            scope.spawn(move || worker(rules, queue, report));
        }
        drop(report);
        let mut pipeline = Pipeline {
            rules,
            jobs: (workers > 0).then_some(jobs),
            done,
            latin1: false,
            next_batch: 0,
            next_join: 0,
            waiting: BTreeMap::new(),
            in_flight: 0,
            joined: Joined::Clean,
            spare_drafts: Vec::new(),
        };
        let scanned = document(&mut src, state, &mut pipeline);
        // Entries found before the scan ended are joined whatever the scan found after them:
        // one of them may stop the import first.
        pipeline.hand_on(&mut src, state);
        if let Some((bytes, ranges)) = src.take_found() {
            pipeline.send(bytes, ranges, state, &mut src.spare);
        }
        match pipeline.finish(state, &mut src.spare) {
            Joined::Stopped => Ok(()),
            Joined::Unsure => Err(Unsure),
            Joined::Clean => scanned.map(|_| ()),
        }
    })
}

/// Reads the document: what the serde visitors in the parent module do, in the same order.
fn document<R: Read>(
    src: &mut Source<R>,
    state: &mut StreamState<'_>,
    pipeline: &mut Pipeline<'_>,
) -> Result<Flow, Unsure> {
    src.expect(b'{')?;
    let mut seen_log = false;
    loop {
        let key = src.key()?;
        if key == Key::Log && !seen_log {
            seen_log = true;
            if let Flow::Stop = log(src, state, pipeline)? {
                return Ok(Flow::Stop);
            }
        } else {
            src.skip()?;
        }
        if !src.next_member(b'}')? {
            break;
        }
    }
    // Anything after the document is not read, as by the streaming parser.
    if seen_log {
        Ok(Flow::Continue)
    } else {
        Err(Unsure)
    }
}

fn log<R: Read>(
    src: &mut Source<R>,
    state: &mut StreamState<'_>,
    pipeline: &mut Pipeline<'_>,
) -> Result<Flow, Unsure> {
    src.expect(b'{')?;
    let mut seen_entries = false;
    loop {
        match src.key()? {
            Key::Creator => {
                let creator: Option<model::Creator> = src.parse()?;
                state.latin1 = super::is_mitmproxy(creator.as_ref());
            }
            Key::Entries if !seen_entries => {
                seen_entries = true;
                pipeline.latin1 = state.latin1;
                if let Flow::Stop = entries(src, state, pipeline)? {
                    return Ok(Flow::Stop);
                }
            }
            _ => src.skip()?,
        }
        if !src.next_member(b'}')? {
            break;
        }
    }
    if seen_entries {
        Ok(Flow::Continue)
    } else {
        Err(Unsure)
    }
}

fn entries<R: Read>(
    src: &mut Source<R>,
    state: &mut StreamState<'_>,
    pipeline: &mut Pipeline<'_>,
) -> Result<Flow, Unsure> {
    src.expect(b'[')?;
    if src.peek()? == Some(b']') {
        src.pos += 1;
        return Ok(Flow::Continue);
    }
    if src.peek()? == Some(b'{') {
        src.learn_first_key();
    }
    loop {
        // An entry is an object (or, to serde, a struct written as an array); anything else is
        // an error that the streaming parser reports.
        if !matches!(src.peek()?, Some(b'{' | b'[')) {
            return Err(Unsure);
        }
        let more = src.region() || {
            src.entry()?;
            src.next_member(b']')?
        };
        pipeline.hand_on(src, state);
        if let Flow::Stop = pipeline.flow()? {
            return Ok(Flow::Stop);
        }
        if !more {
            break;
        }
    }
    if let Some((bytes, ranges)) = src.take_found() {
        pipeline.send(bytes, ranges, state, &mut src.spare);
    }
    pipeline.flow()
}

/// The length of the array or object at the start of `bytes`, found by its brackets outside
/// strings, or `None` when it does not end in `bytes`. Nothing else is checked: the value is
/// parsed afterwards.
fn value_len(bytes: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        i += 1;
        match b {
            b'"' => i = string_end(bytes, i)?,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// The index just past the `"` that closes the string whose content starts at `from`.
fn string_end(bytes: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let at = from + quote_or_backslash(bytes.get(from..)?)?;
        if bytes.get(at) == Some(&b'"') {
            return Some(at + 1);
        }
        // A backslash and the byte it escapes (the hex digits of `\u` are plain bytes).
        from = at + 2;
    }
}

/// The index of the first `"` or `\` in `bytes`.
fn quote_or_backslash(bytes: &[u8]) -> Option<usize> {
    // Most strings of a HAR are short (names, header values): a word at a time, before the
    // setup of a vectorized search pays off.
    for i in [0, 8] {
        let Some(x) = words::word(bytes, i) else {
            return bytes.iter().position(|&b| b == b'"' || b == b'\\');
        };
        let found = words::equal(x, b'"') | words::equal(x, b'\\');
        if found != 0 {
            return Some(i + words::first(found));
        }
    }
    memchr::memchr2(b'"', b'\\', bytes.get(16..)?).map(|at| 16 + at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ImportOptions;

    #[test]
    fn strings_are_delimited() {
        assert_eq!(string_end(br#""a\"b" , 1"#, 1), Some(6));
        assert_eq!(string_end(br#""a\\" ]"#, 1), Some(5));
        assert_eq!(string_end(br#""a\"#, 1), None);
        assert_eq!(string_end(br#""abc"#, 1), None);
    }

    #[test]
    fn quotes_and_backslashes_are_found_first() {
        let pieces: &[u8] = b"a\"\\\x00\x7f\x80\xff\x22\x5c!#[]{}";
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            crate::test_rand::step(&mut seed);
            let len = (seed % 80) as usize;
            // Mostly plain bytes, so that the first match falls anywhere.
            let bytes: Vec<u8> = (0..len)
                .map(|i| {
                    let r = (seed >> (i % 57)) as usize + i * 31;
                    if r.is_multiple_of(23) {
                        pieces[r % pieces.len()]
                    } else {
                        (b'a' + (r % 26) as u8) | (r as u8 & 0x80)
                    }
                })
                .collect();
            let naive = bytes.iter().position(|&b| b == b'"' || b == b'\\');
            assert_eq!(quote_or_backslash(&bytes), naive, "{bytes:?}");
        }
    }

    /// `value_len` as a byte at a time reads it.
    fn naive_value_len(bytes: &[u8]) -> Option<usize> {
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        for (i, &b) in bytes.iter().enumerate() {
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        return Some(i + 1);
                    }
                }
                _ => {}
            }
        }
        None
    }

    #[test]
    fn values_end_where_their_brackets_close() {
        let pieces: &[&[u8]] = &[
            b"{",
            b"}",
            b"[",
            b"]",
            b"\"",
            b"\\",
            b"\\\"",
            b"a",
            b"abcdefghijklmnop",
            b",",
            b":",
            b" ",
            b"\xc3\xa9",
            b"{\"k\": \"v\"}",
            b"[1, 2]",
            b"\"}]\"",
            b"\x7b",
            b"\x5d",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut ended = 0;
        for _ in 0..50_000 {
            crate::test_rand::step(&mut seed);
            let mut bytes = if seed.is_multiple_of(2) {
                b"{".to_vec()
            } else {
                b"[".to_vec()
            };
            for i in 0..(seed % 40) {
                bytes.extend_from_slice(
                    pieces[((seed >> (i % 50)) as usize + i as usize * 7) % pieces.len()],
                );
            }
            assert_eq!(
                value_len(&bytes),
                naive_value_len(&bytes),
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
            ended += usize::from(value_len(&bytes).is_some());
        }
        assert!(ended > 5000, "{ended}");
    }

    /// The outcome of an import as text, to compare the two paths.
    fn outcome(result: crate::Result<crate::Import>) -> String {
        match result {
            Ok(import) => format!(
                "{}\n{:?}\n{:?}",
                import.to_json_string(),
                import.summary,
                import.secrets
            ),
            Err(e) => format!("error: {e}"),
        }
    }

    fn compare(bytes: &[u8], options: &ImportOptions, chunk: usize) {
        let text = bytes.strip_prefix(super::super::BOM).unwrap_or(bytes);
        let streamed = outcome(super::super::import_streaming("t.har", text, options));
        let fast = outcome(super::super::import_with_chunk(
            "t.har", bytes, options, chunk,
        ));
        if fast != streamed {
            panic!(
                "chunk {chunk}\nfast:      {}\nstreaming: {}\ninput: {}",
                fast.chars().take(600).collect::<String>(),
                streamed.chars().take(600).collect::<String>(),
                String::from_utf8_lossy(bytes)
            );
        }
    }

    fn fixtures() -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/har");
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .expect("fixtures/har")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "har"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read(p).expect("fixture"))
            .collect()
    }

    #[test]
    fn fixtures_take_the_fast_path_with_any_chunk_size() {
        let options = ImportOptions::default();
        for bytes in fixtures() {
            let text = bytes.strip_prefix(super::super::BOM).unwrap_or(&bytes);
            for chunk in [1, 7, 64, 4096, CHUNK] {
                let fast = super::super::fast(Source::with_chunk(text, chunk), "t.har", &options);
                assert!(fast.is_some(), "chunk {chunk}");
                compare(&bytes, &options, chunk);
            }
        }
    }

    /// Damaged copies of the fixtures give what the streaming parser gives, plan or error.
    #[test]
    fn damaged_documents_match_the_streaming_parser() {
        let options = ImportOptions {
            think_time: true,
            ..ImportOptions::default()
        };
        let replacements: &[&[u8]] = &[
            b"",
            b"\"",
            b"\\",
            b"{",
            b"}",
            b"[",
            b"]",
            b",",
            b":",
            b" ",
            b"x",
            b"0",
            b"\x00",
            b"\xff",
            b"\"log\"",
            b"\"entries\"",
            b"null",
            b"{}",
            b"[]",
            b"\"\\u0041\"",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            crate::test_rand::step(&mut seed);
            (seed % n as u64) as usize
        };
        for bytes in fixtures() {
            for _ in 0..150 {
                let at = next(bytes.len());
                let len = next(4);
                let with = replacements[next(replacements.len())];
                let mut damaged = bytes[..at].to_vec();
                damaged.extend_from_slice(with);
                damaged.extend_from_slice(bytes.get(at + len..).unwrap_or_default());
                compare(&damaged, &options, [5, 300, CHUNK][next(3)]);
                compare(&bytes[..at], &options, 64);
            }
        }
    }

    #[test]
    fn odd_shapes_match_the_streaming_parser() {
        let options = ImportOptions::default();
        let entry = r#"{"startedDateTime": "2024-05-01T10:00:00Z", "request": {"method": "GET", "url": "http://h/a", "headers": []}, "response": {"status": 200}}"#;
        let late = r#"{"startedDateTime": "2024-05-01T09:00:00Z", "request": {"method": "GET", "url": "http://h/b"}, "response": {"status": 200}}"#;
        let bad_url =
            r#"{"request": {"method": "GET", "url": "http://"}, "response": {"status": 200}}"#;
        let docs = [
            format!(r#"{{"log": {{"entries": [{entry}]}}}} trailing"#),
            format!(
                r#"{{"a": [1, {{"b": "\""}}], "log": {{"version": "1.2", "entries": [{entry}, {entry}], "pages": []}}, "z": null}}"#
            ),
            format!(
                r#"{{"log": {{"entries": [{entry}], "creator": {{"name": "mitmproxy"}}, "entries": 5}}, "log": 1}}"#
            ),
            format!(r#"{{"log": {{"entries": [{entry}, {late}]}}}}"#),
            format!(r#"{{"log": {{"entries": [{entry}, {bad_url}, ]}}}}"#),
            format!(r#"{{"log": {{"entries": [{entry}, 1]}}}}"#),
            format!(r#"{{"log": {{"entries": [{entry},]}}}}"#),
            format!(r#"{{"l\u006fg": {{"entries": [{entry}]}}}}"#),
            format!(r#"{{"log": {{"creator": 5, "entries": [{entry}]}}}}"#),
            r#"{"log": {"entries": []}, }"#.to_string(),
            r#"{"log": {"creator": null, "entries": []}}"#.to_string(),
            r#"{"log": {}}"#.to_string(),
            r#"{}"#.to_string(),
            r#"[]"#.to_string(),
            r#"{"log": {"entries": [] "#.to_string(),
            format!(
                r#"{{"log": {{"entries": [{}{entry}{}]}}}}"#,
                "[".repeat(130),
                "]".repeat(130)
            ),
        ];
        for doc in &docs {
            for chunk in [3, CHUNK] {
                compare(doc.as_bytes(), &options, chunk);
            }
        }
    }

    /// Entries that hold objects beginning like an entry: a guess at where entries start may
    /// fall inside one, and must never change the outcome.
    #[test]
    fn entries_found_by_guess_match_the_streaming_parser() {
        let options = ImportOptions {
            think_time: true,
            ..ImportOptions::default()
        };
        let mut entries = Vec::new();
        for i in 0..60 {
            let nested = match i % 4 {
                0 => r#", "_x": [1, {"startedDateTime": "x"}]"#,
                1 => r#", "_x": {"a": [{"startedDateTime": 5} , {"startedDateTime" : 1}]}"#,
                2 => r#", "_x": ",{\"startedDateTime\":"#,
                _ => "",
            };
            let url = if i == 45 { "http://" } else { "http://h/a" };
            entries.push(format!(
                r#"{{"startedDateTime": "2024-05-01T10:00:{:02}Z", "request": {{"method": "GET", "url": "{url}", "headers": [{{"name": "Cookie", "value": "s={i}"}}]}}, "response": {{"status": 200}}{nested}}}"#,
                i % 60
            ));
        }
        let clean: Vec<&String> = entries.iter().skip(3).step_by(4).collect();
        let docs = [
            format!(r#"{{"log": {{"entries": [{}]}}}}"#, entries.join(", ")),
            format!(
                r#"{{"log": {{"entries": [{}]}}}}"#,
                entries[..40].join(",\n ")
            ),
            format!(
                r#"{{"log": {{"entries": [{}]}}}}"#,
                clean
                    .iter()
                    .map(|e| e.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            format!(
                r#"{{"log": {{"entries": [{}, 1]}}}}"#,
                entries[..8].join(",")
            ),
        ];
        for doc in &docs {
            for chunk in [5, 64, 300, 1000, 4096, CHUNK] {
                compare(doc.as_bytes(), &options, chunk);
            }
        }
        // Guesses that hold are taken: the fast path goes through.
        for chunk in [300, 1000, 4096] {
            let source = Source::with_chunk(docs[2].as_bytes(), chunk);
            assert!(
                super::super::fast(source, "t.har", &options).is_some(),
                "{chunk}"
            );
        }
    }
}
