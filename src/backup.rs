//! The backup file: a 4 KiB text header block, then a state stream (`state::snapshot`).
//!
//! ```text
//! PIZZA-ORDERS-BACKUP
//! {"format":1,"cluster":"…","revision":…,"created_at":"…","orders":…,"records":…,"checksum":"…","body_bytes":…}
//! <spaces up to 4096 bytes, ending in a newline>
//! <state stream: length-prefixed records ending with a count and SHA-256>
//! ```
//!
//! `head -c 4096 FILE` shows what a backup holds. A backup is written to a temporary file,
//! verified while it streams in, completed with its header and only then renamed into place,
//! so a failed backup never leaves a file that looks complete.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::state::snapshot::{self, StreamSummary};
use crate::state::StoreError;

pub const MAGIC: &str = "PIZZA-ORDERS-BACKUP";
pub const FORMAT: u32 = 1;
const HEADER_BYTES: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupHeader {
    pub format: u32,
    pub cluster: String,
    /// The log index the backup reflects: every order committed up to it, nothing after.
    pub revision: u64,
    pub created_at: String,
    pub orders: u64,
    pub records: u64,
    /// SHA-256 over the state records, hex.
    pub checksum: String,
    pub body_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0} is not a pizza-orders backup (no {MAGIC} header)")]
    Foreign(PathBuf),
    #[error("{path} has backup format {found}; this build reads format {FORMAT}: use a matching pizza-orders version")]
    UnknownFormat { path: PathBuf, found: u32 },
    #[error("{path} has an unreadable header: {reason}")]
    BadHeader { path: PathBuf, reason: String },
    #[error("{path} is truncated: the header promises {expected} bytes of data, the file has {found}")]
    Truncated { path: PathBuf, expected: u64, found: u64 },
    #[error("{path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io { path: path.to_owned(), source }
}

/// Stream a state body from `body` into a new backup at `path` with the given identity.
pub fn write_backup(
    path: &Path,
    cluster: &str,
    revision: u64,
    created_at: &str,
    body: &mut impl Read,
) -> Result<BackupHeader, BackupError> {
    let tmp = path.with_file_name(format!(
        ".{}.partial-{}",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(&[b' '; HEADER_BYTES]).map_err(io(&tmp))?;
        let mut out = BufWriter::new(&mut file);
        let summary = snapshot::copy_verified(body, &mut out).map_err(|e| BackupError::Corrupt {
            path: tmp.clone(),
            reason: format!("the node sent a bad stream: {e}"),
        })?;
        drop(out);
        let header = header_for(cluster, revision, created_at, &summary);
        file.seek(SeekFrom::Start(0)).map_err(io(&tmp))?;
        file.write_all(&header_block(&header)?).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
        }
        Ok(header)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn header_for(cluster: &str, revision: u64, created_at: &str, summary: &StreamSummary) -> BackupHeader {
    BackupHeader {
        format: FORMAT,
        cluster: cluster.to_owned(),
        revision,
        created_at: created_at.to_owned(),
        orders: summary.orders,
        records: summary.state.records,
        checksum: summary.state.digest_hex(),
        body_bytes: summary.bytes,
    }
}

fn header_block(header: &BackupHeader) -> Result<Vec<u8>, BackupError> {
    let json = serde_json::to_string(header)
        .map_err(|e| BackupError::BadHeader { path: PathBuf::new(), reason: e.to_string() })?;
    let mut block = format!("{MAGIC}\n{json}\n").into_bytes();
    if block.len() > HEADER_BYTES {
        return Err(BackupError::BadHeader { path: PathBuf::new(), reason: "header too long (cluster name?)".into() });
    }
    block.resize(HEADER_BYTES - 1, b' ');
    block.push(b'\n');
    Ok(block)
}

/// Read and check a backup's header; the file is left positioned at the body.
pub fn open_backup(path: &Path) -> Result<(BackupHeader, BufReader<File>), BackupError> {
    let mut file = File::open(path).map_err(io(path))?;
    let mut block = vec![0u8; HEADER_BYTES];
    let mut filled = 0;
    while filled < HEADER_BYTES {
        match file.read(&mut block[filled..]).map_err(io(path))? {
            0 => break,
            n => filled += n,
        }
    }
    let text = String::from_utf8_lossy(&block[..filled]);
    let mut lines = text.splitn(3, '\n');
    if lines.next() != Some(MAGIC) {
        return Err(BackupError::Foreign(path.to_owned()));
    }
    if filled < HEADER_BYTES {
        return Err(BackupError::Truncated {
            path: path.to_owned(),
            expected: HEADER_BYTES as u64,
            found: filled as u64,
        });
    }
    let json = lines.next().unwrap_or("");
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| BackupError::BadHeader { path: path.to_owned(), reason: e.to_string() })?;
    let format = value["format"].as_u64().unwrap_or(0) as u32;
    if format != FORMAT {
        return Err(BackupError::UnknownFormat { path: path.to_owned(), found: format });
    }
    let header: BackupHeader = serde_json::from_value(value)
        .map_err(|e| BackupError::BadHeader { path: path.to_owned(), reason: e.to_string() })?;
    let length = file.metadata().map_err(io(path))?.len();
    let found = length.saturating_sub(HEADER_BYTES as u64);
    if found != header.body_bytes {
        return Err(BackupError::Truncated { path: path.to_owned(), expected: header.body_bytes, found });
    }
    Ok((header, BufReader::new(file)))
}

/// Read the whole backup, checking every record and the checksum against the header,
/// copying the body to `out`.
pub fn verify_backup(path: &Path, out: &mut impl Write) -> Result<BackupHeader, BackupError> {
    let (header, mut body) = open_backup(path)?;
    let summary = snapshot::copy_verified(&mut body, out)
        .map_err(|e: StoreError| BackupError::Corrupt { path: path.to_owned(), reason: e.to_string() })?;
    let expected = header_for(&header.cluster, header.revision, &header.created_at, &summary);
    if expected != header {
        return Err(BackupError::Corrupt {
            path: path.to_owned(),
            reason: "the contents do not match the header's count or checksum".into(),
        });
    }
    Ok(header)
}

/// Scheduled backups into a directory: `pizza-orders-<UTC time>-r<revision>.backup`, newest
/// kept, the oldest removed only after the new one verified (`backup --out-dir --keep`).
pub mod rotation {
    use std::path::{Path, PathBuf};

    use super::{io, BackupError};
    use crate::domain::Timestamp;

    const PREFIX: &str = "pizza-orders-";
    const SUFFIX: &str = ".backup";

    /// The file name of a backup taken at `created` at `revision`; names sort by time.
    pub fn file_name(created: Timestamp, revision: u64) -> String {
        format!("{PREFIX}{}-r{revision}{SUFFIX}", created.to_datetime().format("%Y%m%dT%H%M%SZ"))
    }

    /// The (time, revision) a rotated backup's name carries; `None` for any other file.
    fn rotated_key(name: &str) -> Option<(String, u64)> {
        let (time, revision) = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?.split_once("-r")?;
        let well_formed = time.len() == 16
            && time.as_bytes()[8] == b'T'
            && time.ends_with('Z')
            && time.bytes().filter(u8::is_ascii_digit).count() == 14;
        (well_formed && revision.bytes().all(|b| b.is_ascii_digit()))
            .then(|| revision.parse().ok().map(|r| (time.to_owned(), r)))
            .flatten()
    }

    #[cfg(test)]
    fn is_rotated(name: &str) -> bool {
        rotated_key(name).is_some()
    }

    /// The rotated backups in `dir`, oldest first (by time, then revision). Other files (and
    /// downloads under way, which start with a dot) are never listed, so never removed.
    pub fn list(dir: &Path) -> Result<Vec<PathBuf>, BackupError> {
        let mut found: Vec<((String, u64), String)> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter_map(|name| rotated_key(&name).map(|key| (key, name)))
            .collect();
        found.sort();
        Ok(found.into_iter().map(|(_, name)| dir.join(name)).collect())
    }

    /// Remove all but the newest `keep` rotated backups; returns what was removed and how many
    /// are left.
    pub fn prune(dir: &Path, keep: usize) -> Result<(Vec<PathBuf>, usize), BackupError> {
        let all = list(dir)?;
        let excess = all.len().saturating_sub(keep.max(1));
        let left = all.len() - excess;
        let mut removed = Vec::with_capacity(excess);
        for path in all.into_iter().take(excess) {
            std::fs::remove_file(&path).map_err(io(&path))?;
            removed.push(path);
        }
        Ok((removed, left))
    }

    /// What one scheduled run leaves for Prometheus' textfile collector.
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct RunMetrics {
        /// Where the backups go, as the `dir` label: two schedules on one host (two files in
        /// node_exporter's directory) must not write the same series.
        pub dir: String,
        pub attempt_at: i64,
        pub success: bool,
        pub last_success_at: Option<i64>,
        pub last_success_bytes: Option<u64>,
        pub last_success_orders: Option<u64>,
        pub kept_files: usize,
    }

    const LAST_SUCCESS: &str = "pizza_orders_backup_last_success_timestamp_seconds";
    const LAST_BYTES: &str = "pizza_orders_backup_last_success_bytes";
    const LAST_ORDERS: &str = "pizza_orders_backup_last_success_orders";

    impl RunMetrics {
        /// A failed run keeps the last success the previous file recorded.
        pub fn carry_success_from(&mut self, previous: &str) {
            let value = |name: &str| {
                previous.lines().find_map(|line| {
                    let rest = line.strip_prefix(name)?;
                    let value = match rest.strip_prefix('{') {
                        Some(labelled) => labelled.split_once("} ")?.1,
                        None => rest.strip_prefix(' ')?,
                    };
                    value.trim().parse::<f64>().ok()
                })
            };
            self.last_success_at = value(LAST_SUCCESS).map(|v| v as i64);
            self.last_success_bytes = value(LAST_BYTES).map(|v| v as u64);
            self.last_success_orders = value(LAST_ORDERS).map(|v| v as u64);
        }

        pub fn render(&self) -> String {
            let mut out = String::new();
            let dir = self.dir.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
            let mut gauge = |name: &str, help: &str, value: String| {
                out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{dir=\"{dir}\"}} {value}\n"));
            };
            gauge(
                "pizza_orders_backup_last_attempt_timestamp_seconds",
                "When the last scheduled backup ran (Unix time).",
                self.attempt_at.to_string(),
            );
            gauge(
                "pizza_orders_backup_last_attempt_success",
                "1 if the last scheduled backup was written and verified, else 0.",
                u8::from(self.success).to_string(),
            );
            if let Some(at) = self.last_success_at {
                gauge(LAST_SUCCESS, "When the newest verified backup was taken (Unix time).", at.to_string());
            }
            if let Some(bytes) = self.last_success_bytes {
                gauge(LAST_BYTES, "Size of the newest verified backup.", bytes.to_string());
            }
            if let Some(orders) = self.last_success_orders {
                gauge(LAST_ORDERS, "Orders in the newest verified backup.", orders.to_string());
            }
            gauge(
                "pizza_orders_backup_kept_files",
                "Verified backups kept in the directory.",
                self.kept_files.to_string(),
            );
            out
        }

        /// Write atomically (temporary file, then rename), so the collector never reads half.
        pub fn write(&self, path: &Path) -> Result<(), BackupError> {
            let tmp = path.with_file_name(format!(
                ".{}.tmp-{}",
                path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                std::process::id()
            ));
            std::fs::write(&tmp, self.render()).map_err(io(&tmp))?;
            std::fs::rename(&tmp, path).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                BackupError::Io { path: path.to_owned(), source: e }
            })
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn names_sort_by_time_and_only_rotated_files_count() {
            let at = |s: &str| Timestamp::parse_rfc3339(s).expect("time");
            let a = file_name(at("2026-11-30T07:05:09Z"), 12);
            assert_eq!(a, "pizza-orders-20261130T070509Z-r12.backup");
            assert!(is_rotated(&a));
            for other in [
                "orders.backup",
                ".pizza-orders-20261130T070509Z-r12.backup.partial-7",
                "pizza-orders-20261130T070509Z-r.backup",
                "pizza-orders-2026113T070509Z-r1.backup",
                "pizza-orders-20261130T070509Z-r1x.backup",
            ] {
                assert!(!is_rotated(other), "{other}");
            }
        }

        #[test]
        fn prune_keeps_the_newest_and_leaves_other_files() {
            let dir = tempfile::tempdir().expect("dir");
            let at = |s: &str| Timestamp::parse_rfc3339(s).expect("time");
            let names = [
                file_name(at("2026-11-30T03:00:00Z"), 9),
                file_name(at("2026-11-30T01:00:00Z"), 3),
                file_name(at("2026-11-30T03:00:00Z"), 10),
            ];
            for name in &names {
                std::fs::write(dir.path().join(name), b"x").expect("write");
            }
            std::fs::write(dir.path().join("notes.txt"), b"keep me").expect("write");
            let (removed, left) = prune(dir.path(), 2).expect("prune");
            assert_eq!(left, 2);
            assert_eq!(removed, vec![dir.path().join(&names[1])]);
            let left = list(dir.path()).expect("list");
            assert_eq!(left, vec![dir.path().join(&names[0]), dir.path().join(&names[2])], "r10 after r9");
            assert!(dir.path().join("notes.txt").exists());
        }

        #[test]
        fn a_failed_run_keeps_the_last_success() {
            let ok = RunMetrics {
                dir: "/backups/\"a\"".into(),
                attempt_at: 100,
                success: true,
                last_success_at: Some(100),
                last_success_bytes: Some(8192),
                last_success_orders: Some(7),
                kept_files: 3,
            };
            let mut failed = RunMetrics { attempt_at: 200, kept_files: 3, ..RunMetrics::default() };
            failed.carry_success_from(&ok.render());
            assert_eq!(failed.last_success_at, Some(100));
            assert_eq!(failed.last_success_bytes, Some(8192));
            assert_eq!(failed.last_success_orders, Some(7));
            let text = failed.render();
            assert!(text.contains("pizza_orders_backup_last_attempt_success{dir=\"\"} 0\n"), "{text}");
            assert!(text.contains("pizza_orders_backup_last_success_timestamp_seconds{dir=\"\"} 100\n"), "{text}");
            assert!(ok.render().contains("{dir=\"/backups/\\\"a\\\"\"} 100\n"), "{}", ok.render());
        }
    }
}
