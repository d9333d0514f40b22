//! Apply throughput by batch size: N place-order commands applied in one durable redb
//! transaction (one fsync). Batch size 1 is what a write costs without group commit.
//!
//! Run: `cargo bench --bench apply`. Reports commands/s per batch size.

use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pizza_orders::domain::{
    Address, Cents, Currency, OrderId, OrderSpec, Price, Size, SlotGrid, Timestamp, Toppings, UserId,
};
use pizza_orders::state::{apply, Command, PlaceOrder, SlotCapacity};

const T0: i64 = 1_800_000_000_000;

fn place(n: u64, grid: &SlotGrid) -> Command {
    let now = Timestamp::from_millis(T0);
    let slot =
        grid.bookable(Timestamp::from_millis(T0 + 3_600_000 + (n as i64 % 1000) * 1_800_000), now).expect("slot");
    Command::PlaceOrder(PlaceOrder {
        order_id: OrderId::new_at(now),
        user: UserId::parse(&format!("bench-user-{n}")).expect("user"),
        at: now,
        spec: OrderSpec {
            address: Address::parse("1 Bench Street").expect("address"),
            size: Size::Large,
            toppings: Toppings::default(),
            slot,
        },
        price: Price { amount: Cents(1300), currency: Currency::parse("EUR").expect("currency") },
        capacity: SlotCapacity(u32::MAX),
        cutoff_ms: 0,
        idempotency: None,
    })
}

fn apply_batches(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let db = redb::Database::create(dir.path().join("bench.redb")).expect("db");
    let grid = SlotGrid::new(30, "00:00", "24:00", 3650, 0).expect("grid");
    let counter = AtomicU64::new(0);
    let revision = AtomicU64::new(0);
    let mut group = c.benchmark_group("apply_durable_batch");
    group.sample_size(10);
    for batch in [1u64, 16, 64, 256] {
        group.throughput(Throughput::Elements(batch));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            b.iter_batched(
                || (0..batch).map(|_| place(counter.fetch_add(1, Ordering::Relaxed), &grid)).collect::<Vec<_>>(),
                |commands| {
                    let txn = db.begin_write().expect("begin");
                    for command in &commands {
                        let rev = revision.fetch_add(1, Ordering::Relaxed) + 1;
                        let outcome = apply(&txn, rev, command).expect("apply");
                        assert!(outcome.is_ok(), "bench command rejected: {outcome:?}");
                    }
                    txn.commit().expect("commit");
                },
                criterion::BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, apply_batches);
criterion_main!(benches);
