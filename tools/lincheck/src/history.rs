//! Reading a history file (docs/reliability.md, "History files") into operations.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;

use serde::Deserialize;

/// What an order looked like in one answer.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
pub struct Seen {
    pub version: u64,
    pub address: String,
    pub size: String,
    pub slot: String,
    pub status: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Create { address: String, size: String, slot: String },
    Update { id: String, from: u64, address: String, size: String, slot: String },
    Cancel { id: String, from: u64 },
    Read,
}

impl Kind {
    /// The slot a create or change asks for.
    pub fn slot(&self) -> Option<&str> {
        match self {
            Kind::Create { slot, .. } | Kind::Update { slot, .. } => Some(slot),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A write answered with the order as it now is.
    Written { id: String, seen: Seen },
    /// A read answered; `complete`: the list held every order of the user.
    Listed { orders: BTreeMap<String, Seen>, complete: bool },
    /// A definite refusal (the problem's type): nothing changed.
    Failed(String),
    /// No answer: it may or may not have taken effect, at any time after `invoked`.
    Unknown(String),
}

#[derive(Clone, Debug)]
pub struct Op {
    pub index: u64,
    pub process: u64,
    pub user: String,
    pub kind: Kind,
    /// Microseconds since the run began.
    pub invoked: u64,
    /// `None` for an operation without an answer.
    pub completed: Option<u64>,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub transport: Option<String>,
    pub capacity: u64,
    pub slots: Vec<String>,
}

/// The verdict of the suite that wrote the history (its own checker).
#[derive(Clone, Debug, Deserialize)]
pub struct Verdict {
    pub checker: String,
    pub anomalies: usize,
    #[serde(default)]
    pub problems: Vec<String>,
}

/// A history in the order its events happened: `events` index into `ops`.
#[derive(Debug)]
pub struct History {
    pub header: Header,
    pub ops: Vec<Op>,
    /// (op, true for the invocation / false for the completion), in real-time order.
    pub events: Vec<(usize, bool)>,
    pub verdict: Option<Verdict>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: {why}")]
    Line { line: usize, why: String },
    #[error("the file is empty: a history starts with its header line")]
    Empty,
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    process: Option<u64>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    f: Option<String>,
    #[serde(default)]
    time: Option<u64>,
    #[serde(default)]
    value: serde_json::Value,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct WriteValue {
    id: String,
    order: Seen,
}

#[derive(Deserialize)]
struct ListValue {
    orders: BTreeMap<String, Seen>,
    complete: bool,
}

#[derive(Deserialize)]
struct CreateValue {
    address: String,
    size: String,
    slot: String,
}

#[derive(Deserialize)]
struct UpdateValue {
    id: String,
    from: u64,
    address: String,
    size: String,
    slot: String,
}

#[derive(Deserialize)]
struct CancelValue {
    id: String,
    from: u64,
}

pub fn read(input: impl BufRead) -> Result<History, ReadError> {
    let mut lines = input.lines().enumerate();
    let header: Header = match lines.next() {
        None => return Err(ReadError::Empty),
        Some((_, line)) => {
            serde_json::from_str(&line?).map_err(|e| ReadError::Line { line: 1, why: format!("header: {e}") })?
        }
    };
    if header.format != "pizza-orders-history" || header.version != 1 {
        return Err(ReadError::Line {
            line: 1,
            why: format!(
                "format {:?} version {}: this checker reads pizza-orders-history version 1",
                header.format, header.version
            ),
        });
    }
    let mut ops: Vec<Op> = Vec::new();
    let mut events = Vec::new();
    let mut open: HashMap<u64, usize> = HashMap::new();
    let mut crashed: HashMap<u64, u64> = HashMap::new();
    let mut last_time = 0;
    let mut verdict = None;
    for (n, line) in lines {
        let line_no = n + 1;
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: String| ReadError::Line { line: line_no, why };
        let event: Event = serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
        match event.kind.as_str() {
            "nemesis" => continue,
            "verdict" => {
                verdict = Some(serde_json::from_str(&line).map_err(|e| bad(format!("verdict: {e}")))?);
                continue;
            }
            "invoke" | "ok" | "fail" | "info" => {}
            other => return Err(bad(format!("unknown event type {other:?}"))),
        }
        let need = |what: &str| bad(format!("a {} event without {what}", event.kind));
        let process = event.process.ok_or_else(|| need("process"))?;
        let time = event.time.ok_or_else(|| need("time"))?;
        if time < last_time {
            return Err(bad(format!(
                "time {time} is before the previous event's {last_time}: events must be in real-time order"
            )));
        }
        last_time = time;
        if event.kind == "invoke" {
            if let Some(index) = crashed.get(&process) {
                return Err(bad(format!(
                    "process {process} invokes again after its operation {index} ended without an answer (info): it must continue as a new process"
                )));
            }
            if let Some(&i) = open.get(&process) {
                return Err(bad(format!(
                    "process {process} invokes while its operation {} is still open",
                    ops[i].index
                )));
            }
            let f = event.f.as_deref().ok_or_else(|| need("f"))?;
            let value = event.value.clone();
            let parse = |e: serde_json::Error| bad(format!("the value of a {f}: {e}"));
            let kind = match f {
                "create" => {
                    let v: CreateValue = serde_json::from_value(value).map_err(parse)?;
                    Kind::Create { address: v.address, size: v.size, slot: v.slot }
                }
                "update" => {
                    let v: UpdateValue = serde_json::from_value(value).map_err(parse)?;
                    Kind::Update { id: v.id, from: v.from, address: v.address, size: v.size, slot: v.slot }
                }
                "cancel" => {
                    let v: CancelValue = serde_json::from_value(value).map_err(parse)?;
                    Kind::Cancel { id: v.id, from: v.from }
                }
                "read" => Kind::Read,
                other => return Err(bad(format!("unknown operation {other:?}"))),
            };
            open.insert(process, ops.len());
            events.push((ops.len(), true));
            ops.push(Op {
                index: event.index.unwrap_or(ops.len() as u64),
                process,
                user: event.user.clone().ok_or_else(|| need("user"))?,
                kind,
                invoked: time,
                completed: None,
                outcome: Outcome::Unknown("no completion in the file".into()),
            });
            continue;
        }
        let i = open.remove(&process).ok_or_else(|| bad(format!("process {process} completes nothing it invoked")))?;
        let op = &mut ops[i];
        op.outcome = match event.kind.as_str() {
            "ok" => match op.kind {
                Kind::Read => {
                    let v: ListValue =
                        serde_json::from_value(event.value).map_err(|e| bad(format!("a read's value: {e}")))?;
                    Outcome::Listed { orders: v.orders, complete: v.complete }
                }
                _ => {
                    let v: WriteValue =
                        serde_json::from_value(event.value).map_err(|e| bad(format!("a write's value: {e}")))?;
                    Outcome::Written { id: v.id, seen: v.order }
                }
            },
            "fail" => Outcome::Failed(event.error.unwrap_or_default()),
            _ => {
                crashed.insert(process, op.index);
                Outcome::Unknown(event.error.unwrap_or_default())
            }
        };
        if event.kind != "info" {
            op.completed = Some(time);
            events.push((i, false));
        }
    }
    Ok(History { header, ops, events, verdict })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = r#"{"format":"pizza-orders-history","version":1,"capacity":3,"slots":["s1"]}"#;

    #[test]
    fn an_operation_without_an_answer_stays_open_and_its_process_may_not_invoke_again() {
        let text = format!(
            "{HEADER}\n{}\n{}\n{}\n",
            r#"{"type":"invoke","process":0,"index":0,"user":"u","f":"read","time":1}"#,
            r#"{"type":"info","process":0,"index":0,"user":"u","f":"read","time":2,"error":"timeout"}"#,
            r#"{"type":"invoke","process":0,"index":1,"user":"u","f":"read","time":3}"#,
        );
        let err = read(text.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("line 4") && err.contains("new process"), "{err}");
        let text = format!(
            "{HEADER}\n{}\n{}\n",
            r#"{"type":"invoke","process":0,"index":0,"user":"u","f":"cancel","value":{"id":"o1","from":1},"time":1}"#,
            r#"{"type":"info","process":0,"index":0,"user":"u","f":"cancel","time":2,"error":"timeout"}"#,
        );
        let history = read(text.as_bytes()).unwrap();
        assert_eq!(history.ops[0].completed, None);
        assert_eq!(history.events, vec![(0, true)]);
    }

    #[test]
    fn a_file_of_another_format_or_out_of_order_is_refused_with_its_line() {
        let err = read(r#"{"format":"other","version":1,"capacity":3,"slots":[]}"#.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        let text = format!(
            "{HEADER}\n{}\n{}\n",
            r#"{"type":"invoke","process":0,"index":0,"user":"u","f":"read","time":5}"#,
            r#"{"type":"ok","process":0,"index":0,"user":"u","f":"read","time":4,"value":{"orders":{},"complete":true}}"#,
        );
        let err = read(text.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("real-time order"), "{err}");
    }
}
