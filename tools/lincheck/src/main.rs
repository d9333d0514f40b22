//! `lincheck`: checks the fault suite's history files for linearizability with a checker
//! nobody on this project wrote (todc-utils' `WGLChecker`), against the sequential
//! model in `orders.rs` (per user) and `slots.rs` (per slot), and compares its verdict with the
//! one the suite wrote into the file.
//!
//! `lincheck FILE...`: exit 0 when every history is linearizable and the suite agrees; 1 when
//! one is not, or the two checkers disagree; 2 when a file cannot be read.

mod history;
mod orders;
mod slots;
#[cfg(test)]
mod tests;

use std::process::ExitCode;
use std::time::Instant;

use history::{History, Kind, Op, Outcome};

/// What the checker found in one history.
pub struct Report {
    pub operations: usize,
    pub users: Vec<orders::UserVerdict>,
    pub slots: Vec<slots::SlotVerdict>,
    pub users_ms: u128,
    pub slots_ms: u128,
}

impl Report {
    pub fn linearizable(&self) -> bool {
        self.users.iter().all(|u| u.first_bad.is_none()) && self.slots.iter().all(|s| s.first_bad.is_none())
    }
}

/// For a check of the first `limit` events of a history of `len`: `None` if the whole history
/// passes, else the length of the shortest prefix that fails (its last event is the one to
/// blame). Binary search: a prefix of a passing prefix passes.
pub fn first_failing_prefix(len: usize, passes: impl Fn(usize) -> bool) -> Option<usize> {
    if passes(len) {
        return None;
    }
    let (mut good, mut bad) = (0, len);
    while bad - good > 1 {
        let mid = (good + bad) / 2;
        if passes(mid) {
            good = mid;
        } else {
            bad = mid;
        }
    }
    Some(bad)
}

pub fn check(history: &History) -> Report {
    let t = Instant::now();
    let users = orders::check(history);
    let users_ms = t.elapsed().as_millis();
    let t = Instant::now();
    let slots = slots::check(history);
    let slots_ms = t.elapsed().as_millis();
    Report { operations: history.ops.len(), users, slots, users_ms, slots_ms }
}

fn describe(op: &Op) -> String {
    let what = match &op.kind {
        Kind::Create { address, size, slot } => format!("create {address:?} {size} {slot}"),
        Kind::Update { id, from, address, size, slot } => {
            format!("change {id} if-match {from} to {address:?} {size} {slot}")
        }
        Kind::Cancel { id, from } => format!("cancel {id} if-match {from}"),
        Kind::Read => "read".to_owned(),
    };
    let outcome = match &op.outcome {
        Outcome::Written { id, seen } => {
            format!("ok {id} v{} {} {:?} {}", seen.version, seen.status, seen.address, seen.slot)
        }
        Outcome::Listed { orders, complete } => {
            let list: Vec<String> = orders.iter().map(|(id, s)| format!("{id} v{} {}", s.version, s.status)).collect();
            format!("ok [{}]{}", list.join(", "), if *complete { "" } else { " (more pages)" })
        }
        Outcome::Failed(problem) => format!("fail {problem}"),
        Outcome::Unknown(why) => format!("info {why}"),
    };
    let done = op.completed.map_or("never".to_owned(), |t| t.to_string());
    format!(
        "op {} process {} user {}: {what} -> {outcome} (invoked {} us, answered {done})",
        op.index, op.process, op.user, op.invoked
    )
}

fn main() -> ExitCode {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() || files.iter().any(|f| f == "-h" || f == "--help") {
        eprintln!("usage: lincheck HISTORY.jsonl...\n\nChecks fault-suite histories (docs/reliability.md, \"History files\") for linearizability.");
        return ExitCode::from(2);
    }
    let mut failed = false;
    for file in files {
        let started = Instant::now();
        let history = match std::fs::File::open(&file)
            .map_err(history::ReadError::from)
            .and_then(|f| history::read(std::io::BufReader::new(f)))
        {
            Ok(history) => history,
            Err(e) => {
                eprintln!("error: {file}: {e}");
                return ExitCode::from(2);
            }
        };
        let report = check(&history);
        let took = started.elapsed();
        let ok = report.linearizable();
        println!(
            "{file}: {} operations, {} users, {} slots: {} ({} ms: users {} ms, slots {} ms)",
            report.operations,
            report.users.len(),
            report.slots.len(),
            if ok { "linearizable" } else { "NOT linearizable" },
            took.as_millis(),
            report.users_ms,
            report.slots_ms
        );
        for user in &report.users {
            if let Some(i) = user.first_bad {
                println!(
                    "  user {} ({} operations): no order of them explains {}",
                    user.user,
                    user.operations,
                    describe(&history.ops[i])
                );
            }
        }
        for slot in &report.slots {
            match slot.first_bad {
                None => {}
                Some(Some(i)) => println!(
                    "  slot {} ({} changes): over capacity {} or refused while not full at {}",
                    slot.slot,
                    slot.operations,
                    history.header.capacity,
                    describe(&history.ops[i])
                ),
                Some(None) => println!("  slot {}: over capacity {}", slot.slot, history.header.capacity),
            }
        }
        match &history.verdict {
            Some(v) if (v.anomalies == 0) != ok => {
                println!(
                    "  DISAGREEMENT: {} reported {} anomalies{}; this checker finds the history {}",
                    v.checker,
                    v.anomalies,
                    v.problems.first().map(|p| format!(" (first: {p})")).unwrap_or_default(),
                    if ok { "linearizable" } else { "not linearizable" }
                );
                failed = true;
            }
            Some(_) => println!("  agrees with {}", history.verdict.as_ref().map_or("", |v| v.checker.as_str())),
            None => println!("  (the file carries no verdict of its own)"),
        }
        failed |= !ok;
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
