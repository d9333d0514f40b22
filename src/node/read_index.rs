//! Linearizable reads share leadership confirmations.
//!
//! A read index costs a heartbeat round to a quorum (and, on a follower, a request to the
//! leader). Reads that arrive while a round is in flight wait for the next round and share it,
//! as etcd batches its ReadIndex requests: under load there is at most one round in flight and
//! one queued, however many reads wait. A round only ever serves reads that were already
//! waiting when it began, so each sees every write acknowledged before it arrived.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

use super::NodeError;

type Waiter = oneshot::Sender<Result<u64, NodeError>>;

/// Hands out read indexes, one `fetch` per round for all waiting readers.
#[derive(Clone)]
pub struct ReadIndex {
    waiting: mpsc::UnboundedSender<Waiter>,
}

impl ReadIndex {
    /// Start the task that runs rounds with `fetch`; it ends when every handle is dropped.
    pub fn spawn<F, Fut>(fetch: F) -> Self
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<u64, NodeError>> + Send,
    {
        let (waiting, mut queue) = mpsc::unbounded_channel::<Waiter>();
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                let mut round = vec![first];
                while let Ok(next) = queue.try_recv() {
                    round.push(next);
                }
                round.retain(|w| !w.is_closed());
                if round.is_empty() {
                    continue;
                }
                metrics::histogram!("pizza_orders_read_index_round_size").record(round.len() as f64);
                let result = fetch().await;
                for waiter in round {
                    let _ = waiter.send(match &result {
                        Ok(index) => Ok(*index),
                        Err(e) => Err(e.for_each_command()),
                    });
                }
            }
        });
        Self { waiting }
    }

    /// The index a read that starts now must see applied.
    pub async fn get(&self) -> Result<u64, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.waiting.send(tx).map_err(|_| NodeError::ShuttingDown)?;
        rx.await.map_err(|_| NodeError::ShuttingDown)?
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn concurrent_reads_share_rounds_and_never_reuse_an_earlier_one() {
        let rounds = Arc::new(AtomicU64::new(0));
        let counter = rounds.clone();
        let index = ReadIndex::spawn(move || {
            let counter = counter.clone();
            async move {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(n)
            }
        });
        let reads: Vec<_> = (0..100)
            .map(|_| {
                tokio::spawn({
                    let index = index.clone();
                    async move { index.get().await.unwrap() }
                })
            })
            .collect();
        for read in reads {
            read.await.unwrap();
        }
        let used = rounds.load(Ordering::SeqCst);
        assert!(used <= 3, "100 concurrent reads took {used} rounds");
        // A read that arrives after a round began gets a later round.
        let before = index.get().await.unwrap();
        let after = index.get().await.unwrap();
        assert!(after > before);
    }
}
