//! Apply throughput by batch size: N place-order commands applied in one durable redb
//! transaction (one fsync). Batch size 1 is what a write costs without group commit.
//!
//! Each place reads its store's calendar and the menu from the replicated catalog (one store
//! row decoded, its calendar parsed); `apply_catalog_lookup` sets that beside data format 4's
//! command, which carried its rules, in one in-memory run, so the cost of the lookup shows.
//!
//! Run: `cargo bench --bench apply`. Reports commands/s per batch size.

use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pizza_orders::domain::{
    Address, CatalogDoc, Cents, Currency, DeliveryDoc, DeliveryPoint, MenuDoc, OrderId, OrderSpec, Price, Size,
    SizePrices, StoreCalendar, StoreDoc, StoreId, Timestamp, ToppingPrices, Toppings, UserId, WeekHours,
};
use pizza_orders::state::{apply, Command, LegacyPlaceOrder, PlaceOrder, SetCatalog, SlotCapacity};

const T0: i64 = 1_800_000_000_000;

fn catalog() -> CatalogDoc {
    CatalogDoc {
        menu: MenuDoc {
            currency: "EUR".into(),
            sizes: SizePrices::all(800, 1050, 1300),
            toppings: ToppingPrices::all(150, 200, 120),
            tax: None,
        },
        stores: vec![StoreDoc {
            id: "main".into(),
            name: "Bench".into(),
            address: String::new(),
            latitude: None,
            longitude: None,
            time_zone: "Europe/Berlin".into(),
            slot_minutes: 30,
            capacity: 100_000,
            cutoff_minutes: 0,
            horizon_days: 3650,
            hours: WeekHours::every_day(vec!["00:00-24:00".into()]),
            closed_dates: Vec::new(),
            capacity_overrides: Vec::new(),
            delivery: DeliveryDoc { everywhere: true, ..DeliveryDoc::default() },
            menu: None,
        }],
        menus: Default::default(),
    }
}

fn spec(n: u64, calendar: &StoreCalendar) -> OrderSpec {
    let now = Timestamp::from_millis(T0);
    let slot =
        calendar.bookable(Timestamp::from_millis(T0 + 3_600_000 + (n as i64 % 1000) * 1_800_000), now).expect("slot");
    OrderSpec {
        address: Address::parse("1 Bench Street").expect("address"),
        size: Size::Large,
        toppings: Toppings::default(),
        slot,
    }
}

fn place(n: u64, calendar: &StoreCalendar) -> Command {
    let now = Timestamp::from_millis(T0);
    Command::PlaceOrder(PlaceOrder {
        order_id: OrderId::new_at(now),
        user: UserId::parse(&format!("bench-user-{n}")).expect("user"),
        at: now,
        spec: spec(n, calendar),
        store: StoreId::parse("main").expect("store"),
        delivery: DeliveryPoint::default(),
        catalog_version: 1,
        idempotency: None,
    })
}

fn legacy_place(n: u64, calendar: &StoreCalendar) -> Command {
    let now = Timestamp::from_millis(T0);
    Command::LegacyPlaceOrder(LegacyPlaceOrder {
        order_id: OrderId::new_at(now),
        user: UserId::parse(&format!("bench-user-{n}")).expect("user"),
        at: now,
        spec: spec(n, calendar),
        price: Price { amount: Cents(1300), currency: Currency::parse("EUR").expect("currency") },
        capacity: SlotCapacity(100_000),
        cutoff_ms: 0,
        idempotency: None,
    })
}

fn seeded(db: &redb::Database) {
    let txn = db.begin_write().expect("begin");
    let seed = Command::SetCatalog(SetCatalog {
        at: Timestamp::from_millis(T0),
        author: "bench".into(),
        expected_version: None,
        seed: true,
        catalog: catalog(),
    });
    let outcome = apply(&txn, 0, &seed).expect("apply");
    assert!(outcome.is_ok(), "bench catalog rejected: {outcome:?}");
    txn.commit().expect("commit");
}

fn apply_batches(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let db = redb::Database::create(dir.path().join("bench.redb")).expect("db");
    seeded(&db);
    let calendar = catalog().stores[0].calendar().expect("calendar");
    let counter = AtomicU64::new(0);
    let revision = AtomicU64::new(0);
    let mut group = c.benchmark_group("apply_durable_batch");
    group.sample_size(10);
    for batch in [1u64, 16, 64, 256] {
        group.throughput(Throughput::Elements(batch));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            b.iter_batched(
                || (0..batch).map(|_| place(counter.fetch_add(1, Ordering::Relaxed), &calendar)).collect::<Vec<_>>(),
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

/// 256 places in one transaction without fsync (in memory): the catalog lookup against the
/// rules carried in the command.
fn apply_catalog_lookup(c: &mut Criterion) {
    let calendar = catalog().stores[0].calendar().expect("calendar");
    let mut group = c.benchmark_group("apply_catalog_lookup");
    group.sample_size(10);
    group.throughput(Throughput::Elements(256));
    type Make = fn(u64, &StoreCalendar) -> Command;
    for (name, make) in [("from_catalog", place as Make), ("rules_in_command", legacy_place as Make)] {
        let db = redb::Database::builder().create_with_backend(redb::backends::InMemoryBackend::new()).expect("db");
        seeded(&db);
        let counter = AtomicU64::new(0);
        group.bench_function(name, |b| {
            b.iter_batched(
                || (0..256).map(|_| make(counter.fetch_add(1, Ordering::Relaxed), &calendar)).collect::<Vec<_>>(),
                |commands| {
                    let txn = db.begin_write().expect("begin");
                    for (i, command) in commands.iter().enumerate() {
                        let outcome = apply(&txn, i as u64 + 1, command).expect("apply");
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

criterion_group!(benches, apply_batches, apply_catalog_lookup);
criterion_main!(benches);
