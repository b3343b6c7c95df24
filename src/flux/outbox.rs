//! What the forwarder still owes carbon: pickle frames in a bounded memory queue, overflowing
//! into a bounded disk spool, plus the protocol-2 pickle encoder for them.
//!
//! Frames are what flux's reference sends: a 4-byte big-endian length, then a protocol-2
//! pickle of a list of `(metric, (timestamp_int, value_float))` tuples, at most
//! `carbon_chunk_points` datapoints and [`MAX_FRAME_PAYLOAD`] bytes each (carbon's receiver
//! refuses frames over 1 MiB). The encoder writes only plain opcodes (PROTO, EMPTY_LIST, MARK,
//! BINUNICODE, BININT/LONG1, BINFLOAT, TUPLE2, APPENDS, STOP).
//!
//! Backpressure policy: memory holds up to `carbon_max_pending_points`; beyond it new frames go
//! to the disk spool (`<dir>/<seq>.pickles`, files of up to [`SPOOL_FILE_BYTES`]) up to
//! `carbon_spool_max_bytes`; beyond that they are dropped, counted
//! (`skyline_flux_datapoints_dropped_spool_full_total`) and reported to the caller, who logs
//! them. Frames are taken from memory first; when memory is empty the oldest spool file is read
//! back (and deleted). Carbon stores by timestamp, so the order between memory and spool does
//! not matter. A spool left by a previous run is sent after start-up. Spool writes are not
//! fsynced: a power cut may lose the last writes, a process crash does not.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::validate::FluxPoint;
use crate::telemetry::metrics as m;

/// Largest pickle payload per frame (carbon's `PICKLE_RECEIVER_MAX_LENGTH` is 1 MiB).
pub const MAX_FRAME_PAYLOAD: usize = 1_000_000;

/// Size at which a spool file is closed and a new one started.
pub const SPOOL_FILE_BYTES: u64 = 8 << 20;

/// One length-prefixed pickle frame for carbon.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Header and payload, ready to write.
    pub bytes: Vec<u8>,
    /// Datapoints in it.
    pub points: usize,
}

fn begin_frame(buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(&[0, 0, 0, 0]); // length, patched in `end_frame`
    buf.extend_from_slice(&[0x80, 2, b']', b'(']); // PROTO 2, EMPTY_LIST, MARK
}

fn end_frame(mut buf: Vec<u8>, points: usize) -> Frame {
    buf.extend_from_slice(b"e."); // APPENDS, STOP
    let len = (buf.len() - 4) as u32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Frame { bytes: buf, points }
}

fn encode_item(buf: &mut Vec<u8>, p: &FluxPoint) {
    buf.push(b'X'); // BINUNICODE
    buf.extend_from_slice(&(p.metric.len() as u32).to_le_bytes());
    buf.extend_from_slice(p.metric.as_bytes());
    match i32::try_from(p.timestamp) {
        Ok(t) => {
            buf.push(b'J'); // BININT
            buf.extend_from_slice(&t.to_le_bytes());
        }
        Err(_) => {
            buf.extend_from_slice(&[0x8a, 8]); // LONG1, 8 bytes two's complement
            buf.extend_from_slice(&p.timestamp.to_le_bytes());
        }
    }
    buf.push(b'G'); // BINFLOAT
    buf.extend_from_slice(&p.value.to_be_bytes());
    buf.extend_from_slice(&[0x86, 0x86]); // TUPLE2 (ts, value), TUPLE2 (name, pair)
}

/// Encodes `points` into frames of at most `chunk_points` datapoints (and
/// [`MAX_FRAME_PAYLOAD`] bytes), appended to `out`.
pub fn encode_frames(points: &[FluxPoint], chunk_points: usize, out: &mut Vec<Frame>) {
    let chunk_points = chunk_points.max(1);
    let mut buf = Vec::new();
    let mut n = 0;
    for p in points {
        let item_len = p.metric.len() + 32;
        if n > 0 && (n == chunk_points || buf.len() + item_len > MAX_FRAME_PAYLOAD) {
            out.push(end_frame(std::mem::take(&mut buf), n));
            n = 0;
        }
        if n == 0 {
            begin_frame(&mut buf);
        }
        encode_item(&mut buf, p);
        n += 1;
    }
    if n > 0 {
        out.push(end_frame(buf, n));
    }
}

/// Why a frame could not be kept.
#[derive(Debug)]
pub enum Refused {
    /// The spool is at `carbon_spool_max_bytes` (or there is no spool).
    Full,
    /// Writing the spool failed.
    Io(std::io::Error),
}

/// Pickle frames on disk: records of 4-byte big-endian point count + the frame.
#[derive(Debug)]
struct Spool {
    dir: PathBuf,
    /// Closed files, oldest first: (sequence number, bytes).
    files: VecDeque<(u64, u64)>,
    /// The file being appended to: (sequence, handle, bytes).
    writing: Option<(u64, File, u64)>,
    total_bytes: u64,
    max_bytes: u64,
    next_seq: u64,
}

impl Spool {
    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.pickles"))
    }

    fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(seq) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".pickles"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            files.push((seq, entry.metadata()?.len()));
        }
        files.sort_unstable();
        let total_bytes = files.iter().map(|f| f.1).sum();
        let next_seq = files.last().map_or(0, |f| f.0 + 1);
        Ok(Spool {
            dir: dir.to_path_buf(),
            files: files.into(),
            writing: None,
            total_bytes,
            max_bytes,
            next_seq,
        })
    }

    fn is_empty(&self) -> bool {
        self.total_bytes == 0
    }

    fn close_writing(&mut self) {
        if let Some((seq, _, bytes)) = self.writing.take() {
            self.files.push_back((seq, bytes));
        }
    }

    fn append(&mut self, frame: &Frame) -> Result<(), Refused> {
        let len = frame.bytes.len() as u64 + 4;
        if self.total_bytes + len > self.max_bytes {
            return Err(Refused::Full);
        }
        if self
            .writing
            .as_ref()
            .is_some_and(|w| w.2 >= SPOOL_FILE_BYTES)
        {
            self.close_writing();
        }
        if self.writing.is_none() {
            let seq = self.next_seq;
            self.next_seq += 1;
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.path(seq))
                .map_err(Refused::Io)?;
            self.writing = Some((seq, file, 0));
        }
        let Some((_, file, bytes)) = self.writing.as_mut() else {
            return Err(Refused::Full);
        };
        let mut rec = Vec::with_capacity(frame.bytes.len() + 4);
        rec.extend_from_slice(&(frame.points as u32).to_be_bytes());
        rec.extend_from_slice(&frame.bytes);
        file.write_all(&rec).map_err(Refused::Io)?;
        *bytes += len;
        self.total_bytes += len;
        Ok(())
    }

    /// Reads back and deletes the oldest file. A truncated tail (crash mid-write) is skipped;
    /// the second value counts the bytes lost that way.
    fn load_oldest(&mut self) -> std::io::Result<Option<(Vec<Frame>, usize)>> {
        if self.files.is_empty() {
            self.close_writing();
        }
        let Some((seq, bytes)) = self.files.pop_front() else {
            return Ok(None);
        };
        self.total_bytes = self.total_bytes.saturating_sub(bytes);
        let path = self.path(seq);
        let mut data = Vec::new();
        File::open(&path)?.read_to_end(&mut data)?;
        std::fs::remove_file(&path)?;
        let mut frames = Vec::new();
        let mut pos = 0;
        while pos + 8 <= data.len() {
            let points =
                u32::from_be_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]);
            let len =
                u32::from_be_bytes([data[pos + 4], data[pos + 5], data[pos + 6], data[pos + 7]])
                    as usize;
            let end = pos + 8 + len;
            if end > data.len() {
                break;
            }
            frames.push(Frame {
                bytes: data[pos + 4..end].to_vec(),
                points: points as usize,
            });
            pos = end;
        }
        Ok(Some((frames, data.len() - pos)))
    }
}

/// Frames owed to carbon: memory first, then the disk spool.
#[derive(Debug)]
pub struct Outbox {
    mem: VecDeque<Frame>,
    mem_points: usize,
    max_mem_points: usize,
    spool: Option<Spool>,
}

impl Outbox {
    /// An outbox holding `max_mem_points` in memory and spilling into `spool_dir` (none: frames
    /// over the memory bound are dropped). Opens (and will resend) a spool left by a previous
    /// run.
    pub fn new(
        max_mem_points: usize,
        spool_dir: Option<&Path>,
        spool_max_bytes: u64,
    ) -> std::io::Result<Outbox> {
        let spool = spool_dir
            .map(|d| Spool::open(d, spool_max_bytes))
            .transpose()?;
        let out = Outbox {
            mem: VecDeque::new(),
            mem_points: 0,
            max_mem_points,
            spool,
        };
        out.gauges();
        Ok(out)
    }

    fn gauges(&self) {
        m::FLUX_CARBON_PENDING.set(self.mem_points as i64);
        m::FLUX_SPOOL_BYTES.set(self.spool_bytes() as i64);
    }

    /// Datapoints in memory.
    pub fn mem_points(&self) -> usize {
        self.mem_points
    }

    /// Bytes in the disk spool.
    pub fn spool_bytes(&self) -> u64 {
        self.spool.as_ref().map_or(0, |s| s.total_bytes)
    }

    /// Nothing owed.
    pub fn is_empty(&self) -> bool {
        self.mem.is_empty() && self.spool.as_ref().is_none_or(Spool::is_empty)
    }

    /// Keeps `frame`: in memory while under the bound, else in the spool. On refusal the
    /// frame's datapoints are dropped and counted.
    pub fn push(&mut self, frame: Frame) -> Result<(), Refused> {
        let res = if self.mem_points + frame.points <= self.max_mem_points {
            self.mem_points += frame.points;
            self.mem.push_back(frame);
            Ok(())
        } else {
            self.spill(&frame)
        };
        self.gauges();
        res
    }

    fn spill(&mut self, frame: &Frame) -> Result<(), Refused> {
        let res = match self.spool.as_mut() {
            Some(s) => s.append(frame),
            None => Err(Refused::Full),
        };
        match res {
            Ok(()) => m::FLUX_SPOOLED.add(frame.points as u64),
            Err(_) => m::FLUX_DROPPED_SPOOL_FULL.add(frame.points as u64),
        }
        res
    }

    /// Takes frames from the front, up to about `max_bytes` (at least one frame), reading the
    /// oldest spool file back when memory is empty. I/O errors of the spool are returned.
    pub fn take(&mut self, max_bytes: usize) -> Result<Vec<Frame>, std::io::Error> {
        if self.mem.is_empty() {
            if let Some(spool) = self.spool.as_mut() {
                if let Some((frames, lost_bytes)) = spool.load_oldest()? {
                    for f in frames {
                        self.mem_points += f.points;
                        self.mem.push_back(f);
                    }
                    if lost_bytes > 0 {
                        return Err(std::io::Error::other(format!(
                            "spool file ended inside a frame; {lost_bytes} bytes skipped"
                        )));
                    }
                }
            }
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        while let Some(f) = self.mem.front() {
            if !out.is_empty() && bytes + f.bytes.len() > max_bytes {
                break;
            }
            bytes += f.bytes.len();
            if let Some(f) = self.mem.pop_front() {
                self.mem_points -= f.points;
                out.push(f);
            }
        }
        self.gauges();
        Ok(out)
    }

    /// Puts frames that could not be sent back in front (the memory bound may be exceeded by
    /// them: they were in memory already).
    pub fn put_back(&mut self, frames: Vec<Frame>) {
        for f in frames.into_iter().rev() {
            self.mem_points += f.points;
            self.mem.push_front(f);
        }
        self.gauges();
    }

    /// Shutdown: writes every frame in memory to the spool. Returns the datapoints that could
    /// not be written there (lost).
    pub fn spill_all(&mut self) -> usize {
        let mut lost = 0;
        while let Some(f) = self.mem.pop_front() {
            self.mem_points -= f.points;
            if self.spill(&f).is_err() {
                lost += f.points;
            }
        }
        if let Some(s) = self.spool.as_mut() {
            if let Some((_, file, _)) = s.writing.as_mut() {
                let _ = file.sync_data();
            }
        }
        self.gauges();
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listen::pickle::decode_datapoints;
    use crate::model::Number;

    fn pts(n: usize) -> Vec<FluxPoint> {
        (0..n)
            .map(|i| FluxPoint {
                metric: format!("m.{i:04}"),
                timestamp: 1_700_000_000 + i as i64,
                value: i as f64 + 0.5,
            })
            .collect()
    }

    #[test]
    fn frames_decode_with_our_decoder_and_serde_pickle() {
        let mut points = pts(5);
        points.push(FluxPoint {
            metric: "big.ts".into(),
            timestamp: 5_000_000_000,
            value: -1.0,
        });
        let mut frames = Vec::new();
        encode_frames(&points, 4, &mut frames);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].points, 4);
        let mut all = Vec::new();
        for f in &frames {
            let len = u32::from_be_bytes([f.bytes[0], f.bytes[1], f.bytes[2], f.bytes[3]]);
            assert_eq!(len as usize, f.bytes.len() - 4);
            let d = decode_datapoints(&f.bytes[4..]).unwrap();
            assert_eq!(d.bad_shape + d.bad_name + d.non_finite, 0);
            all.extend(d.points);
            let v: Vec<(String, (i64, f64))> =
                serde_pickle::from_slice(&f.bytes[4..], Default::default()).unwrap();
            assert!(!v.is_empty());
        }
        assert_eq!(all.len(), 6);
        assert_eq!(all[0].metric, "m.0000");
        assert_eq!(all[0].point.timestamp, Number::Int(1_700_000_000));
        assert_eq!(all[0].point.value, Number::Float(0.5));
        assert_eq!(all[5].point.timestamp, Number::Int(5_000_000_000));
    }

    #[test]
    fn frames_stay_under_carbons_cap() {
        let long = FluxPoint {
            metric: "x".repeat(3000),
            timestamp: 1,
            value: 1.0,
        };
        let mut frames = Vec::new();
        encode_frames(&vec![long; 500], 500, &mut frames);
        assert!(frames.len() >= 2);
        assert!(frames
            .iter()
            .all(|f| f.bytes.len() - 4 <= MAX_FRAME_PAYLOAD));
        assert_eq!(frames.iter().map(|f| f.points).sum::<usize>(), 500);
    }

    #[test]
    fn memory_then_spool_then_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut frames = Vec::new();
        encode_frames(&pts(100), 10, &mut frames);
        let mut ob = Outbox::new(30, Some(dir.path()), 1 << 20).unwrap();
        for f in frames.clone() {
            ob.push(f).unwrap();
        }
        assert_eq!(ob.mem_points(), 30);
        assert!(ob.spool_bytes() > 0);
        let mut got = Vec::new();
        loop {
            let t = ob.take(1 << 20).unwrap();
            if t.is_empty() {
                break;
            }
            got.extend(t);
        }
        assert!(ob.is_empty());
        assert_eq!(got.iter().map(|f| f.points).sum::<usize>(), 100);
        let mut a: Vec<_> = got.iter().map(|f| f.bytes.clone()).collect();
        let mut b: Vec<_> = frames.iter().map(|f| f.bytes.clone()).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "every frame comes back byte for byte");
    }

    #[test]
    fn spool_survives_a_restart_and_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut frames = Vec::new();
        encode_frames(&pts(50), 10, &mut frames);
        let one = frames[0].bytes.len() as u64 + 4;
        let mut ob = Outbox::new(10, Some(dir.path()), one * 3).unwrap();
        let refused = frames
            .iter()
            .filter(|f| ob.push((*f).clone()).is_err())
            .count();
        assert_eq!(refused, 1, "1 in memory, 3 spooled, 1 refused");
        assert_eq!(
            ob.spill_all(),
            10,
            "the memory frame no longer fits the spool"
        );
        drop(ob);
        let mut ob = Outbox::new(10, Some(dir.path()), one * 3).unwrap();
        assert!(!ob.is_empty());
        let mut n = 0;
        while let Ok(t) = ob.take(usize::MAX) {
            if t.is_empty() {
                break;
            }
            n += t.iter().map(|f| f.points).sum::<usize>();
        }
        assert_eq!(n, 30);
    }

    #[test]
    fn put_back_goes_in_front() {
        let mut frames = Vec::new();
        encode_frames(&pts(3), 1, &mut frames);
        let mut ob = Outbox::new(10, None, 0).unwrap();
        for f in frames.clone() {
            ob.push(f).unwrap();
        }
        let first = ob.take(1).unwrap();
        assert_eq!(first, vec![frames[0].clone()]);
        ob.put_back(first);
        assert_eq!(ob.take(usize::MAX).unwrap(), frames);
    }
}
