//! openraft's own storage conformance suite against our log store (segment files) and state
//! machine (redb).

use openraft::testing::log::{StoreBuilder, Suite};
use openraft::StorageError;
use pizza_orders::raft::log_store::LogStore;
use pizza_orders::raft::state_machine::StateMachine;
use pizza_orders::raft::TypeConfig;
use pizza_orders::state::Store;

/// `node_id`: `Some` lets the log store sync another leader's entries on the appending thread
/// (`LogStore::with_node_id`), as a follower does; the suite's entries come from several leaders.
struct DiskBuilder {
    node_id: Option<u64>,
}

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for DiskBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open store");
        let state_machine = StateMachine::new(store.shared_database(), dir.path()).expect("state machine");
        let log_store = LogStore::open(dir.path(), store).expect("open log");
        let log_store = match self.node_id {
            Some(id) => log_store.with_node_id(id),
            None => log_store,
        };
        Ok((dir, log_store, state_machine))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raft_storage_passes_openraft_conformance_suite() {
    Suite::test_all(DiskBuilder { node_id: None }).await.expect("openraft storage suite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raft_storage_passes_openraft_conformance_suite_as_a_follower_that_syncs_appends_itself() {
    Suite::test_all(DiskBuilder { node_id: Some(1) }).await.expect("openraft storage suite");
}
