//! Makes the state file durable once a second while entries are being applied.
//!
//! Apply commits without fsync (`raft::state_machine`): the Raft log is the durable record,
//! and a restarted node re-applies it from the last durable state. The checkpoint bounds that
//! replay to about a second of writes, and lets redb reuse the pages earlier commits freed
//! (it releases them only at a durable commit). It runs beside apply, not inside it, so apply
//! stays free of clocks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use redb::Database;

pub const INTERVAL: Duration = Duration::from_secs(1);

/// Checkpoint every [`INTERVAL`] while `applied` moves; stops once the database is closed.
pub fn spawn(state: Weak<Database>, applied: Arc<AtomicU64>) {
    tokio::spawn(async move {
        let mut durable = applied.load(Ordering::SeqCst);
        let mut ticks = tokio::time::interval(INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(db) = state.upgrade() else { return };
            let now = applied.load(Ordering::SeqCst);
            if now == durable {
                continue;
            }
            match tokio::task::spawn_blocking(move || crate::state::make_durable(&db)).await {
                Ok(Ok(())) => durable = now,
                Ok(Err(e)) => tracing::error!(error = %e, "making the state durable failed; retrying in a second"),
                Err(e) => tracing::error!(error = %e, "the state checkpoint task failed"),
            }
        }
    });
}
