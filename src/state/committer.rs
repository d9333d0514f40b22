//! Group commit: the one thread that writes the state.
//!
//! Commands queue on a bounded channel. The thread takes whatever is waiting (up to
//! `max_batch`), applies each in order inside one redb write transaction, commits it durably
//! (one fsync for the whole batch) and only then answers each caller. While one batch is being
//! flushed the next one fills up, so batches grow exactly when load does.
//!
//! A rejected command changes nothing and does not affect its neighbours; a storage failure
//! aborts the whole batch and every caller in it gets an error (nothing was acknowledged).

use std::sync::Mutex;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use super::apply::{apply, Applied};
use super::command::Command;
use super::tables::{self, META};
use super::{Store, StoreError};

#[derive(Clone, Copy, Debug)]
pub struct CommitterSettings {
    /// Most commands per transaction; 1 turns batching off (one fsync per command).
    pub max_batch: usize,
    /// Commands that may wait for the writer before proposers are made to wait.
    pub queue_depth: usize,
}

type Reply = oneshot::Sender<Result<Applied, StoreError>>;

enum Message {
    Apply(Box<Command>, Reply),
    Stop,
}

pub struct Committer {
    queue: mpsc::Sender<Message>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Committer {
    pub fn start(store: Store, settings: CommitterSettings) -> Result<Self, StoreError> {
        let (queue, inbox) = mpsc::channel(settings.queue_depth.max(1));
        let next_revision = store.last_revision()? + 1;
        let max_batch = settings.max_batch.max(1);
        let thread = std::thread::Builder::new()
            .name("committer".into())
            .spawn(move || run(store, inbox, next_revision, max_batch))
            .map_err(|source| StoreError::DataDir { path: "(committer thread)".into(), source })?;
        Ok(Self { queue, thread: Mutex::new(Some(thread)) })
    }

    /// Apply `command` and wait until the batch holding it is durably committed.
    pub async fn propose(&self, command: Command) -> Result<Applied, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Message::Apply(Box::new(command), reply)).await.map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Finish the batch in progress and stop the thread. Commands queued after this fail.
    pub async fn shutdown(&self) {
        let _ = self.queue.send(Message::Stop).await;
        let handle = self.thread.lock().map(|mut t| t.take()).unwrap_or(None);
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}

fn run(store: Store, mut inbox: mpsc::Receiver<Message>, mut next_revision: u64, max_batch: usize) {
    let mut batch: Vec<(Box<Command>, Reply)> = Vec::with_capacity(max_batch);
    let mut stopping = false;
    while !stopping {
        match inbox.blocking_recv() {
            Some(Message::Apply(command, reply)) => batch.push((command, reply)),
            Some(Message::Stop) | None => break,
        }
        while batch.len() < max_batch {
            match inbox.try_recv() {
                Ok(Message::Apply(command, reply)) => batch.push((command, reply)),
                Ok(Message::Stop) => {
                    stopping = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let commands: Vec<&Command> = batch.iter().map(|(c, _)| c.as_ref()).collect();
        match commit_batch(&store, next_revision, &commands) {
            Ok(results) => {
                next_revision += batch.len() as u64;
                for ((_, reply), result) in batch.drain(..).zip(results) {
                    let _ = reply.send(Ok(result));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batch = batch.len(), "write batch failed; nothing in it was committed");
                let message = e.to_string();
                let mut first = Some(e);
                for (_, reply) in batch.drain(..) {
                    let error = first.take().unwrap_or_else(|| StoreError::BatchAborted(message.clone()));
                    let _ = reply.send(Err(error));
                }
            }
        }
    }
    tracing::debug!("committer stopped");
}

/// Apply `commands` at consecutive revisions from `first_revision` in one durable transaction.
fn commit_batch(store: &Store, first_revision: u64, commands: &[&Command]) -> Result<Vec<Applied>, StoreError> {
    // redb's default durability is `Immediate`: commit returns after the fsync. Never lowered.
    let txn = store.database().begin_write()?;
    let mut results = Vec::with_capacity(commands.len());
    let mut revision = first_revision;
    for command in commands {
        results.push(apply(&txn, revision, command)?);
        revision += 1;
    }
    {
        let mut meta = txn.open_table(META)?;
        meta.insert(tables::META_LAST_REVISION, revision - 1)?;
    }
    txn.commit()?;
    Ok(results)
}
