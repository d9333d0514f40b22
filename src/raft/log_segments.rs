//! The Raft log's entries in append-only segment files: `raft-log/<first index>.seg`.
//!
//! Why not a B-tree: a redb commit of one log entry writes about nine scattered pages
//! (copy-on-write) before its fsync, ~190–230 µs here. An append to a file whose blocks are
//! already allocated and zero-filled is one contiguous write and an `fdatasync` that has no
//! metadata to journal, ~95 µs (the same trick as PostgreSQL's pre-filled WAL segments).
//!
//! Layout. A segment starts with a 32-byte header: magic `PZRLOG\0\0`, format version (u32),
//! reserved (u32), the index of its first record (u64), CRC-32 of those 24 bytes (u32),
//! padding (u32). Records follow back to back: payload length (u32), CRC (u32), entry index
//! (u64), payload. A record's CRC covers its index and payload and starts from the previous
//! record's CRC (the header's for the first), so the records form a chain. The file is filled
//! with zeros ahead of the write position, 1 MiB at a time; a zero length ends the segment.
//!
//! Invariants:
//! - `append`, `truncate` and `purge` return only after what they changed is on disk.
//!   `write` is `append` without the sync: its entries are readable at once (replication
//!   sends them while they are synced) and on disk once a later `sync` returns. A segment is
//!   synced before the log rolls over to the next, so one `sync` of the active segment covers
//!   every earlier `write`.
//! - Records in a segment have consecutive indexes; a later segment starts right after the
//!   records of the one before it that are not purged. Reading stops at the first record
//!   whose length, CRC or index does not fit: a torn write at the tail is where the log ends.
//! - The chain means bytes left behind a truncation or a torn write never read as records
//!   again, even when a new record of the same length is written in front of them. Truncation
//!   also zeroes what it removes, so it stays removed if the node stops right after.
//! - A segment file appears under its final name only once its header is on disk (written
//!   as `.tmp`, synced, renamed, directory synced).

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::Read;
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

const MAGIC: &[u8; 8] = b"PZRLOG\0\0";
const FORMAT_VERSION: u32 = 1;
const HEADER_BYTES: u64 = 32;
const RECORD_HEADER_BYTES: u64 = 16;
/// A new segment is started once the current one would grow past this.
pub const SEGMENT_BYTES: u64 = 32 << 20;
/// Zeros are written this far ahead of the write position, so appends rarely change the
/// file's size (a size change makes `fdatasync` journal metadata too).
const FILL_BYTES: u64 = 1 << 20;
const SUFFIX: &str = "seg";

#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: {detail}")]
    Corrupt { path: String, detail: String },
    #[error("entry {got} does not follow the log's last entry {expected_after:?}")]
    OutOfOrder { got: u64, expected_after: Option<u64> },
}

type Result<T> = std::result::Result<T, SegmentError>;

fn io(path: &Path) -> impl Fn(std::io::Error) -> SegmentError + '_ {
    move |source| SegmentError::Io { path: path.display().to_string(), source }
}

/// One segment file, open for reading and writing.
struct Segment {
    /// The index of its first record (its name).
    first: u64,
    path: PathBuf,
    file: File,
    /// The CRC its record chain starts from.
    seed: u32,
}

/// Where one record lives.
#[derive(Clone, Copy)]
struct Slot {
    /// The first index of its segment (the key in `Index::segments`).
    segment: u64,
    /// Offset of the record's header in the segment file.
    offset: u64,
    len: u32,
    crc: u32,
}

impl Slot {
    fn end(&self) -> u64 {
        self.offset + RECORD_HEADER_BYTES + u64::from(self.len)
    }
}

/// Every record still in a segment file, purged or not, and the files.
#[derive(Default)]
struct Index {
    /// Index of `slots[0]`.
    first: u64,
    slots: VecDeque<Slot>,
    /// Entries up to here are purged: no longer readable, their files deleted once whole.
    purged: Option<u64>,
    segments: BTreeMap<u64, Arc<Segment>>,
}

impl Index {
    fn last(&self) -> Option<u64> {
        (!self.slots.is_empty()).then(|| self.first + self.slots.len() as u64 - 1)
    }

    fn slot(&self, index: u64) -> Option<&Slot> {
        index.checked_sub(self.first).and_then(|i| self.slots.get(usize::try_from(i).ok()?))
    }

    fn first_readable(&self) -> u64 {
        self.purged.map_or(self.first, |p| self.first.max(p + 1))
    }
}

/// The segment appends go to, and where.
#[derive(Default)]
struct Writer {
    active: Option<Arc<Segment>>,
    /// Index the next record in `active` must have.
    next_index: u64,
    position: u64,
    filled_to: u64,
    last_crc: u32,
}

/// The log's entries as opaque payloads; one writer (openraft's core), many readers.
pub struct SegmentLog {
    dir: PathBuf,
    segment_bytes: u64,
    writer: Mutex<Writer>,
    index: RwLock<Index>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SegmentLog {
    /// Open the segments in `dir` (created if missing), reading every record to find where
    /// the log ends. `purged`: the last purged index recorded beside the log; segments that
    /// hold only purged entries are deleted. `durable_end`: an index known to have been on
    /// disk; a log that ends before it is damaged, and nothing is deleted then.
    pub fn open(dir: &Path, purged: Option<u64>, durable_end: Option<u64>) -> Result<Self> {
        Self::open_with(dir, purged, durable_end, SEGMENT_BYTES)
    }

    fn open_with(dir: &Path, purged: Option<u64>, durable_end: Option<u64>, segment_bytes: u64) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut found = Vec::new();
        for item in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = item.map_err(io(dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            if name.ends_with(".tmp") {
                // A segment whose creation did not finish.
                std::fs::remove_file(&path).map_err(io(&path))?;
            } else if let Some(first) = name.strip_suffix(&format!(".{SUFFIX}")).and_then(|s| s.parse::<u64>().ok()) {
                found.push((first, path));
            }
        }
        found.sort();
        let mut index = Index { purged, ..Index::default() };
        let mut writer = Writer::default();
        // Deleted only once the whole log has been checked, so a refusal leaves every file.
        let mut doomed = Vec::new();
        for (first, path) in found {
            let ReadSegment { segment, records, end } = read_segment(&path, first)?;
            let last = records.len().checked_sub(1).map(|k| first + k as u64);
            if last.is_none_or(|last| purged.is_some_and(|p| last <= p)) {
                // Empty (a roll whose first append never landed) or wholly purged.
                doomed.push(path);
                continue;
            }
            let segment = Arc::new(segment);
            if let Some(expected) = index.last().map(|l| l + 1) {
                if first != expected {
                    return Err(SegmentError::Corrupt {
                        path: path.display().to_string(),
                        detail: format!("starts at entry {first}, but the segment before it ends at {}", expected - 1),
                    });
                }
            } else {
                index.first = first;
            }
            index.slots.extend(records.iter().copied());
            let filled_to = segment.file.metadata().map_err(io(&path))?.len();
            let last_crc = records.last().map_or(segment.seed, |s| s.crc);
            index.segments.insert(first, segment.clone());
            writer = Writer {
                active: Some(segment),
                next_index: last.map_or(first, |l| l + 1),
                position: end,
                filled_to,
                last_crc,
            };
        }
        if let (Some(p), Some(_)) = (purged, index.last()) {
            if index.first > p + 1 {
                return Err(SegmentError::Corrupt {
                    path: dir.display().to_string(),
                    detail: format!("the log starts at entry {}, but only entries up to {p} were purged", index.first),
                });
            }
        }
        let end = index.last().max(purged).unwrap_or(0);
        if let Some(durable) = durable_end.filter(|&d| d > end) {
            return Err(SegmentError::Corrupt {
                path: dir.display().to_string(),
                detail: format!("the Raft log ends at entry {end}, but entries up to {durable} were on disk: a segment file is damaged"),
            });
        }
        for path in doomed {
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
        Ok(Self { dir: dir.to_owned(), segment_bytes, writer: Mutex::new(writer), index: RwLock::new(index) })
    }

    fn read_index(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_index(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The last entry's index, if the log holds any entry that is not purged.
    pub fn last_index(&self) -> Option<u64> {
        let index = self.read_index();
        index.last().filter(|&l| l >= index.first_readable())
    }

    /// Payloads of the readable entries in `range`, in order.
    pub fn read(&self, range: (Bound<u64>, Bound<u64>)) -> Result<Vec<(u64, Vec<u8>)>> {
        let wanted: Vec<(u64, Slot, Arc<Segment>, u32)> = {
            let index = self.read_index();
            let Some(last) = index.last() else { return Ok(Vec::new()) };
            let start = match range.0 {
                Bound::Included(s) => s,
                Bound::Excluded(s) => s.saturating_add(1),
                Bound::Unbounded => 0,
            }
            .max(index.first_readable());
            let end = match range.1 {
                Bound::Included(e) => e.min(last),
                Bound::Excluded(0) => return Ok(Vec::new()),
                Bound::Excluded(e) => (e - 1).min(last),
                Bound::Unbounded => last,
            };
            let mut wanted = Vec::new();
            for i in start..=end {
                let (Some(slot), Some(segment)) =
                    (index.slot(i), index.slot(i).and_then(|s| index.segments.get(&s.segment)))
                else {
                    break;
                };
                let prev = match i.checked_sub(1).and_then(|p| index.slot(p)) {
                    Some(p) if p.segment == slot.segment => p.crc,
                    _ => segment.seed,
                };
                wanted.push((i, *slot, segment.clone(), prev));
            }
            wanted
        };
        // One read per run of records in the same segment (replication catch-up asks for up
        // to `max_payload_entries` at once).
        let mut out = Vec::with_capacity(wanted.len());
        let mut k = 0;
        while k < wanted.len() {
            let (_, first_slot, segment, _) = &wanted[k];
            let run = wanted[k..].iter().take_while(|w| Arc::ptr_eq(&w.2, segment)).count();
            let end = wanted[k + run - 1].1.end();
            let mut bytes = vec![0; (end - first_slot.offset) as usize];
            segment.file.read_exact_at(&mut bytes, first_slot.offset).map_err(io(&segment.path))?;
            for (i, slot, segment, prev) in &wanted[k..k + run] {
                let at = (slot.offset - first_slot.offset) as usize;
                match bytes.get(at..).and_then(|rest| parse_record(rest, *prev)) {
                    Some((index, crc, payload)) if index == *i && crc == slot.crc => out.push((*i, payload.to_vec())),
                    _ => {
                        return Err(SegmentError::Corrupt {
                            path: segment.path.display().to_string(),
                            detail: format!("entry {i} at offset {} no longer matches its checksum", slot.offset),
                        })
                    }
                }
            }
            k += run;
        }
        Ok(out)
    }

    /// Append entries (consecutive indexes, following the last one) and sync them.
    pub fn append(&self, entries: &[(u64, Vec<u8>)]) -> Result<()> {
        self.write(entries)?;
        self.sync()
    }

    /// Make every entry written so far durable: one `fdatasync` of the active segment (the
    /// segments before it were synced when the log rolled over).
    pub fn sync(&self) -> Result<()> {
        let active = lock(&self.writer).active.clone();
        match active {
            Some(segment) => segment.file.sync_data().map_err(io(&segment.path)),
            None => Ok(()),
        }
    }

    /// Append entries (consecutive indexes, following the last one) without syncing them.
    pub fn write(&self, entries: &[(u64, Vec<u8>)]) -> Result<()> {
        let Some(&(first, _)) = entries.first() else { return Ok(()) };
        let mut writer = lock(&self.writer);
        let last = self.read_index().last();
        let follows = last.is_none_or(|l| first == l + 1)
            || self.read_index().purged.is_some_and(|p| first == p + 1 && last.is_some_and(|l| l <= p));
        if !follows || entries.iter().enumerate().any(|(k, &(i, _))| i != first + k as u64) {
            return Err(SegmentError::OutOfOrder { got: first, expected_after: last });
        }
        let size: u64 = entries.iter().map(|(_, p)| RECORD_HEADER_BYTES + p.len() as u64).sum();
        let roll = match &writer.active {
            None => true,
            Some(_) => {
                writer.next_index != first
                    || (writer.position > HEADER_BYTES && writer.position + size > self.segment_bytes)
            }
        };
        if roll {
            // What was written to the segment before is synced before the log moves on, so a
            // later `sync` of the new one covers everything.
            if let Some(previous) = &writer.active {
                previous.file.sync_data().map_err(io(&previous.path))?;
            }
            let segment = Arc::new(self.create_segment(first)?);
            let stale: Vec<Arc<Segment>> = {
                let mut index = self.write_index();
                let stale = if index.last().is_some_and(|l| l + 1 != first) {
                    // A purge went past the log's end (a snapshot was installed): the old
                    // segments hold only purged entries.
                    index.slots.clear();
                    std::mem::take(&mut index.segments).into_values().collect()
                } else {
                    Vec::new()
                };
                if index.slots.is_empty() {
                    index.first = first;
                }
                index.segments.insert(first, segment.clone());
                stale
            };
            for old in stale.iter().filter(|old| old.path != segment.path) {
                std::fs::remove_file(&old.path).map_err(io(&old.path))?;
            }
            *writer = Writer {
                next_index: first,
                position: HEADER_BYTES,
                filled_to: segment.file.metadata().map_err(io(&segment.path))?.len(),
                last_crc: segment.seed,
                active: Some(segment),
            };
        }
        let Some(segment) = writer.active.clone() else {
            return Err(SegmentError::OutOfOrder { got: first, expected_after: last });
        };
        let mut buffer = Vec::with_capacity(size as usize);
        let mut slots = Vec::with_capacity(entries.len());
        let mut crc = writer.last_crc;
        for (i, payload) in entries {
            let offset = writer.position + buffer.len() as u64;
            let len = u32::try_from(payload.len()).map_err(|_| SegmentError::Corrupt {
                path: segment.path.display().to_string(),
                detail: format!("entry {i} is larger than 4 GiB"),
            })?;
            crc = record_crc(crc, *i, payload);
            buffer.extend_from_slice(&len.to_le_bytes());
            buffer.extend_from_slice(&crc.to_le_bytes());
            buffer.extend_from_slice(&i.to_le_bytes());
            buffer.extend_from_slice(payload);
            slots.push(Slot { segment: segment.first, offset, len, crc });
        }
        let end = writer.position + size;
        if end > writer.filled_to {
            let target = end.div_ceil(FILL_BYTES) * FILL_BYTES;
            write_zeros(&segment, writer.filled_to, target)?;
            writer.filled_to = target;
        }
        segment.file.write_all_at(&buffer, writer.position).map_err(io(&segment.path))?;
        writer.position = end;
        writer.last_crc = crc;
        writer.next_index = first + entries.len() as u64;
        self.write_index().slots.extend(slots);
        Ok(())
    }

    /// Remove entries at and after `from`, durably.
    pub fn truncate(&self, from: u64) -> Result<()> {
        let mut writer = lock(&self.writer);
        let index = self.read_index();
        let Some(last) = index.last() else { return Ok(()) };
        let from = from.max(index.first);
        if from > last {
            return Ok(());
        }
        // Segments that start at or after `from` go whole; the one holding `from` (if it
        // starts before) keeps its records before it and has the rest zeroed.
        let doomed: Vec<u64> = index.segments.range(from..).map(|(k, _)| *k).collect();
        let cut = index.slot(from).copied();
        let zero = match cut {
            Some(cut) if cut.segment < from => {
                let segment = index.segments.get(&cut.segment).cloned();
                let next_key = index.segments.range(cut.segment + 1..).next().map(|(k, _)| *k);
                let end =
                    next_key.and_then(|k| index.slot(k - 1)).or_else(|| index.slot(last)).map_or(cut.end(), Slot::end);
                segment.map(|s| (s, cut.offset, end))
            }
            _ => None,
        };
        drop(index);
        // Later segments first: if the node stops half-way, what is left is a prefix of the log.
        for key in doomed.iter().rev() {
            let path = self.segment_path(*key);
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
        if !doomed.is_empty() {
            sync_dir(&self.dir)?;
        }
        if let Some((segment, start, end)) = &zero {
            write_zeros(segment, *start, *end)?;
            segment.file.sync_data().map_err(io(&segment.path))?;
        }
        let mut index = self.write_index();
        for key in &doomed {
            index.segments.remove(key);
        }
        let kept = (from - index.first) as usize;
        index.slots.truncate(kept);
        // Appends continue after the last record kept, in its segment.
        *writer = match index.last().and_then(|l| index.slot(l)).copied() {
            Some(previous) => match index.segments.get(&previous.segment).cloned() {
                Some(segment) => Writer {
                    next_index: from,
                    position: previous.end(),
                    filled_to: segment.file.metadata().map_err(io(&segment.path))?.len(),
                    last_crc: previous.crc,
                    active: Some(segment),
                },
                None => Writer::default(),
            },
            None => Writer::default(),
        };
        Ok(())
    }

    /// Mark entries up to `upto` purged and delete the segments that hold nothing else. The
    /// caller has recorded `upto` durably first, so a deletion lost in a crash is redone at
    /// the next open.
    pub fn purge(&self, upto: u64) -> Result<()> {
        let _writer = lock(&self.writer);
        let doomed: Vec<Arc<Segment>> = {
            let mut index = self.write_index();
            index.purged = Some(index.purged.map_or(upto, |p| p.max(upto)));
            let keys: Vec<u64> = index.segments.keys().copied().collect();
            // A segment is whole purged when the next one starts at or before upto + 1; the
            // last segment stays, appends go there.
            let whole: Vec<u64> = keys.windows(2).filter(|w| w[1] <= upto + 1).map(|w| w[0]).collect();
            let doomed = whole.iter().filter_map(|k| index.segments.remove(k)).collect();
            if let Some(&first_kept) = index.segments.keys().next() {
                let dropped = first_kept.saturating_sub(index.first).min(index.slots.len() as u64) as usize;
                index.slots.drain(..dropped);
                index.first += dropped as u64;
            }
            doomed
        };
        for segment in doomed {
            std::fs::remove_file(&segment.path).map_err(io(&segment.path))?;
        }
        Ok(())
    }

    fn segment_path(&self, first: u64) -> PathBuf {
        self.dir.join(format!("{first:020}.{SUFFIX}"))
    }

    fn create_segment(&self, first: u64) -> Result<Segment> {
        let path = self.segment_path(first);
        let tmp = path.with_extension(format!("{SUFFIX}.tmp"));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io(&tmp))?;
        let header = header(first);
        file.write_all_at(&header, 0).map_err(io(&tmp))?;
        let segment = Segment { first, path: tmp, file, seed: crc32fast::hash(&header[..24]) };
        write_zeros(&segment, HEADER_BYTES, FILL_BYTES)?;
        segment.file.sync_all().map_err(io(&segment.path))?;
        std::fs::rename(&segment.path, &path).map_err(io(&path))?;
        sync_dir(&self.dir)?;
        Ok(Segment { path, ..segment })
    }
}

fn header(first: u64) -> [u8; HEADER_BYTES as usize] {
    let mut header = [0u8; HEADER_BYTES as usize];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[16..24].copy_from_slice(&first.to_le_bytes());
    let crc = crc32fast::hash(&header[..24]);
    header[24..28].copy_from_slice(&crc.to_le_bytes());
    header
}

fn record_crc(prev: u32, index: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new_with_initial(prev);
    hasher.update(&index.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// A record at the start of `bytes` that continues the chain from `prev`: its index, CRC and
/// payload.
fn parse_record(bytes: &[u8], prev: u32) -> Option<(u64, u32, &[u8])> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
    let crc = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    let index = u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?);
    if len == 0 {
        return None;
    }
    let payload = bytes.get(16..16 + len as usize)?;
    (record_crc(prev, index, payload) == crc).then_some((index, crc, payload))
}

/// A segment as read at open.
struct ReadSegment {
    segment: Segment,
    /// Its records, up to where the chain ends; the k-th has index `first + k`.
    records: Vec<Slot>,
    /// The offset after the last record.
    end: u64,
}

/// Read a whole segment.
fn read_segment(path: &Path, first: u64) -> Result<ReadSegment> {
    let mut file = std::fs::OpenOptions::new().read(true).write(true).open(path).map_err(io(path))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io(path))?;
    let corrupt = |detail: &str| SegmentError::Corrupt { path: path.display().to_string(), detail: detail.to_owned() };
    let head = bytes.get(..HEADER_BYTES as usize).ok_or_else(|| corrupt("shorter than a segment header"))?;
    if &head[..8] != MAGIC {
        return Err(corrupt("not a pizza-orders log segment (bad magic)"));
    }
    if head[..HEADER_BYTES as usize] != header(first) {
        let version = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
        return Err(corrupt(&if version != FORMAT_VERSION {
            format!("segment format {version}, this build reads {FORMAT_VERSION}")
        } else {
            format!("header does not match its name (first entry {first}) or its checksum")
        }));
    }
    let seed = crc32fast::hash(&head[..24]);
    let mut records = Vec::new();
    let mut offset = HEADER_BYTES;
    let mut prev = seed;
    let mut expected = first;
    while let Some((index, crc, payload)) = bytes.get(offset as usize..).and_then(|rest| parse_record(rest, prev)) {
        if index != expected {
            break;
        }
        let len = payload.len() as u32;
        records.push(Slot { segment: first, offset, len, crc });
        offset += RECORD_HEADER_BYTES + u64::from(len);
        prev = crc;
        expected += 1;
    }
    Ok(ReadSegment { segment: Segment { first, path: path.to_owned(), file, seed }, records, end: offset })
}

fn write_zeros(segment: &Segment, from: u64, to: u64) -> Result<()> {
    const CHUNK: usize = 256 << 10;
    let zeros = vec![0u8; CHUNK];
    let mut at = from;
    while at < to {
        let n = usize::try_from((to - at).min(CHUNK as u64)).unwrap_or(CHUNK);
        segment.file.write_all_at(&zeros[..n], at).map_err(io(&segment.path))?;
        at += n as u64;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn payload(i: u64, term: u64) -> Vec<u8> {
        format!("entry {i} of term {term}").repeat((i % 7 + 1) as usize).into_bytes()
    }

    fn all(log: &SegmentLog) -> Vec<(u64, Vec<u8>)> {
        log.read((Bound::Unbounded, Bound::Unbounded)).unwrap()
    }

    fn append(log: &SegmentLog, range: std::ops::RangeInclusive<u64>, term: u64) {
        let entries: Vec<_> = range.map(|i| (i, payload(i, term))).collect();
        log.append(&entries).unwrap();
    }

    fn segment_files(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension() == Some("seg".as_ref()))
            .count()
    }

    #[test]
    fn appended_entries_read_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let log = SegmentLog::open(dir.path(), None, None).unwrap();
        append(&log, 1..=3, 1);
        append(&log, 4..=4, 1);
        drop(log);
        let log = SegmentLog::open(dir.path(), None, None).unwrap();
        assert_eq!(all(&log), (1..=4).map(|i| (i, payload(i, 1))).collect::<Vec<_>>());
        assert_eq!(log.read((Bound::Included(2), Bound::Excluded(4))).unwrap().len(), 2);
        assert_eq!(log.last_index(), Some(4));
        assert!(matches!(log.append(&[(9, vec![1])]), Err(SegmentError::OutOfOrder { got: 9, .. })));
    }

    #[test]
    fn a_torn_last_record_ends_the_log_and_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let log = SegmentLog::open(dir.path(), None, None).unwrap();
        append(&log, 1..=5, 1);
        let slot = *log.read_index().slot(5).unwrap();
        let path = log.segment_path(1);
        drop(log);
        // Half of record 5 reached the disk.
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&[0xAB; 8], slot.offset + 20).unwrap();
        let log = SegmentLog::open(dir.path(), None, None).unwrap();
        assert_eq!(log.last_index(), Some(4));
        append(&log, 5..=6, 2);
        drop(log);
        let log = SegmentLog::open(dir.path(), None, None).unwrap();
        assert_eq!(all(&log).last(), Some(&(6, payload(6, 2))));
    }

    #[test]
    fn truncated_entries_stay_gone_even_behind_a_rewrite_of_the_same_length() {
        let dir = tempfile::tempdir().unwrap();
        let log = SegmentLog::open(dir.path(), None, None).unwrap();
        append(&log, 1..=6, 1);
        let (from, to) = (log.read_index().slot(5).unwrap().offset, log.read_index().slot(6).unwrap().end());
        let path = log.segment_path(1);
        let mut old = vec![0; (to - from) as usize];
        File::open(&path).unwrap().read_exact_at(&mut old, from).unwrap();
        log.truncate(4).unwrap();
        assert_eq!(log.last_index(), Some(3));
        drop(log);
        let log = SegmentLog::open(dir.path(), None, None).unwrap();
        assert_eq!(log.last_index(), Some(3), "truncation is durable");
        // The new 4 has the old one's length (the term digit has the same width). Put the old
        // 5 and 6 back behind it, as a zeroing lost in a crash would leave them: the chain
        // still ends the log at 4.
        append(&log, 4..=4, 2);
        drop(log);
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().write_all_at(&old, from).unwrap();
        let log = SegmentLog::open(dir.path(), None, None).unwrap();
        assert_eq!(all(&log).last(), Some(&(4, payload(4, 2))));
    }

    #[test]
    fn segments_roll_and_whole_purged_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let log = SegmentLog::open_with(dir.path(), None, None, 4096).unwrap();
        for i in 1..=200 {
            append(&log, i..=i, 1);
        }
        let files = segment_files(dir.path());
        assert!(files > 3, "{files} segments");
        log.purge(150).unwrap();
        assert!(segment_files(dir.path()) < files);
        assert_eq!(all(&log).first().map(|e| e.0), Some(151));
        drop(log);
        let log = SegmentLog::open_with(dir.path(), Some(150), None, 4096).unwrap();
        assert_eq!(all(&log).iter().map(|e| e.0).collect::<Vec<_>>(), (151..=200).collect::<Vec<_>>());
        // Truncation across segments.
        log.truncate(160).unwrap();
        append(&log, 160..=170, 2);
        drop(log);
        let log = SegmentLog::open_with(dir.path(), Some(150), None, 4096).unwrap();
        let read = all(&log);
        assert_eq!(read.len(), 20);
        assert_eq!(read.last(), Some(&(170, payload(170, 2))));
    }

    #[test]
    fn a_purge_past_the_end_starts_the_log_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let log = SegmentLog::open(dir.path(), None, None).unwrap();
        append(&log, 1..=5, 1);
        log.purge(100).unwrap();
        assert_eq!(log.last_index(), None);
        append(&log, 101..=102, 3);
        assert_eq!(segment_files(dir.path()), 1);
        drop(log);
        let log = SegmentLog::open(dir.path(), Some(100), None).unwrap();
        assert_eq!(all(&log).iter().map(|e| e.0).collect::<Vec<_>>(), vec![101, 102]);
    }

    #[test]
    fn a_gap_between_segments_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let log = SegmentLog::open_with(dir.path(), None, None, 1024).unwrap();
        for i in 1..=60 {
            append(&log, i..=i, 1);
        }
        let keys: Vec<u64> = log.read_index().segments.keys().copied().collect();
        drop(log);
        std::fs::remove_file(dir.path().join(format!("{:020}.seg", keys[1]))).unwrap();
        let err = SegmentLog::open_with(dir.path(), None, None, 1024).err().unwrap().to_string();
        assert!(err.contains("but the segment before it ends at"), "{err}");
    }

    #[test]
    fn a_log_shorter_than_its_durable_end_is_refused_and_keeps_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = SegmentLog::open_with(dir.path(), None, None, 1024).unwrap();
        for i in 1..=60 {
            append(&log, i..=i, 1);
        }
        let last_key = *log.read_index().segments.keys().last().unwrap();
        drop(log);
        // The first record of the last segment is damaged: that segment reads as empty.
        let path = dir.path().join(format!("{last_key:020}.seg"));
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().write_all_at(&[0xFF], HEADER_BYTES + 17).unwrap();
        let err = SegmentLog::open_with(dir.path(), None, Some(60), 1024).err().unwrap().to_string();
        assert!(err.contains(&format!("ends at entry {}, but entries up to 60 were on disk", last_key - 1)), "{err}");
        assert!(path.exists(), "a refused open deletes nothing");
        // Without the durable end the damage is indistinguishable from a torn last write.
        let log = SegmentLog::open_with(dir.path(), None, None, 1024).unwrap();
        assert_eq!(log.last_index(), Some(last_key - 1));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Append(u8),
        Truncate(u8),
        Purge(u8),
        Reopen,
        /// A crash in the middle of an append: these bytes landed after the log's end.
        TornAppend(Vec<u8>),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1u8..20).prop_map(Op::Append),
            1 => any::<u8>().prop_map(Op::Truncate),
            1 => any::<u8>().prop_map(Op::Purge),
            1 => Just(Op::Reopen),
            1 => proptest::collection::vec(any::<u8>(), 1..64).prop_map(Op::TornAppend),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        /// Whatever mix of appends, truncations, purges and restarts, the log reads back as
        /// a model Vec would.
        #[test]
        fn the_log_behaves_like_a_vector(ops in proptest::collection::vec(op(), 1..40)) {
            let dir = tempfile::tempdir().unwrap();
            let mut purged: Option<u64> = None;
            let mut log = SegmentLog::open_with(dir.path(), None, None, 2048).unwrap();
            let mut model: Vec<(u64, Vec<u8>)> = Vec::new();
            let mut term = 1;
            for op in ops {
                let last = model.last().map(|e| e.0).or(purged).unwrap_or(0);
                match op {
                    Op::Append(n) => {
                        let entries: Vec<_> = (last + 1..=last + u64::from(n)).map(|i| (i, payload(i, term))).collect();
                        log.append(&entries).unwrap();
                        model.extend(entries);
                    }
                    Op::Truncate(k) => {
                        let from = last.saturating_sub(u64::from(k) % 8).max(purged.map_or(1, |p| p + 1));
                        log.truncate(from).unwrap();
                        model.retain(|e| e.0 < from);
                        term += 1;
                    }
                    Op::Purge(k) => {
                        let upto = (purged.unwrap_or(0) + u64::from(k) % 30).max(purged.unwrap_or(0));
                        purged = Some(upto);
                        log.purge(upto).unwrap();
                        model.retain(|e| e.0 > upto);
                    }
                    Op::Reopen => {
                        drop(log);
                        log = SegmentLog::open_with(dir.path(), purged, None, 2048).unwrap();
                    }
                    Op::TornAppend(bytes) => {
                        let (active, position) = {
                            let writer = lock(&log.writer);
                            (writer.active.clone(), writer.position)
                        };
                        if let Some(active) = active {
                            active.file.write_all_at(&bytes, position).unwrap();
                        }
                        drop(log);
                        log = SegmentLog::open_with(dir.path(), purged, None, 2048).unwrap();
                    }
                }
                prop_assert_eq!(all(&log), model.clone());
                prop_assert_eq!(log.last_index(), model.last().map(|e| e.0));
            }
        }
    }
}
