//! `backup`, `restore`, `check` and `export`: the admins' and billing's data commands.
//!
//! Exit codes: 0 success; 1 the command failed (node unreachable, refused, I/O);
//! 2 bad usage or configuration; 3 the data is bad (a corrupt, truncated or foreign backup,
//! or `check` found problems). Nothing is written to the target when a command fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::admin_client::{self, CallError};
use super::{usage_error, AdminArgs, ConfigArgs};
use crate::backup::{self, BackupError};
use crate::domain::Timestamp;
use crate::raft::log_store::LogStore;
use crate::state::check::check_state;
use crate::state::snapshot::install_state;
use crate::state::{Store, StoreError};

const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(3600);

/// redb's page cache while restoring (default: up to 1 GiB, and the restore's memory grew with
/// the data).
const RESTORE_CACHE_BYTES: usize = 64 << 20;

#[derive(Args, Debug)]
pub struct Output {
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Print a machine-readable summary (JSON) on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Where to write the backup file.
    #[arg(long, value_name = "FILE", required_unless_present = "out_dir", conflicts_with = "out_dir")]
    pub out: Option<PathBuf>,
    /// Scheduled backups: write pizza-orders-<UTC time>-r<revision>.backup into DIR, verify it,
    /// then remove the oldest beyond --keep.
    #[arg(long, value_name = "DIR", requires = "keep")]
    pub out_dir: Option<PathBuf>,
    /// How many verified backups to keep in --out-dir (at least 1).
    #[arg(long, value_name = "N", requires = "out_dir", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: Option<u32>,
    /// Write the run's outcome for Prometheus' textfile collector (node_exporter), atomically.
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup file.
    #[arg(long = "in", value_name = "FILE")]
    pub input: PathBuf,
    /// An empty (or new) data directory for the restored node.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Replace whatever DIR holds.
    #[arg(long)]
    pub force: bool,
    /// The restored node's id (it starts as a one-node cluster).
    #[arg(long, default_value_t = 1)]
    pub node_id: u64,
    /// The HOST:PORT the restored node will be reached at (its listen or advertise address).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub advertise: String,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The data directory of a stopped node.
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// For the slot capacity to check against.
    #[command(flatten)]
    pub config: ConfigArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Ndjson,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    #[arg(long, value_enum, default_value = "csv")]
    pub format: ExportFormat,
    /// Only orders created, changed or cancelled after this revision (from a previous export).
    #[arg(long, value_name = "N", conflicts_with = "waitlist")]
    pub since_revision: Option<u64>,
    /// Export every waitlist entry with its position instead of orders (always whole).
    #[arg(long)]
    pub waitlist: bool,
    /// Write here instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub output: Output,
}

fn spinner(quiet: bool, what: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {bytes} ({bytes_per_sec}) {elapsed}") {
        bar.set_style(style);
    }
    bar.set_message(what.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A runtime with a worker thread: the download runs there while this thread writes the file.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().map_err(|e| {
        eprintln!("error: cannot start the async runtime: {e}");
        ExitCode::FAILURE
    })
}

fn call_failed(e: CallError) -> ExitCode {
    match e {
        CallError::Usage(message) => usage_error(message),
        CallError::Failed(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn backup_failed(e: BackupError) -> ExitCode {
    eprintln!("error: {e}");
    match e {
        BackupError::Io { .. } => ExitCode::FAILURE,
        _ => ExitCode::from(3),
    }
}

pub fn backup(args: BackupArgs) -> ExitCode {
    let attempt_at = Timestamp::now();
    let outcome = match (&args.out, &args.out_dir, args.keep) {
        (Some(out), _, _) => download(&args, |_| out.clone()).map(|header| (header, None)),
        (None, Some(dir), Some(keep)) => {
            scheduled(&args, dir, keep as usize).map(|(header, kept)| (header, Some(kept)))
        }
        _ => Err(usage_error("pass --out FILE, or --out-dir DIR with --keep N")),
    };
    if let Some(path) = &args.metrics_file {
        let dir = args.out_dir.as_ref().or(args.out.as_ref()).map(|p| p.display().to_string()).unwrap_or_default();
        let mut metrics =
            backup::rotation::RunMetrics { dir, attempt_at: attempt_at.millis() / 1000, ..Default::default() };
        match &outcome {
            Ok((header, kept)) => {
                metrics.success = true;
                metrics.last_success_at = Some(attempt_at.millis() / 1000);
                metrics.last_success_bytes = Some(header.body_bytes + 4096);
                metrics.last_success_orders = Some(header.orders);
                metrics.kept_files = kept.unwrap_or(1);
            }
            Err(_) => {
                metrics.carry_success_from(&std::fs::read_to_string(path).unwrap_or_default());
                if let Some(dir) = &args.out_dir {
                    metrics.kept_files = backup::rotation::list(dir).map(|l| l.len()).unwrap_or(0);
                }
            }
        }
        if let Err(e) = metrics.write(path) {
            eprintln!("error: cannot write the metrics file: {e}");
            return ExitCode::FAILURE;
        }
    }
    match outcome {
        Ok(_) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

/// `--out-dir DIR --keep N`: download under a time-stamped name, read the new file back whole,
/// and only then remove the oldest beyond N. Returns the new backup's header and how many are kept.
fn scheduled(args: &BackupArgs, dir: &Path, keep: usize) -> Result<(backup::BackupHeader, usize), ExitCode> {
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("error: cannot create {}: {e}", dir.display());
        return Err(ExitCode::FAILURE);
    }
    let started = Timestamp::now();
    let target = std::cell::RefCell::new(PathBuf::new());
    let header = download(args, |revision| {
        let path = dir.join(backup::rotation::file_name(started, revision));
        target.replace(path.clone());
        path
    })?;
    let target = target.into_inner();
    if let Err(e) = backup::verify_backup(&target, &mut std::io::sink()) {
        let _ = std::fs::remove_file(&target);
        eprintln!("error: the new backup did not verify when read back; it was removed and no old one was: {e}");
        return Err(ExitCode::FAILURE);
    }
    let (removed, kept) = backup::rotation::prune(dir, keep).map_err(|e| {
        eprintln!("error: the new backup {} is good, but removing old ones failed: {e}", target.display());
        ExitCode::FAILURE
    })?;
    for path in &removed {
        if !args.output.json {
            println!("removed {}", path.display());
        }
    }
    Ok((header, kept))
}

/// Download one backup from the node into the file `out` names for the node's revision
/// (written whole or not at all).
fn download(args: &BackupArgs, out: impl FnOnce(u64) -> PathBuf) -> Result<backup::BackupHeader, ExitCode> {
    let rt = runtime()?;
    let started = Instant::now();
    let response = match rt.block_on(admin_client::get(&args.admin, "/admin/backup", DOWNLOAD_TIMEOUT)) {
        Ok(r) => r,
        Err(e) => return Err(call_failed(e)),
    };
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let Some(revision) = header("x-pizza-revision").and_then(|r| r.parse::<u64>().ok()) else {
        eprintln!("error: {} did not say which revision the backup is at; is it a pizza-orders node?", args.admin.node);
        return Err(ExitCode::FAILURE);
    };
    let out = out(revision);
    let cluster = header("x-pizza-cluster").unwrap_or_default();
    let bar = spinner(args.output.quiet, "downloading");
    // Bridge the async download to the blocking writer through a bounded channel.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<u8>, String>>(16);
    let progress = bar.clone();
    let download = rt.spawn(async move {
        let mut response = response;
        loop {
            let item = match response.chunk().await {
                Ok(Some(c)) => Ok(c.to_vec()),
                Ok(None) => break,
                Err(e) => Err(format!("the download broke off: {e}")),
            };
            if let Ok(c) = &item {
                progress.inc(c.len() as u64);
            }
            let failed = item.is_err();
            if tx.send(item).is_err() || failed {
                break;
            }
        }
    });
    let mut reader = ChannelReader { rx, pending: Vec::new(), pos: 0 };
    let created = Timestamp::now().to_rfc3339();
    let result = backup::write_backup(&out, &cluster, revision, &created, &mut reader);
    drop(reader);
    let _ = rt.block_on(download);
    bar.finish_and_clear();
    match result {
        Ok(header) => {
            let summary = json!({"file": out, "cluster": header.cluster, "revision": header.revision,
                "orders": header.orders, "bytes": header.body_bytes + 4096, "checksum": header.checksum,
                "seconds": started.elapsed().as_secs_f64()});
            if args.output.json {
                println!("{summary}");
            } else {
                println!(
                    "backup of '{}' at revision {}: {} orders, {} bytes, written to {}",
                    header.cluster,
                    header.revision,
                    header.orders,
                    header.body_bytes + 4096,
                    out.display()
                );
            }
            Ok(header)
        }
        Err(e) => Err(backup_failed(e)),
    }
}

/// Reads the chunks the download task sends, as a blocking `Read`.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<Result<Vec<u8>, String>>,
    pending: Vec<u8>,
    pos: usize,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.pending.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.pending = chunk;
                    self.pos = 0;
                }
                Ok(Err(reason)) => return Err(std::io::Error::other(reason)),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.pending.len() - self.pos);
        buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn dir_is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).map(|mut d| d.next().is_none()).unwrap_or(true)
}

pub fn restore(args: RestoreArgs) -> ExitCode {
    let started = Instant::now();
    let bar = spinner(args.output.quiet, "verifying");
    // 1. Verify everything before touching the target.
    let header = match backup::verify_backup(&args.input, &mut std::io::sink()) {
        Ok(header) => header,
        Err(e) => {
            bar.finish_and_clear();
            return backup_failed(e);
        }
    };
    if !dir_is_empty(&args.data_dir) && !args.force {
        bar.finish_and_clear();
        return usage_error(format!(
            "{} is not empty; restore into an empty directory, or pass --force to replace what it holds",
            args.data_dir.display()
        ));
    }
    if args.force {
        let _ = std::fs::remove_file(args.data_dir.join(Store::FILE_NAME));
        LogStore::remove_files(&args.data_dir);
        let _ = std::fs::remove_dir_all(args.data_dir.join("snapshots"));
    }
    bar.set_message("restoring");
    let result = (|| -> Result<(), String> {
        let snapshots = args.data_dir.join("snapshots");
        std::fs::create_dir_all(&snapshots).map_err(|e| format!("{}: {e}", snapshots.display()))?;
        let body_copy = snapshots.join("restored.tmp");
        let mut file = std::fs::File::create(&body_copy).map_err(|e| e.to_string())?;
        backup::verify_backup(&args.input, &mut std::io::BufWriter::new(&mut file)).map_err(|e| e.to_string())?;
        file.sync_all().map_err(|e| e.to_string())?;
        // A bounded page cache bounds the memory of the one big transaction too: redb writes
        // dirty pages out (uncommitted) once its cache is full.
        let store = Store::open_with_cache(&args.data_dir, Some(RESTORE_CACHE_BYTES)).map_err(|e| e.to_string())?;
        let db = store.shared_database();
        let txn = db.begin_write().map_err(|e| e.to_string())?;
        let mut body = std::io::BufReader::new(std::fs::File::open(&body_copy).map_err(|e| e.to_string())?);
        install_state(&txn, &mut body).map_err(|e| e.to_string())?;
        let meta = crate::raft::state_machine::mark_restored(&txn, args.node_id, &args.advertise, header.revision)
            .map_err(|e| e.to_string())?;
        txn.commit().map_err(|e| e.to_string())?;
        if let Some(last) = meta.last_log_id {
            LogStore::open(&args.data_dir, store)
                .and_then(|log| log.record_restored(last))
                .map_err(|e| e.to_string())?;
        }
        crate::raft::state_machine::adopt_snapshot(&args.data_dir, &body_copy, &meta).map_err(|e| e.to_string())
    })();
    bar.finish_and_clear();
    if let Err(e) = result {
        eprintln!("error: restore into {} failed: {e}", args.data_dir.display());
        return ExitCode::FAILURE;
    }
    let summary = json!({"data_dir": args.data_dir, "cluster": header.cluster, "revision": header.revision,
        "orders": header.orders, "node_id": args.node_id, "seconds": started.elapsed().as_secs_f64()});
    if args.output.json {
        println!("{summary}");
    } else {
        println!(
            "restored {} orders of '{}' at revision {} into {}; start it as node {} (a one-node cluster), then grow it with 'cluster add'",
            header.orders,
            header.cluster,
            header.revision,
            args.data_dir.display(),
            args.node_id
        );
    }
    ExitCode::SUCCESS
}

pub fn check(args: CheckArgs) -> ExitCode {
    let path = args.data_dir.join(Store::FILE_NAME);
    if !path.exists() {
        return usage_error(format!("no database at {}", path.display()));
    }
    let report = (|| -> Result<_, StoreError> {
        let store = Store::open(&args.data_dir)?;
        let txn = store.begin_read()?;
        let revision = crate::raft::state_machine::applied_index(&txn)?.unwrap_or(0);
        Ok((revision, check_state(&txn, Timestamp::now())?))
    })();
    let (revision, report) = match report {
        Ok(r) => r,
        Err(StoreError::AlreadyOpen { path }) => {
            eprintln!("error: {path} is in use by a running node; stop it, or use GET /admin/check on the node");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(3);
        }
    };
    if args.json {
        println!("{}", json!({"ok": report.is_clean(), "revision": revision, "report": report}));
    } else {
        println!("{} orders ({} placed) at revision {}", report.orders, report.placed, revision);
        for problem in &report.problems {
            println!("problem: {problem}");
        }
        println!(
            "{}",
            if report.is_clean() {
                "ok: no problems found".to_owned()
            } else {
                format!("{} problems found", report.problem_count)
            }
        );
    }
    if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    }
}

pub fn export(args: ExportArgs) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let format = match args.format {
        ExportFormat::Csv => "csv",
        ExportFormat::Ndjson => "ndjson",
    };
    let mut path = format!("/admin/export?format={format}");
    if args.waitlist {
        path.push_str("&what=waitlist");
    }
    if let Some(since) = args.since_revision {
        path.push_str(&format!("&since_revision={since}"));
    }
    let response = match rt.block_on(admin_client::get(&args.admin, &path, DOWNLOAD_TIMEOUT)) {
        Ok(r) => r,
        Err(e) => return call_failed(e),
    };
    let revision: Option<u64> =
        response.headers().get("x-pizza-revision").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let bar = spinner(args.output.quiet || args.out.is_none(), "exporting");
    let tmp = args.out.as_ref().map(|p| {
        p.with_file_name(format!(
            ".{}.partial",
            p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        ))
    });
    let result = rt.block_on(async {
        let mut sink: Box<dyn Write> = match &tmp {
            Some(tmp) => Box::new(std::io::BufWriter::new(
                std::fs::File::create(tmp).map_err(|e| format!("{}: {e}", tmp.display()))?,
            )),
            None => Box::new(std::io::stdout().lock()),
        };
        let mut lines = 0u64;
        let mut response = response;
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("the export broke off: {e}"))? {
            lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
            bar.inc(chunk.len() as u64);
            sink.write_all(&chunk).map_err(|e| e.to_string())?;
        }
        sink.flush().map_err(|e| e.to_string())?;
        Ok::<u64, String>(lines)
    });
    bar.finish_and_clear();
    let lines = match result {
        Ok(lines) => lines,
        Err(e) => {
            if let Some(tmp) = &tmp {
                let _ = std::fs::remove_file(tmp);
            }
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let (Some(tmp), Some(out)) = (&tmp, &args.out) {
        if let Err(e) = std::fs::rename(tmp, out) {
            eprintln!("error: {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
    }
    let rows = match args.format {
        ExportFormat::Csv => lines.saturating_sub(1),
        ExportFormat::Ndjson => lines,
    };
    let what = if args.waitlist { "waitlist_entries" } else { "orders" };
    let summary = json!({"revision": revision, what: rows, "since_revision": args.since_revision, "format": format});
    if args.output.json && args.out.is_some() {
        println!("{summary}");
    } else if args.output.json {
        // The data went to stdout; the summary goes beside it.
        eprintln!("{summary}");
    } else if args.waitlist {
        eprintln!("exported {rows} waitlist entries as of revision {}", revision.map_or("?".into(), |r| r.to_string()));
    } else {
        eprintln!(
            "exported {rows} orders as of revision {}; next increment: --since-revision {}",
            revision.map_or("?".into(), |r| r.to_string()),
            revision.map_or("?".into(), |r| r.to_string())
        );
    }
    ExitCode::SUCCESS
}
