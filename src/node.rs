//! A running node: its configuration, token keys, storage and the write path.
//!
//! Every write goes through [`Node::propose`]. Today that is the local group-commit writer;
//! with replication it becomes the Raft log, and nothing above this type changes.

use std::sync::Arc;

use crate::auth::TokenKeys;
use crate::config::Config;
use crate::state::{Command, Committer, Outcome, Rejection, Store, StoreError};

pub struct Node {
    pub config: Config,
    pub keys: TokenKeys,
    pub store: Store,
    committer: Committer,
}

impl Node {
    pub fn open(config: Config) -> Result<Arc<Self>, StoreError> {
        let store = Store::open(&config.data_dir)?;
        let committer = Committer::start(store.clone(), config.committer)?;
        Ok(Arc::new(Self { keys: TokenKeys::new(&config.secret), config, store, committer }))
    }

    /// Apply `command` and return once its outcome is durable.
    pub async fn propose(&self, command: Command) -> Result<Result<Outcome, Rejection>, StoreError> {
        self.committer.propose(command).await
    }

    /// Stop the writer after the batch in flight; called once no request is in progress.
    pub async fn shutdown(&self) {
        self.committer.shutdown().await;
    }
}
