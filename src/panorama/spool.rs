//! The durable spool: anomalies accepted while the database is down, slow or backlogged wait
//! here, on disk, in arrival order, until Panorama inserts them.
//!
//! Layout of the spool directory (`[data] dir`/panorama-spool):
//! * `spool.jsonl`: append-only, one JSON [`SpoolRecord`] per line; every append is fsynced
//!   before it counts as spooled.
//! * `spool.offset`: the byte offset of the first record not yet inserted (the checkpoint),
//!   replaced atomically (write, fsync, rename, fsync the directory) after each inserted batch.
//!   When everything is inserted the log is truncated to zero and the checkpoint reset.
//! * `rejected.jsonl`: records the database refused repeatedly while reachable, or lines that
//!   do not parse; kept for the operator, never retried.
//!
//! Crash safety: a torn last line (crash mid-append) is cut off at open; a crash between a
//! batch commit and its checkpoint replays that batch, which Panorama then inserts with an
//! existence check, so it lands once. A checkpoint beyond the end of the log means the log was
//! truncated after a full drain, so everything in it is pending.
//!
//! Backpressure: none. The spool grows until the disk is full (each record is a few hundred
//! bytes; anomalies are rare). A failed append is reported to the caller, which counts the
//! anomaly as lost if it cannot insert it directly either.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::model::Anomaly;

const LOG: &str = "spool.jsonl";
const CHECKPOINT: &str = "spool.offset";
const REJECTED: &str = "rejected.jsonl";

/// Spool directories open in this process. Two writers on one spool would replay the same
/// records twice and corrupt each other's checkpoint, e.g. while an old Panorama actor winds
/// down next to its replacement. (Two *processes* sharing a data directory are not detected:
/// that is a misconfiguration the daemon's own pid/port checks must catch.)
static OPEN_SPOOLS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn open_spools() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    // A panic elsewhere while holding the lock leaves the list itself consistent.
    OPEN_SPOOLS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Spool I/O errors, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file operation failed.
    #[error("panorama spool {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A record could not be encoded.
    #[error("panorama spool: cannot encode record: {0}")]
    Encode(#[from] serde_json::Error),
    /// Another `Spool` in this process has the directory open.
    #[error("panorama spool {} is already open in this process", .0.display())]
    InUse(PathBuf),
    /// A record that would not read back (JSON has no NaN or infinity).
    #[error("panorama spool: non-finite datapoint for {0}")]
    NonFinite(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One spooled anomaly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpoolRecord {
    /// Epoch seconds when Panorama accepted it (for dedup rechecks and restart seeding).
    pub received_at: i64,
    /// False when it was accepted before the database's recent anomalies were known (the
    /// daemon started with the database down), so dedup must be rechecked before insert.
    pub dedup_checked: bool,
    /// The anomaly.
    pub anomaly: Anomaly,
}

/// A line read back from the log.
#[derive(Debug, Clone, PartialEq)]
pub enum SpoolItem {
    /// A record.
    Record(SpoolRecord),
    /// A line that does not parse (kept verbatim for `rejected.jsonl`).
    Corrupt(String),
}

/// A pending item and the log offset just past it (what [`Spool::commit`] takes).
#[derive(Debug, Clone, PartialEq)]
pub struct SpoolEntry {
    /// Offset just past this line.
    pub end_offset: u64,
    /// The line's content.
    pub item: SpoolItem,
}

/// An open spool directory.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    log_path: PathBuf,
    log: File,
    len: u64,
    read_offset: u64,
    depth: u64,
}

impl Spool {
    /// Opens (creating when absent) the spool in `dir`, repairs a torn last line and counts
    /// the pending records.
    pub fn open(dir: &Path) -> Result<Spool, SpoolError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let dir = &fs::canonicalize(dir).map_err(io_err(dir))?;
        {
            let mut open = open_spools();
            if open.iter().any(|d| d == dir) {
                return Err(SpoolError::InUse(dir.clone()));
            }
            open.push(dir.clone());
        }
        // From here on, dropping `spool` (also on error) releases the directory.
        let log_path = dir.join(LOG);
        let release = Release(dir.clone());
        let log = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err(&log_path))?;
        // Make the (possibly new) file's directory entry durable.
        sync_dir(dir)?;
        std::mem::forget(release);
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            log_path,
            log,
            len: 0,
            read_offset: 0,
            depth: 0,
        };
        spool.len = spool.log.metadata().map_err(io_err(&spool.log_path))?.len();
        let checkpoint = spool.read_checkpoint()?;
        // Beyond the end: the log was truncated after a full drain; all of it is pending.
        spool.read_offset = if checkpoint > spool.len {
            0
        } else {
            checkpoint
        };
        spool.scan()?;
        Ok(spool)
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records waiting to be inserted.
    pub fn depth(&self) -> u64 {
        self.depth
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.depth == 0
    }

    /// Appends `record` and fsyncs it. On error nothing is left behind in the log.
    pub fn push(&mut self, record: &SpoolRecord) -> Result<(), SpoolError> {
        if !record.anomaly.datapoint.is_finite() {
            return Err(SpoolError::NonFinite(record.anomaly.metric.clone()));
        }
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        let written = self
            .log
            .write_all(&line)
            .and_then(|()| self.log.sync_data());
        if let Err(e) = written {
            // Cut off a partial line so the next append starts on a line boundary.
            let _ = self.log.set_len(self.len);
            return Err(io_err(&self.log_path)(e));
        }
        self.len += line.len() as u64;
        self.depth += 1;
        Ok(())
    }

    /// Up to `max` pending entries, oldest first, without consuming them.
    pub fn peek(&self, max: usize) -> Result<Vec<SpoolEntry>, SpoolError> {
        let mut out = Vec::new();
        if self.depth == 0 || max == 0 {
            return Ok(out);
        }
        let mut reader = self.reader_at(self.read_offset)?;
        let mut offset = self.read_offset;
        let mut line = String::new();
        while out.len() < max && offset < self.len {
            line.clear();
            let n = reader
                .read_line(&mut line)
                .map_err(io_err(&self.log_path))?;
            if n == 0 {
                break;
            }
            offset += n as u64;
            let text = line.trim_end_matches('\n');
            let item = match serde_json::from_str::<SpoolRecord>(text) {
                Ok(r) => SpoolItem::Record(r),
                Err(_) => SpoolItem::Corrupt(text.to_string()),
            };
            out.push(SpoolEntry {
                end_offset: offset,
                item,
            });
        }
        Ok(out)
    }

    /// Every pending record (for seeding dedup at start; corrupt lines are left to the drain).
    pub fn pending(&self) -> Result<Vec<SpoolRecord>, SpoolError> {
        Ok(self
            .peek(usize::try_from(self.depth).unwrap_or(usize::MAX))?
            .into_iter()
            .filter_map(|e| match e.item {
                SpoolItem::Record(r) => Some(r),
                SpoolItem::Corrupt(_) => None,
            })
            .collect())
    }

    /// Marks everything before `end_offset` (which must come from [`Spool::peek`]) as done;
    /// `count` is the number of entries that covers. Truncates the log once it is drained.
    pub fn commit(&mut self, end_offset: u64, count: u64) -> Result<(), SpoolError> {
        let end_offset = end_offset.min(self.len);
        self.depth = self.depth.saturating_sub(count);
        if end_offset >= self.len {
            // Order matters: truncate first. A crash before the checkpoint reset leaves a
            // checkpoint beyond the (empty) log, which `open` reads as "nothing consumed".
            self.log.set_len(0).map_err(io_err(&self.log_path))?;
            self.log.sync_all().map_err(io_err(&self.log_path))?;
            self.len = 0;
            self.read_offset = 0;
            self.depth = 0;
            self.write_checkpoint(0)
        } else {
            self.read_offset = end_offset;
            self.write_checkpoint(end_offset)
        }
    }

    /// Appends a refused record (or an unparsable line) to `rejected.jsonl` with the reason.
    pub fn reject(&mut self, item: &SpoolItem, reason: &str, now: i64) -> Result<(), SpoolError> {
        #[derive(Serialize)]
        struct Rejected<'a> {
            rejected_at: i64,
            reason: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            record: Option<&'a SpoolRecord>,
            #[serde(skip_serializing_if = "Option::is_none")]
            raw: Option<&'a str>,
        }
        let (record, raw) = match item {
            SpoolItem::Record(r) => (Some(r), None),
            SpoolItem::Corrupt(s) => (None, Some(s.as_str())),
        };
        let mut line = serde_json::to_vec(&Rejected {
            rejected_at: now,
            reason,
            record,
            raw,
        })?;
        line.push(b'\n');
        let path = self.dir.join(REJECTED);
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        f.write_all(&line)
            .and_then(|()| f.sync_data())
            .map_err(io_err(&path))
    }

    fn reader_at(&self, offset: u64) -> Result<BufReader<File>, SpoolError> {
        let mut f = File::open(&self.log_path).map_err(io_err(&self.log_path))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(io_err(&self.log_path))?;
        Ok(BufReader::new(f))
    }

    /// Counts pending lines and cuts off a torn (unterminated) last line.
    fn scan(&mut self) -> Result<(), SpoolError> {
        let mut reader = self.reader_at(self.read_offset)?;
        let mut offset = self.read_offset;
        let mut complete_end = self.read_offset;
        let mut depth = 0;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(io_err(&self.log_path))?;
            if n == 0 {
                break;
            }
            offset += n as u64;
            if buf.last() == Some(&b'\n') {
                complete_end = offset;
                depth += 1;
            }
        }
        if complete_end < self.len {
            log::warn!(
                "panorama :: spool {} ends with a torn record ({} bytes), removing it",
                self.log_path.display(),
                self.len - complete_end
            );
            self.log
                .set_len(complete_end)
                .and_then(|()| self.log.sync_all())
                .map_err(io_err(&self.log_path))?;
            self.len = complete_end;
        }
        self.depth = depth;
        Ok(())
    }

    fn read_checkpoint(&self) -> Result<u64, SpoolError> {
        let path = self.dir.join(CHECKPOINT);
        let mut text = String::new();
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_string(&mut text).map_err(io_err(&path))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err(&path)(e)),
        }
        match text.trim().parse() {
            Ok(n) => Ok(n),
            Err(_) => {
                // Replaying from the start is safe: Panorama's replay skips what exists.
                log::warn!(
                    "panorama :: spool checkpoint {} is unreadable ({text:?}), replaying the whole spool",
                    path.display()
                );
                Ok(0)
            }
        }
    }

    fn write_checkpoint(&self, offset: u64) -> Result<(), SpoolError> {
        let path = self.dir.join(CHECKPOINT);
        let tmp = self.dir.join(format!("{CHECKPOINT}.tmp"));
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(offset.to_string().as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        sync_dir(&self.dir)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        open_spools().retain(|d| *d != self.dir);
    }
}

/// Releases a directory registration if `open` fails before the `Spool` exists.
struct Release(PathBuf);

impl Drop for Release {
    fn drop(&mut self) {
        open_spools().retain(|d| *d != self.0);
    }
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testutil::anomaly;

    fn rec(i: i64) -> SpoolRecord {
        SpoolRecord {
            received_at: 1_700_000_000 + i,
            dedup_checked: true,
            anomaly: anomaly(
                &format!("m.{i}"),
                1_700_000_000 + i,
                "analyzer",
                &["grubbs"],
            ),
        }
    }

    fn metrics(entries: &[SpoolEntry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| match &e.item {
                SpoolItem::Record(r) => r.anomaly.metric.clone(),
                SpoolItem::Corrupt(s) => format!("corrupt:{s}"),
            })
            .collect()
    }

    #[test]
    fn push_peek_commit_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path()).unwrap();
        assert!(s.is_empty());
        for i in 0..5 {
            s.push(&rec(i)).unwrap();
        }
        assert_eq!(s.depth(), 5);
        let first = s.peek(2).unwrap();
        assert_eq!(metrics(&first), ["m.0", "m.1"]);
        s.commit(first[1].end_offset, 2).unwrap();
        assert_eq!(s.depth(), 3);
        drop(s);

        // A restart sees exactly the three pending records, in order.
        let mut s = Spool::open(dir.path()).unwrap();
        assert_eq!(s.depth(), 3);
        assert_eq!(metrics(&s.peek(10).unwrap()), ["m.2", "m.3", "m.4"]);
        assert_eq!(s.pending().unwrap().len(), 3);
        s.push(&rec(5)).unwrap();
        let all = s.peek(10).unwrap();
        assert_eq!(metrics(&all), ["m.2", "m.3", "m.4", "m.5"]);
        s.commit(all[3].end_offset, 4).unwrap();
        assert!(s.is_empty());
        assert_eq!(
            fs::metadata(dir.path().join(LOG)).unwrap().len(),
            0,
            "truncated"
        );
        drop(s);
        let s = Spool::open(dir.path()).unwrap();
        assert!(s.is_empty());
        assert!(s.peek(10).unwrap().is_empty());
    }

    #[test]
    fn one_writer_per_directory_in_a_process() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path()).unwrap();
        // The same directory through another path spelling is still the same spool.
        let other = dir.path().join(".");
        assert!(matches!(Spool::open(&other), Err(SpoolError::InUse(_))));
        drop(s);
        Spool::open(&other).unwrap();
    }

    #[test]
    fn torn_tail_is_cut_and_appends_stay_parseable() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path()).unwrap();
        s.push(&rec(0)).unwrap();
        drop(s);
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG))
            .unwrap();
        f.write_all(b"{\"received_at\":1,\"dedup_ch").unwrap();
        drop(f);
        let mut s = Spool::open(dir.path()).unwrap();
        assert_eq!(s.depth(), 1);
        s.push(&rec(1)).unwrap();
        assert_eq!(metrics(&s.peek(10).unwrap()), ["m.0", "m.1"]);
    }

    #[test]
    fn crash_between_truncate_and_checkpoint_replays_the_new_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path()).unwrap();
        for i in 0..3 {
            s.push(&rec(i)).unwrap();
        }
        let e = s.peek(1).unwrap();
        s.commit(e[0].end_offset, 1).unwrap();
        drop(s);
        // Simulate: log truncated after a full drain, new record appended, stale checkpoint.
        let log = dir.path().join(LOG);
        OpenOptions::new()
            .write(true)
            .open(&log)
            .unwrap()
            .set_len(0)
            .unwrap();
        let mut s = Spool::open(dir.path()).unwrap();
        assert_eq!(s.depth(), 0);
        s.push(&rec(9)).unwrap();
        drop(s);
        fs::write(dir.path().join(CHECKPOINT), "999999").unwrap();
        let s = Spool::open(dir.path()).unwrap();
        assert_eq!(metrics(&s.peek(10).unwrap()), ["m.9"]);
    }

    #[test]
    fn corrupt_lines_are_reported_and_can_be_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path()).unwrap();
        s.push(&rec(0)).unwrap();
        drop(s);
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(LOG))
            .unwrap();
        f.write_all(b"not json\n").unwrap();
        drop(f);
        let mut s = Spool::open(dir.path()).unwrap();
        s.push(&rec(2)).unwrap();
        let all = s.peek(10).unwrap();
        assert_eq!(metrics(&all), ["m.0", "corrupt:not json", "m.2"]);
        assert_eq!(s.pending().unwrap().len(), 2);
        s.reject(&all[1].item, "unparsable", 5).unwrap();
        let rejected = fs::read_to_string(dir.path().join(REJECTED)).unwrap();
        assert!(rejected.contains("\"raw\":\"not json\""), "{rejected}");
        assert!(rejected.contains("unparsable"));
    }

    #[test]
    fn non_finite_values_cannot_be_spooled_and_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path()).unwrap();
        let mut r = rec(0);
        // serde_json writes NaN as null, which would not read back as f64.
        r.anomaly.datapoint = f64::NAN;
        assert!(matches!(s.push(&r), Err(SpoolError::NonFinite(_))));
        r.anomaly.datapoint = f64::INFINITY;
        assert!(s.push(&r).is_err());
        assert!(s.is_empty());
        assert_eq!(fs::metadata(dir.path().join(LOG)).unwrap().len(), 0);
    }
}
