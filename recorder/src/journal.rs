//! The journal: every finished exchange, appended as one line of JSON (its HAR entry) to
//! `<output>.journal` as soon as it finishes, and the HAR assembled from it.
//!
//! The journal is what makes a recording survive a crash: lines reach the kernel (one `write`
//! per batch) right after each exchange ends, so a killed process loses at most the exchanges
//! that were still in flight. An HTTP exchange's line is written before the client receives
//! the end of its response (the response body holds back its last frame until the writer
//! acknowledges the line, see [`Ack`]), so a client that has a whole response knows it is on
//! disk. It is also why memory stays flat: entries are not kept in the process, and the HAR is
//! built from the file when the recording stops. A writer thread owns the file so that no proxy
//! task blocks on the disk.
//!
//! The journal is locked (`flock`) while a recorder writes it: a second `ld record` with the
//! same output, or a `--recover` of a live recording, is refused instead of mixing two sessions.
//! A line torn by a crash is skipped when the HAR is assembled.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use serde::Deserialize;

use crate::{Error, Result};

/// The journal path for an output: `recording.har` → `recording.har.journal`.
pub fn journal_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_os_string();
    name.push(".journal");
    PathBuf::from(name)
}

/// Counters shown on the status line and in the summary.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Exchanges written to the journal in this session.
    pub(crate) recorded: AtomicU64,
    /// Body bytes forwarded in both directions.
    pub(crate) bytes: AtomicU64,
    /// Exchanges or connections that failed (upstream unreachable, TLS refused, ...).
    pub(crate) errors: AtomicU64,
}

pub(crate) enum Message {
    Entry(Vec<u8>),
    /// An entry whose sender waits until the line has been handed to the kernel.
    Acked(Vec<u8>, Ack),
    Stop,
}

/// How the writer tells a waiting sender that its line reached the kernel (`write(2)` done;
/// no `fsync`). Dropped unsent when the writer is gone, which also ends the wait.
pub(crate) enum Ack {
    /// An async task waits (a response body holding back its last frame).
    Task(tokio::sync::oneshot::Sender<()>),
    /// A thread waits (a body dropped by hyper without being polled to its end).
    Thread(mpsc::SyncSender<()>),
}

impl Ack {
    fn done(self) {
        match self {
            Ack::Task(tx) => {
                let _ = tx.send(());
            }
            Ack::Thread(tx) => {
                let _ = tx.try_send(());
            }
        }
    }
}

/// The open, locked journal and its writer thread.
pub(crate) struct Journal {
    path: PathBuf,
    tx: mpsc::Sender<Message>,
    writer: Option<JoinHandle<std::io::Result<()>>>,
    /// Held for the lock until the HAR is written.
    _lock: File,
}

/// What opening the journal found from an earlier, interrupted session.
#[derive(Debug, Default)]
pub(crate) struct Previous {
    pub(crate) entries: usize,
}

impl Journal {
    /// Opens (creating) and locks the journal of `output`.
    pub(crate) fn open(output: &Path, stats: Arc<Stats>) -> Result<(Journal, Previous)> {
        let path = journal_path(output);
        let mut options = OpenOptions::new();
        options.read(true).append(true).create(true);
        // The journal holds Authorization and Cookie values: readable by the owner only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&path).map_err(|e| Error::io(&path, e))?;
        lock(&file, output, &path)?;
        // A journal left by an interrupted session, or created by an older version, may be
        // wider than that.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = file
                .metadata()
                .map_err(|e| Error::io(&path, e))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                file.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))
                    .map_err(|e| Error::io(&path, e))?;
            }
        }
        let mut previous = Previous::default();
        let len = file.metadata().map_err(|e| Error::io(&path, e))?.len();
        if len > 0 {
            previous.entries = index(&file, &path)?.entries.len();
            // A torn last line must not glue onto the next entry.
            file.seek(SeekFrom::End(-1))
                .map_err(|e| Error::io(&path, e))?;
            let mut last = [0u8; 1];
            file.read_exact(&mut last)
                .map_err(|e| Error::io(&path, e))?;
            if last[0] != b'\n' {
                file.write_all(b"\n").map_err(|e| Error::io(&path, e))?;
            }
        }
        let writer_file = file.try_clone().map_err(|e| Error::io(&path, e))?;
        let (tx, rx) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("ld-journal".into())
            .spawn(move || write_loop(writer_file, rx, &stats))
            .map_err(|e| Error::io(&path, e))?;
        Ok((
            Journal {
                path,
                tx,
                writer: Some(writer),
                _lock: file,
            },
            previous,
        ))
    }

    pub(crate) fn sender(&self) -> mpsc::Sender<Message> {
        self.tx.clone()
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for every line sent so far to be written.
    pub(crate) fn close(&mut self) -> Result<()> {
        let _ = self.tx.send(Message::Stop);
        if let Some(writer) = self.writer.take() {
            match writer.join() {
                Ok(result) => result.map_err(|e| Error::io(&self.path, e))?,
                Err(_) => {
                    return Err(Error::io(
                        &self.path,
                        std::io::Error::other("the journal writer stopped unexpectedly"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Writes the HAR for `output` from the journal, then removes the journal. Call after
    /// [`Journal::close`].
    pub(crate) fn finish(self, output: &Path) -> Result<Assembled> {
        let assembled = rebuild(&self.path, output)?;
        std::fs::remove_file(&self.path).map_err(|e| Error::io(&self.path, e))?;
        Ok(assembled)
    }
}

fn lock(file: &File, output: &Path, journal: &Path) -> Result<()> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Busy {
            output: output.to_path_buf(),
            journal: journal.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(journal, e)),
    }
}

fn write_loop(file: File, rx: mpsc::Receiver<Message>, stats: &Stats) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(256 * 1024, file);
    let mut failure = None;
    let mut write = |out: &mut BufWriter<File>, line: &[u8]| {
        let result = out.write_all(line).and_then(|()| out.write_all(b"\n"));
        match result {
            Ok(()) => {
                stats.recorded.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                if failure.is_none() {
                    failure = Some(e);
                }
            }
        }
    };
    let mut acks = Vec::new();
    'outer: while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        // Everything already queued goes out in one flush.
        while let Some(message) = next {
            match message {
                Message::Entry(line) => write(&mut out, &line),
                Message::Acked(line, ack) => {
                    write(&mut out, &line);
                    acks.push(ack);
                }
                Message::Stop => {
                    out.flush()?;
                    acks.drain(..).for_each(Ack::done);
                    break 'outer;
                }
            }
            next = rx.try_recv().ok();
        }
        out.flush()?;
        // Only now are the lines in the kernel's hands: the waiting bodies may end.
        acks.drain(..).for_each(Ack::done);
    }
    match failure {
        Some(e) => Err(e),
        None => out.flush(),
    }
}

/// What rebuilding a HAR from a journal found.
#[derive(Debug)]
pub(crate) struct Assembled {
    pub(crate) entries: usize,
    pub(crate) skipped: usize,
}

/// Where each whole entry sits in the journal, in start order.
struct Index {
    /// (startedDateTime, offset, length) of each entry line.
    entries: Vec<(String, u64, usize)>,
    skipped: usize,
}

fn index(file: &File, path: &Path) -> Result<Index> {
    #[derive(Deserialize)]
    struct Started {
        #[serde(rename = "startedDateTime")]
        started: String,
    }
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    reader
        .seek(SeekFrom::Start(0))
        .map_err(|e| Error::io(path, e))?;
    let mut entries = Vec::new();
    let mut skipped = 0;
    let mut offset = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        if !body.iter().all(u8::is_ascii_whitespace) {
            // Parsing checks the whole line, so a line torn by a crash is caught here.
            match serde_json::from_slice::<Started>(body) {
                Ok(s) => entries.push((s.started, offset, body.len())),
                Err(_) => skipped += 1,
            }
        }
        offset += n as u64;
    }
    // Exchanges are journaled as they finish; the HAR lists them as they started.
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Index { entries, skipped })
}

/// Writes the HAR at `output` from the journal at `journal`, atomically. Entries are copied
/// one at a time from the journal, so memory does not grow with the recording.
pub(crate) fn rebuild(journal: &Path, output: &Path) -> Result<Assembled> {
    let file = File::open(journal).map_err(|e| Error::io(journal, e))?;
    let index = index(&file, journal)?;
    let mut source = BufReader::with_capacity(256 * 1024, file);
    // Private (0600, set on the temporary file before the rename): the HAR holds the
    // Authorization and Cookie values that crossed the proxy.
    ld_plan::fs::write_atomic_with(output, true, |out| {
        out.write_all(
            b"{\"log\":{\"version\":\"1.2\",\"creator\":{\"name\":\"ld\",\"version\":\"",
        )?;
        out.write_all(env!("CARGO_PKG_VERSION").as_bytes())?;
        out.write_all(b"\"},\"pages\":[],\"entries\":[")?;
        let mut buf = Vec::new();
        for (i, (_, offset, len)) in index.entries.iter().enumerate() {
            buf.resize(*len, 0);
            source.seek(SeekFrom::Start(*offset))?;
            source.read_exact(&mut buf)?;
            out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
            out.write_all(&buf)?;
        }
        out.write_all(b"\n]}}\n")
    })
    .map_err(Error::Write)?;
    Ok(Assembled {
        entries: index.entries.len(),
        skipped: index.skipped,
    })
}

/// What `ld record --recover` did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Recovered {
    /// The HAR written.
    pub output: PathBuf,
    /// Entries recovered.
    pub entries: usize,
    /// Lines that were not whole entries (torn by the crash) and were left out.
    pub skipped: usize,
}

/// Rebuilds `output` from its journal after a crash, then removes the journal. `path` may name
/// the output or the journal itself.
pub fn recover(path: &Path) -> Result<Recovered> {
    let output = match path.to_str().and_then(|p| p.strip_suffix(".journal")) {
        Some(stripped) => PathBuf::from(stripped),
        None => path.to_path_buf(),
    };
    let journal = journal_path(&output);
    if !journal.exists() {
        return Err(Error::NoJournal(journal));
    }
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .open(&journal)
        .map_err(|e| Error::io(&journal, e))?;
    lock(&file, &output, &journal)?;
    let assembled = rebuild(&journal, &output)?;
    std::fs::remove_file(&journal).map_err(|e| Error::io(&journal, e))?;
    Ok(Recovered {
        output,
        entries: assembled.entries,
        skipped: assembled.skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(started: &str, url: &str) -> Vec<u8> {
        format!(
            "{{\"startedDateTime\":\"{started}\",\"time\":0,\"request\":{{\"method\":\"GET\",\"url\":\"{url}\",\"httpVersion\":\"HTTP/1.1\",\"cookies\":[],\"headers\":[],\"queryString\":[],\"headersSize\":-1,\"bodySize\":0}},\"response\":{{\"status\":200,\"statusText\":\"OK\",\"httpVersion\":\"HTTP/1.1\",\"cookies\":[],\"headers\":[],\"content\":{{\"size\":0,\"mimeType\":\"x-unknown\"}},\"redirectURL\":\"\",\"headersSize\":-1,\"bodySize\":0}},\"cache\":{{}},\"timings\":{{\"send\":0,\"wait\":0,\"receive\":0}}}}"
        )
        .into_bytes()
    }

    #[test]
    fn entries_are_journaled_then_assembled_in_start_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let output = dir.path().join("rec.har");
        let stats = Arc::new(Stats::default());
        let (mut journal, previous) = Journal::open(&output, Arc::clone(&stats)).expect("open");
        assert_eq!(previous.entries, 0);
        let tx = journal.sender();
        tx.send(Message::Entry(entry(
            "2024-01-01T00:00:02.000000Z",
            "http://b/",
        )))
        .expect("send");
        tx.send(Message::Entry(entry(
            "2024-01-01T00:00:01.000000Z",
            "http://a/",
        )))
        .expect("send");
        journal.close().expect("close");
        assert_eq!(stats.recorded.load(Ordering::Relaxed), 2);
        let assembled = journal.finish(&output).expect("finish");
        assert_eq!(assembled.entries, 2);
        let har: har::v1_2::Log =
            serde_json::from_slice::<serde_json::Value>(&std::fs::read(&output).expect("read"))
                .ok()
                .and_then(|v| serde_json::from_value(v["log"].clone()).ok())
                .expect("har 1.2 log");
        assert_eq!(har.entries[0].request.url, "http://a/");
        assert_eq!(har.entries[1].request.url, "http://b/");
        assert!(!journal_path(&output).exists());
    }

    #[cfg(unix)]
    #[test]
    fn journal_and_har_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        let dir = tempfile::tempdir().expect("tempdir");
        let output = dir.path().join("rec.har");
        // A journal left readable by an older version is tightened when it is continued.
        std::fs::write(journal_path(&output), b"").expect("seed");
        std::fs::set_permissions(
            journal_path(&output),
            std::fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        let (mut journal, _) = Journal::open(&output, Arc::default()).expect("open");
        assert_eq!(mode(&journal_path(&output)), 0o600);
        journal.close().expect("close");
        std::fs::write(&output, b"old").expect("seed har");
        std::fs::set_permissions(&output, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        journal.finish(&output).expect("finish");
        assert_eq!(mode(&output), 0o600);
    }

    #[test]
    fn a_second_recorder_on_the_same_output_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let output = dir.path().join("rec.har");
        let (_journal, _) = Journal::open(&output, Arc::default()).expect("open");
        assert!(matches!(
            Journal::open(&output, Arc::default()),
            Err(Error::Busy { .. })
        ));
        assert!(matches!(recover(&output), Err(Error::Busy { .. })));
    }

    #[test]
    fn recovery_skips_a_torn_line_and_keeps_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let output = dir.path().join("rec.har");
        let mut text = entry("2024-01-01T00:00:01.000000Z", "http://a/");
        text.push(b'\n');
        text.extend_from_slice(&entry("2024-01-01T00:00:02.000000Z", "http://b/")[..40]);
        std::fs::write(journal_path(&output), &text).expect("seed");
        let recovered = recover(&journal_path(&output)).expect("recover");
        assert_eq!((recovered.entries, recovered.skipped), (1, 1));
        assert_eq!(recovered.output, output);
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&output).expect("read")).expect("json");
        assert_eq!(v["log"]["entries"][0]["request"]["url"], "http://a/");
        assert!(matches!(recover(&output), Err(Error::NoJournal(_))));
    }

    #[test]
    fn an_interrupted_journal_is_continued_after_a_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let output = dir.path().join("rec.har");
        let mut text = entry("2024-01-01T00:00:01.000000Z", "http://a/");
        text.extend_from_slice(b"\n{\"torn");
        std::fs::write(journal_path(&output), &text).expect("seed");
        let (mut journal, previous) = Journal::open(&output, Arc::default()).expect("open");
        assert_eq!(previous.entries, 1);
        journal
            .sender()
            .send(Message::Entry(entry(
                "2024-01-01T00:00:03.000000Z",
                "http://c/",
            )))
            .expect("send");
        journal.close().expect("close");
        let assembled = journal.finish(&output).expect("finish");
        assert_eq!((assembled.entries, assembled.skipped), (2, 1));
    }
}
