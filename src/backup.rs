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
