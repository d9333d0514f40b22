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
                // A round waits on peers (a quorum's heartbeats, or the leader's answer to a
                // follower's ask), as a write does: keep the CPUs from halting meanwhile.
                crate::raft::busy_poll::touch();
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

    /// A fetch that answers its round's number once the test opens the gate.
    fn gated() -> (ReadIndex, Arc<tokio::sync::Semaphore>, Arc<AtomicU64>) {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let rounds = Arc::new(AtomicU64::new(0));
        let (g, r) = (gate.clone(), rounds.clone());
        let index = ReadIndex::spawn(move || {
            let (gate, rounds) = (g.clone(), r.clone());
            async move {
                let n = rounds.fetch_add(1, Ordering::SeqCst) + 1;
                gate.acquire().await.unwrap().forget();
                Ok(n)
            }
        });
        (index, gate, rounds)
    }

    async fn until_rounds(rounds: &AtomicU64, n: u64) {
        let began = tokio::time::timeout(Duration::from_secs(5), async {
            while rounds.load(Ordering::SeqCst) < n {
                tokio::task::yield_now().await;
            }
        });
        assert!(began.await.is_ok(), "round {n} never began");
    }

    #[tokio::test]
    async fn a_read_arriving_during_a_round_waits_for_the_next() {
        let (index, gate, rounds) = gated();
        let early = tokio::spawn({
            let index = index.clone();
            async move { index.get().await }
        });
        until_rounds(&rounds, 1).await;
        // Round 1 is in flight: these two arrived after it began.
        let late: Vec<_> = (0..2)
            .map(|_| {
                let index = index.clone();
                tokio::spawn(async move { index.get().await })
            })
            .collect();
        tokio::task::yield_now().await;
        gate.add_permits(1);
        assert_eq!(early.await.unwrap().unwrap(), 1);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(late.iter().all(|read| !read.is_finished()), "answered by round 1, which began before them");
        until_rounds(&rounds, 2).await;
        gate.add_permits(1);
        for read in late {
            assert_eq!(read.await.unwrap().unwrap(), 2, "not round 1, which began before it");
        }
        assert_eq!(rounds.load(Ordering::SeqCst), 2, "the two late reads shared a round");
    }

    #[tokio::test]
    async fn a_failed_round_fails_its_reads_and_the_next_round_is_tried_afresh() {
        let calls = Arc::new(AtomicU64::new(0));
        let c = calls.clone();
        let index = ReadIndex::spawn(move || {
            let n = c.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if n == 1 {
                    Err(NodeError::NoLeader)
                } else {
                    Ok(40 + n)
                }
            }
        });
        assert!(matches!(index.get().await, Err(NodeError::NoLeader)));
        assert_eq!(index.get().await.unwrap(), 42);
    }

    #[tokio::test]
    async fn a_round_task_that_dies_answers_its_readers_instead_of_leaving_them_waiting() {
        let index = ReadIndex::spawn(|| async { panic!("fetch failed") });
        let read = tokio::time::timeout(Duration::from_secs(5), index.get()).await;
        assert!(matches!(read, Ok(Err(NodeError::ShuttingDown))), "{read:?}");
        assert!(matches!(index.get().await, Err(NodeError::ShuttingDown)));
    }

    #[tokio::test]
    async fn the_round_task_ends_with_the_last_handle() {
        let held = Arc::new(());
        let h = held.clone();
        let index = ReadIndex::spawn(move || {
            let _h = h.clone();
            async { Ok(1) }
        });
        let other = index.clone();
        assert_eq!(index.get().await.unwrap(), 1);
        drop(index);
        assert_eq!(other.get().await.unwrap(), 1, "one handle left: still running");
        drop(other);
        tokio::time::timeout(Duration::from_secs(5), async {
            while Arc::strong_count(&held) > 1 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the task dropped its fetch");
    }
}
