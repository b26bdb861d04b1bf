//! The HAR importer: HAR 1.1 and 1.2 as browsers, mitmproxy, Charles, Fiddler and Playwright
//! write them, turned into one task per kept request.
//!
//! The file is parsed once, straight into lenient typed structs (see `model`, and `entry` for
//! entries of the usual shape), which skip response bodies, on as many threads as there are
//! cores (see `scan`): a 45 MB recording imports in about a tenth of a second with memory close
//! to the size of its requests. WebSocket sessions and server-sent event streams become
//! `websocket` and `sse` tasks (see `socket`). Entries that cannot be replayed (`CONNECT`
//! tunnels, aborted requests) are counted and reported, never fatal.

mod entry;
mod frames;
mod grpc;
#[cfg(test)]
mod learn_tests;
mod model;
mod scan;
mod socket;

use base64::Engine;
use serde_json::Value;

use crate::filter::Drop;
use crate::output::{Body, Builder, Drafted, Drafts, JOINED_HEADERS, Recorded, RequestView, Rules};
use crate::{Error, Import, ImportOptions, Result};

/// True when the start of a JSON text looks like a HAR document.
pub(crate) fn looks_like_har(head: &str) -> bool {
    head.contains("\"log\"")
        && (head.contains("\"entries\"")
            || head.contains("\"creator\"")
            || head.contains("\"version\""))
}

/// Imports a HAR document held in memory, read from `name`.
pub fn import(name: &str, bytes: &[u8], options: &ImportOptions) -> Result<Import> {
    let mut import = import_with_chunk(name, bytes, options, scan::CHUNK)?;
    learn_from(&mut import, || Some(bytes.to_vec()), options)?;
    Ok(import)
}

/// Learns correlation rules and body checks from the recording's responses, read again whole
/// (`bytes`), when the options ask for either.
fn learn_from(
    import: &mut Import,
    bytes: impl FnOnce() -> Option<Vec<u8>>,
    options: &ImportOptions,
) -> Result<()> {
    if !options.correlate && options.assert_body == crate::BodyChecks::Off {
        return Ok(());
    }
    let other = match &options.compare {
        Some(other) => Some(crate::learn::recording::read(other).ok_or_else(|| {
            Error::Invalid("--compare: the second recording is not a readable HAR file".into())
        })?),
        None => None,
    };
    match bytes().and_then(|b| crate::learn::recording::read(&b)) {
        Some(recording) => crate::learn::learn(import, &recording, other.as_deref(), options),
        None => import
            .summary
            .warn("the responses could not be read whole; nothing was learned from them"),
    }
    Ok(())
}

fn import_with_chunk(
    name: &str,
    bytes: &[u8],
    options: &ImportOptions,
    chunk: usize,
) -> Result<Import> {
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    // A document smaller than a chunk is read at once, into a buffer of its size.
    let chunk = chunk.min(bytes.len() + 1);
    match fast(scan::Source::with_chunk(bytes, chunk), name, options) {
        Some(Ok(Streamed::Done(import))) => Ok(*import),
        Some(Ok(Streamed::OutOfOrder)) => whole_slice(name, bytes, options),
        Some(Err(e)) => Err(e),
        None => import_streaming(name, bytes, options),
    }
}

/// The reference import of a document in memory (without its BOM): the serde visitors over
/// the whole text. The fast path gives up to it on anything unusual.
fn import_streaming(name: &str, bytes: &[u8], options: &ImportOptions) -> Result<Import> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match stream(&mut de, name, options) {
        Ok(Streamed::Done(import)) => Ok(*import),
        Ok(Streamed::OutOfOrder) => whole_slice(name, bytes, options),
        Err(Failure::Import(e)) => Err(e),
        Err(Failure::Json(e)) => Err(parse_error(name, bytes, &e)),
    }
}

/// Entries out of order: sorting needs every entry at hand.
fn whole_slice(name: &str, bytes: &[u8], options: &ImportOptions) -> Result<Import> {
    let file: model::HarFile<model::Str<'_>> =
        serde_json::from_slice(bytes).map_err(|e| parse_error(name, bytes, &e))?;
    build(name, file, options)
}

/// Imports a HAR file, streaming it: neither the file nor its entries are ever held in memory
/// whole. Each entry becomes a task as soon as it is read, and response bodies, most of a HAR's
/// size, are skipped as they are read.
pub fn import_file(path: &std::path::Path, options: &ImportOptions) -> Result<Import> {
    let mut import = import_file_tasks(path, options)?;
    learn_from(&mut import, || std::fs::read(path).ok(), options)?;
    Ok(import)
}

fn import_file_tasks(path: &std::path::Path, options: &ImportOptions) -> Result<Import> {
    use std::io::BufRead;
    let name = path.display().to_string();
    let read_error = |e: std::io::Error| Error::Read {
        path: name.clone(),
        source: e,
    };
    let open = || -> Result<std::io::BufReader<std::fs::File>> {
        let file = std::fs::File::open(path).map_err(read_error)?;
        let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
        if reader.fill_buf().map_err(read_error)?.starts_with(BOM) {
            reader.consume(BOM.len());
        }
        Ok(reader)
    };
    let json_error = |e: serde_json::Error| -> Error {
        // Only on this path is the text needed, to show the offending line.
        match std::fs::read(path) {
            Ok(bytes) => parse_error(&name, bytes.strip_prefix(BOM).unwrap_or(&bytes), &e),
            Err(io) => read_error(io),
        }
    };
    let whole = || -> Result<Import> {
        // Sorting needs every entry at hand: read the file again, whole.
        let file: model::HarFile<String> = serde_json::from_reader(open()?).map_err(json_error)?;
        build(&name, file, options)
    };
    let mut source = scan::Source::new(std::fs::File::open(path).map_err(read_error)?);
    let fast = match source.skip_bom() {
        Ok(()) => fast(source, &name, options),
        Err(scan::Unsure) => None,
    };
    match fast {
        Some(Ok(Streamed::Done(import))) => return Ok(*import),
        Some(Ok(Streamed::OutOfOrder)) => return whole(),
        Some(Err(e)) => return Err(e),
        None => {}
    }
    let mut de = serde_json::Deserializer::from_reader(open()?);
    match stream(&mut de, &name, options) {
        Ok(Streamed::Done(import)) => Ok(*import),
        Ok(Streamed::OutOfOrder) => whole(),
        Err(Failure::Import(e)) => Err(e),
        Err(Failure::Json(e)) => Err(json_error(e)),
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

enum Streamed {
    Done(Box<Import>),
    /// Entries are not in `startedDateTime` order; the caller imports the whole list instead.
    OutOfOrder,
}

enum Failure {
    Import(Error),
    Json(serde_json::Error),
}

/// The one-pass import on the fast path (see `scan`), or `None` when it gave up.
fn fast<R: std::io::Read>(
    source: scan::Source<R>,
    name: &str,
    options: &ImportOptions,
) -> Option<Result<Streamed>> {
    let mut state = StreamState::new(name, options);
    // The source, and its buffer, are gone before the plan is written.
    scan::import(source, &mut state).ok()?;
    Some(state.finish(Ok(())).map_err(|failure| match failure {
        Failure::Import(e) => e,
        // Not reached: the fast path never gives a parse error.
        Failure::Json(e) => Error::Invalid(e.to_string()),
    }))
}

/// The one-pass import: entries are converted in file order as the parser reaches them.
fn stream<'de, D>(de: D, name: &str, options: &ImportOptions) -> Result<Streamed, Failure>
where
    D: serde::Deserializer<'de, Error = serde_json::Error>,
{
    use serde::de::DeserializeSeed;
    let mut state = StreamState::new(name, options);
    let parsed = Root(&mut state).deserialize(de);
    state.finish(parsed)
}

struct StreamState<'a> {
    name: &'a str,
    builder: Builder<'a>,
    think_time: bool,
    latin1: bool,
    index: usize,
    last_start: Option<f64>,
    missing_start: bool,
    /// Whether the last kept request's task stays open until the next kept one gives its
    /// think time.
    open: bool,
    pacing: Pacing,
    failure: Option<Error>,
    out_of_order: bool,
    /// Where entries read one by one are drafted.
    drafts: Drafts,
}

impl<'a> StreamState<'a> {
    fn new(name: &'a str, options: &'a ImportOptions) -> StreamState<'a> {
        StreamState {
            name,
            builder: Builder::new(options),
            think_time: options.think_time,
            latin1: false,
            index: 0,
            last_start: None,
            missing_start: false,
            open: false,
            pacing: Pacing::default(),
            failure: None,
            out_of_order: false,
            drafts: Drafts::default(),
        }
    }

    /// The import once the parse has ended (`parsed`), or stopped at an entry.
    fn finish(mut self, parsed: Result<(), serde_json::Error>) -> Result<Streamed, Failure> {
        if self.out_of_order {
            return Ok(Streamed::OutOfOrder);
        }
        if let Some(e) = self.failure.take() {
            return Err(Failure::Import(e));
        }
        parsed.map_err(Failure::Json)?;
        if std::mem::take(&mut self.open) {
            self.builder.close(None);
        }
        let mut builder = self.builder;
        builder.summary.read = self.index;
        if self.missing_start && self.index > 0 {
            builder
                .summary
                .warn("some entries have no readable startedDateTime; kept in file order");
        }
        Ok(Streamed::Done(Box::new(builder.finish())))
    }

    /// Takes one entry; `false` stops the parse (an error, or entries out of order).
    fn entry<S: AsRef<str>>(&mut self, entry: &model::Entry<S>) -> bool {
        let mut drafts = std::mem::take(&mut self.drafts);
        drafts.clear();
        let prepared = prepare(self.builder.rules(), entry, self.latin1, &mut drafts);
        let go_on = self.take(prepared, &drafts);
        self.drafts = drafts;
        go_on
    }

    /// Takes the next entry of the file, prepared (see [`prepare`]) with its task in
    /// `drafts`; `false` stops the import (an error, or entries out of order).
    fn take(&mut self, prepared: Prepared, drafts: &Drafts) -> bool {
        let index = self.index;
        self.index += 1;
        match prepared.start {
            Some(start) => {
                if self.last_start.is_some_and(|last| start < last) {
                    self.out_of_order = true;
                    return false;
                }
                self.last_start = Some(start);
            }
            None => self.missing_start = true,
        }
        let (task, duration, warnings, steps) = match prepared.outcome {
            Outcome::Kept {
                task,
                duration,
                warnings,
                steps,
            } => (task, duration, warnings, steps),
            Outcome::Dropped(reason) => {
                self.builder.summary.drop(reason);
                return true;
            }
            Outcome::BadUrl(url) => {
                self.failure = Some(bad_url(self.name, index, &url));
                return false;
            }
        };
        for warning in warnings {
            self.builder.summary.warn(warning);
        }
        if std::mem::take(&mut self.open) {
            self.builder.close(self.pacing.think(prepared.start));
        }
        self.builder.entry = index;
        self.builder.commit(drafts, &task);
        self.builder.recorded = self.pacing.recorded(prepared.start, prepared.connection);
        self.pacing.ended(prepared.start, duration);
        self.builder
            .steps(drafts, steps.as_deref(), self.think_time);
        if self.think_time {
            self.open = true;
        } else {
            self.builder.close(None);
        }
        true
    }
}

/// The recorded timing of the kept requests, in the order they are kept: each task's
/// [`Recorded`] offset and connection, and its think time.
#[derive(Debug, Default)]
struct Pacing {
    /// The start of the first kept request with one (seconds since the epoch).
    origin: Option<f64>,
    /// The latest end of a kept request so far: browsers send in parallel, so the previous
    /// request is not always the one that ended last.
    latest_end: Option<f64>,
    /// Recorded connections, numbered from 1 in the order they first appear.
    sessions: std::collections::HashMap<u64, u32>,
}

impl Pacing {
    /// When a request starting at `start` (seconds) on `connection` was sent.
    fn recorded(&mut self, start: Option<f64>, connection: Option<u64>) -> Option<Recorded> {
        let start = start?;
        let origin = *self.origin.get_or_insert(start);
        let next = u32::try_from(self.sessions.len() + 1).unwrap_or(u32::MAX);
        let session = connection.map(|c| *self.sessions.entry(c).or_insert(next));
        Some(Recorded {
            at: start - origin,
            session,
        })
    }

    /// A kept request started at `start` took `duration` milliseconds.
    fn ended(&mut self, start: Option<f64>, duration: f64) {
        if let Some(start) = start {
            let end = start + duration.max(0.0) / 1000.0;
            self.latest_end = Some(self.latest_end.map_or(end, |e| e.max(end)));
        }
    }

    /// The pause before a request starting at `next`: from the latest end of the kept
    /// requests before it.
    fn think(&self, next: Option<f64>) -> Option<f64> {
        Some((next? - self.latest_end?).max(0.0))
    }
}

/// mitmproxy writes bodies that are not UTF-8 one byte per character.
fn is_mitmproxy(creator: Option<&model::Creator>) -> bool {
    creator.is_some_and(|c| c.name.to_ascii_lowercase().contains("mitmproxy"))
}

/// `{"log": ...}`: everything but `log` is skipped.
struct Root<'s, 'a>(&'s mut StreamState<'a>);
/// `log`: `creator` (which producer wrote the file) and `entries`.
struct Log<'s, 'a>(&'s mut StreamState<'a>);
/// `log.entries`, one entry at a time.
struct Entries<'s, 'a>(&'s mut StreamState<'a>);

const STOP: &str = "import stopped";

impl<'de> serde::de::DeserializeSeed<'de> for Root<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Root<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a HAR document: an object with a `log`")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen_log = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "log" && !seen_log {
                seen_log = true;
                map.next_value_seed(Log(&mut *self.0))?;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        if !seen_log {
            return Err(serde::de::Error::missing_field("log"));
        }
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Log<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Log<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the HAR `log` object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen_entries = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "creator" => {
                    let creator: Option<model::Creator> = map.next_value()?;
                    self.0.latin1 = is_mitmproxy(creator.as_ref());
                }
                "entries" if !seen_entries => {
                    seen_entries = true;
                    map.next_value_seed(Entries(&mut *self.0))?;
                }
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        if !seen_entries {
            return Err(serde::de::Error::missing_field("entries"));
        }
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Entries<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Entries<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of HAR entries")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(entry) = seq.next_element::<model::Entry<model::Str<'de>>>()? {
            if !self.0.entry(&entry) {
                return Err(serde::de::Error::custom(STOP));
            }
        }
        Ok(())
    }
}

/// An entry kept for the plan: its draft, the protocol steps it becomes (WebSocket or SSE),
/// and its recorded timing.
type Kept = (
    Drafted,
    Option<Box<Steps>>,
    Option<f64>,
    f64,
    usize,
    Option<u64>,
);

fn build<S: AsRef<str>>(
    name: &str,
    file: model::HarFile<S>,
    options: &ImportOptions,
) -> Result<Import> {
    let bytes_as_latin1 = is_mitmproxy(file.log.creator.as_ref());
    let mut entries: Vec<(usize, model::Entry<S>)> =
        file.log.entries.into_iter().enumerate().collect();
    let mut builder = Builder::new(options);
    builder.summary.read = entries.len();

    let starts: Vec<Option<f64>> = entries
        .iter()
        .map(|(_, e)| e.started.as_ref().and_then(|s| parse_timestamp(s.as_ref())))
        .collect();
    if starts.iter().all(Option::is_some) {
        let out_of_order = starts.windows(2).any(|w| w[0] > w[1]);
        if out_of_order {
            let mut keyed: Vec<_> = entries.into_iter().zip(starts).collect();
            keyed.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal));
            entries = keyed.into_iter().map(|(e, _)| e).collect();
            builder
                .summary
                .warn("entries were out of order and have been sorted by startedDateTime");
        }
    } else if !entries.is_empty() {
        builder
            .summary
            .warn("some entries have no readable startedDateTime; kept in file order");
    }

    let mut drafts = Drafts::default();
    let prepared: Vec<(usize, Prepared)> = entries
        .iter()
        .map(|(index, entry)| {
            let prepared = prepare(builder.rules(), entry, bytes_as_latin1, &mut drafts);
            (*index, prepared)
        })
        .collect();
    let mut kept: Vec<Kept> = Vec::new();
    for (index, p) in prepared {
        match p.outcome {
            Outcome::Kept {
                task,
                duration,
                warnings,
                steps,
            } => {
                for warning in warnings {
                    builder.summary.warn(warning);
                }
                kept.push((task, steps, p.start, duration, index, p.connection));
            }
            Outcome::Dropped(reason) => builder.summary.drop(reason),
            Outcome::BadUrl(url) => return Err(bad_url(name, index, &url)),
        }
    }
    // A task's think time is the pause between the latest end of the requests so far and the
    // start of the next kept one.
    let mut pacing = Pacing::default();
    for (i, (task, steps, start, duration, index, connection)) in kept.iter().enumerate() {
        let next_start = kept.get(i + 1).and_then(|k| k.2);
        builder.entry = *index;
        builder.commit(&drafts, task);
        builder.recorded = pacing.recorded(*start, *connection);
        pacing.ended(*start, *duration);
        builder.steps(&drafts, steps.as_deref(), options.think_time);
        let think = if options.think_time {
            pacing.think(next_start)
        } else {
            None
        };
        builder.close(think);
    }
    Ok(builder.finish())
}

/// An entry made ready to join the plan, on its own: what only the entries around it decide
/// is left to [`StreamState::take`].
pub(super) struct Prepared {
    /// `startedDateTime`, seconds since the epoch.
    start: Option<f64>,
    /// The recorded connection, hashed.
    connection: Option<u64>,
    pub(super) outcome: Outcome,
}

pub(super) enum Outcome {
    /// A task, drafted.
    Kept {
        task: Drafted,
        /// Milliseconds.
        duration: f64,
        /// For the summary.
        warnings: Vec<&'static str>,
        /// The tasks after the first, for an entry that gives several (a WebSocket session, an
        /// event stream).
        steps: Option<Box<Steps>>,
    },
    /// Not kept, for this reason (counted in the summary).
    Dropped(&'static str),
    /// The import stops here: the URL (trimmed) cannot be requested.
    BadUrl(String),
}

/// The tasks of an entry after its first.
pub(super) struct Steps {
    /// Each with the think time (seconds) of the task before it, from the recorded gap.
    pub(super) tasks: Vec<(Option<f64>, Drafted)>,
    /// A WebSocket session; an event stream otherwise.
    pub(super) websocket: bool,
}

impl Builder<'_> {
    /// Writes the tasks of an entry after its first (committed), each closing the one before
    /// it, with the recorded gap as think time when `think_time`; the last stays open.
    fn steps(&mut self, drafts: &Drafts, steps: Option<&Steps>, think_time: bool) {
        let Some(steps) = steps else {
            return;
        };
        if steps.websocket {
            self.summary.websockets += 1;
        } else {
            self.summary.event_streams += 1;
        }
        for (think, task) in &steps.tasks {
            self.close_step(think.filter(|_| think_time));
            self.commit(drafts, task);
        }
    }
}

/// An entry made ready, its task drafted into `drafts`.
pub(super) fn prepare<S: AsRef<str>>(
    rules: Rules<'_>,
    entry: &model::Entry<S>,
    bytes_as_latin1: bool,
    drafts: &mut Drafts,
) -> Prepared {
    let start = entry
        .started
        .as_ref()
        .and_then(|s| parse_timestamp(s.as_ref()));
    Prepared {
        start,
        connection: entry.connection,
        outcome: convert(rules, entry, start, bytes_as_latin1, drafts),
    }
}

/// One entry to a drafted task, or the reason it is not kept.
fn convert<S: AsRef<str>>(
    rules: Rules<'_>,
    entry: &model::Entry<S>,
    start: Option<f64>,
    bytes_as_latin1: bool,
    drafts: &mut Drafts,
) -> Outcome {
    let method = entry.request.method.as_ref().trim().to_ascii_uppercase();
    let url = entry.request.url.as_ref().trim();
    if method == "CONNECT" {
        return Outcome::Dropped("CONNECT tunnel entries");
    }
    let scheme = url.split(':').next().unwrap_or_default();
    let status = entry.response.as_ref().and_then(|r| r.status);
    let resource_type = entry.resource_type.as_ref().map(AsRef::as_ref);
    let websocket = entry.websocket_messages.is_some()
        || resource_type == Some("websocket")
        || status == Some(101.0)
        || scheme.eq_ignore_ascii_case("ws")
        || scheme.eq_ignore_ascii_case("wss");
    let mime = entry
        .response
        .as_ref()
        .and_then(|r| r.content.as_ref())
        .and_then(|c| c.mime_type.as_ref())
        .map(AsRef::as_ref);
    let filtered = |rules: Rules<'_>| {
        rules.filter().check(url, mime, resource_type).map(|drop| {
            Outcome::Dropped(match drop {
                Drop::NotIncluded => "not matching --include",
                Drop::Excluded => "matching --exclude",
                Drop::Static => "static assets (--skip-static)",
            })
        })
    };
    if websocket {
        if let Some(dropped) = filtered(rules) {
            return dropped;
        }
        return socket::websocket(rules, entry, url, start, drafts);
    }
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Outcome::Dropped("non-HTTP URLs (data:, blob:, extensions)");
    }
    let Some(parts) = crate::url_parts::split(url) else {
        return Outcome::BadUrl(url.to_string());
    };
    let status = match status {
        Some(s) if (1.0..1000.0).contains(&s) => s as u16,
        _ => return Outcome::Dropped("aborted requests (status 0 or no response)"),
    };
    if let Some(dropped) = filtered(rules) {
        return dropped;
    }
    if socket::is_event_stream(mime) {
        return socket::event_stream(rules, entry, url, parts.path, drafts);
    }
    if grpc::is_grpc(&entry.request) {
        return grpc::call(rules, entry, url, parts.path, bytes_as_latin1, drafts);
    }
    let headers = &entry.request.headers;
    let declared_length = headers
        .iter()
        .find(|h| h.name.as_ref().eq_ignore_ascii_case("content-length"))
        .and_then(|h| h.value.as_ref().trim().parse::<u64>().ok())
        .unwrap_or(0);
    let recorded_a_body = declared_length > 0 || entry.request.body_size.is_some_and(|s| s > 0.0);
    let mut warnings = Vec::new();
    let body = match &entry.request.post_data {
        Some(post) => body_of(post, bytes_as_latin1, &mut warnings),
        None => Body::None,
    };
    let empty = match &body {
        Body::None => true,
        Body::Text(t) | Body::Base64(t) => t.is_empty(),
        _ => false,
    };
    if recorded_a_body && empty {
        // Chromium leaves out multipart uploads and binary bodies while the headers show
        // their length: the task can only send what was recorded.
        warnings.push(
            "request bodies missing from the recording (browsers leave out multipart and binary uploads); those tasks send no body",
        );
    }
    let duration = entry.time.filter(|t| *t > 0.0).unwrap_or(0.0);
    let name = crate::naming::task_name_of_path(&method, parts.path);
    let request = RequestView {
        method: &method,
        url,
        body: &body,
        status: Some(status),
        name: Some(&name),
        verify: None,
        allow_redirects: None,
        timeout: None,
        socket: None,
    };
    let (task, joined) = rules.draft(
        drafts,
        &request,
        headers.iter().map(|h| (h.name.as_ref(), h.value.as_ref())),
    );
    if joined {
        warnings.push(JOINED_HEADERS);
    }
    Outcome::Kept {
        task,
        duration,
        warnings,
        steps: None,
    }
}

/// The error for entry number `index` of the input `name`, whose URL cannot be requested.
fn bad_url(name: &str, index: usize, url: &str) -> Error {
    Error::Invalid(format!(
        "{name}: entry {index} (/log/entries/{index}/request/url): {url:?} is not a valid absolute URL\n  \
         expected http(s)://host[:port]/path; fix or remove this entry, or leave it out with --exclude"
    ))
}

fn body_of<S: AsRef<str>>(
    post: &model::PostData<S>,
    bytes_as_latin1: bool,
    warnings: &mut Vec<&'static str>,
) -> Body {
    let mime = post.mime_type.as_ref().to_ascii_lowercase();
    let essence = mime.split(';').next().unwrap_or_default().trim();
    if post
        .encoding
        .as_ref()
        .is_some_and(|e| e.as_ref().eq_ignore_ascii_case("base64"))
    {
        return Body::Base64(
            post.text
                .as_ref()
                .map(|t| t.as_ref().to_string())
                .unwrap_or_default(),
        );
    }
    let Some(text) = &post.text else {
        return match &post.params {
            Some(params) if !params.is_empty() => params_body(essence, params, warnings),
            _ => Body::None,
        };
    };
    let text = text.as_ref();
    if bytes_as_latin1
        && !is_textual(essence)
        && let Some(bytes) = latin1_bytes(text)
    {
        return Body::Base64(base64::engine::general_purpose::STANDARD.encode(bytes));
    }
    // JSON only when the client will write the same bytes; otherwise the text goes verbatim.
    if is_json(essence) {
        match crate::canonical::is_canonical(text) {
            Some(true) => return Body::JsonText(text.to_string()),
            Some(false) => {}
            None => {
                if let Ok(value) = serde_json::from_str::<Value>(text)
                    && serde_json::to_string(&value).is_ok_and(|compact| compact == text)
                {
                    return Body::Json(value);
                }
            }
        }
    }
    if essence == "application/x-www-form-urlencoded" {
        return crate::form::body_from_text(text);
    }
    Body::Text(text.to_string())
}

/// A body known only by its decoded parameters (no `text`): form fields or multipart parts.
fn params_body<S: AsRef<str>>(
    essence: &str,
    params: &[model::Param<S>],
    warnings: &mut Vec<&'static str>,
) -> Body {
    let text = |s: &S| Value::String(s.as_ref().to_string());
    let value = |p: &model::Param<S>| {
        Value::String(
            p.value
                .as_ref()
                .map(|v| v.as_ref().to_string())
                .unwrap_or_default(),
        )
    };
    if essence.starts_with("multipart/") {
        let parts = params
            .iter()
            .map(|p| {
                let mut part = serde_json::Map::new();
                part.insert("name".into(), text(&p.name));
                part.insert("value".into(), value(p));
                if let Some(f) = &p.file_name {
                    part.insert("filename".into(), text(f));
                }
                if let Some(c) = &p.content_type {
                    part.insert("content_type".into(), text(c));
                }
                Value::Object(part)
            })
            .collect();
        return Body::Multipart(parts);
    }
    warnings.push("form bodies recorded only as decoded params; re-encoded on replay");
    let mut fields = serde_json::Map::new();
    for p in params {
        fields.insert(p.name.as_ref().to_string(), value(p));
    }
    Body::Form(fields)
}

fn is_json(essence: &str) -> bool {
    essence == "application/json" || essence.ends_with("+json") || essence == "text/json"
}

fn is_textual(essence: &str) -> bool {
    essence.is_empty()
        || essence.starts_with("text/")
        || is_json(essence)
        || essence.ends_with("+xml")
        || essence == "application/xml"
        || essence == "application/x-www-form-urlencoded"
        || essence == "application/javascript"
        || essence == "application/graphql"
}

/// mitmproxy writes a body that is not UTF-8 with each byte as the character U+0000..U+00FF;
/// recover the bytes when the text has that form and holds something only bytes would.
pub(super) fn latin1_bytes(text: &str) -> Option<Vec<u8>> {
    let mut binary = false;
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        let code = c as u32;
        if code > 0xFF {
            return None;
        }
        if code >= 0x80 || (code < 0x20 && !matches!(c, '\t' | '\r' | '\n')) {
            binary = true;
        }
        out.push(code as u8);
    }
    binary.then_some(out)
}

/// Seconds since the epoch for an RFC 3339 timestamp (`2024-05-01T10:00:00.123Z`,
/// `...+02:00`, microseconds allowed).
pub(crate) fn parse_timestamp(s: &str) -> Option<f64> {
    let s = s.trim();
    let (date, rest) = s.split_once(['T', ' '])?;
    let mut d = date.split('-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    let zone_at = rest
        .find(['Z', 'z', '+'])
        .or_else(|| rest.rfind('-'))
        .unwrap_or(rest.len());
    let (clock, zone) = rest.split_at(zone_at);
    let mut c = clock.split(':');
    let hour: f64 = c.next()?.parse().ok()?;
    let minute: f64 = c.next()?.parse().ok()?;
    let second: f64 = c.next().unwrap_or("0").parse().ok()?;
    let offset = match zone {
        "" | "Z" | "z" => 0.0,
        z => {
            let sign = if z.starts_with('-') { -1.0 } else { 1.0 };
            let z = &z[1..];
            let (h, m) = z
                .split_once(':')
                .unwrap_or((z.get(..2)?, z.get(2..).unwrap_or("0")));
            sign * (h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().unwrap_or(0.0) * 60.0)
        }
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from the civil date (proleptic Gregorian).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + hour * 3600.0 + minute * 60.0 + second - offset)
}

fn parse_error(name: &str, bytes: &[u8], e: &serde_json::Error) -> Error {
    let text = String::from_utf8_lossy(bytes);
    let pos = ld_plan::SourcePos {
        line: e.line(),
        column: e.column(),
    };
    let raw = e.to_string();
    let message = raw.rfind(" at line ").map_or(raw.as_str(), |i| &raw[..i]);
    match e.classify() {
        serde_json::error::Category::Eof => Error::Syntax(ld_plan::render_source_error(
            name,
            &text,
            pos,
            &format!(
                "the file ends too early ({message}): it looks truncated; export the HAR again"
            ),
        )),
        serde_json::error::Category::Syntax | serde_json::error::Category::Io => Error::Syntax(
            ld_plan::render_source_error(name, &text, pos, &format!("not valid JSON: {message}")),
        ),
        serde_json::error::Category::Data => Error::Invalid(ld_plan::render_source_error(
            name,
            &text,
            pos,
            &format!(
                "not a HAR file: {message}\n  expected {{\"log\": {{\"entries\": [{{\"request\": {{\"method\", \"url\", ...}}, \"response\": {{\"status\", ...}}}}]}}}}"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_with_offsets_compare_correctly() {
        let a = parse_timestamp("2024-05-01T10:00:00.500Z").expect("a");
        let b = parse_timestamp("2024-05-01T12:00:00.600+02:00").expect("b");
        let c = parse_timestamp("2024-05-01T10:00:00.123456+00:00").expect("c");
        assert!((b - a - 0.1).abs() < 1e-6);
        assert!(c < a);
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn latin1_recovery_needs_binary_evidence() {
        assert_eq!(latin1_bytes("plain"), None);
        assert_eq!(latin1_bytes("\u{0}\u{ff}a"), Some(vec![0, 0xff, b'a']));
        assert_eq!(latin1_bytes("snow ☃ \u{0}"), None);
    }
}
