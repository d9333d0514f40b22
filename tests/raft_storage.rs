//! openraft's own storage conformance suite against our redb log store and state machine.

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use pizza_orders::raft::log_store::LogStore;
use pizza_orders::raft::state_machine::StateMachine;
use pizza_orders::raft::TypeConfig;
use pizza_orders::state::Store;

struct RedbBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for RedbBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open store");
        let db = store.shared_database();
        let state_machine = StateMachine::new(db.clone(), dir.path()).expect("state machine");
        Ok((dir, LogStore::new(db), state_machine))
    }
}

#[test]
fn the_redb_storage_passes_openraft_conformance_suite() {
    Suite::test_all(RedbBuilder).expect("openraft storage suite");
}
