//! Stores, delivery zones, time zones and the replicated catalog, black-box: real nodes on
//! loopback, talked to over HTTP and through the CLI.

mod common;

use std::time::Duration;

use common::cluster::{admin_token, eventually, TestCluster};
use common::{chain_file, client, get_as, get_json, run_cli, token, TestNode, CHAIN};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Midnight UTC `days` days from today, plus `hours`, as RFC 3339.
fn utc(days: i64, hours: i64) -> String {
    common::slot(days, hours * 2)
}

async fn post_order(base: &str, user: &str, body: &Value) -> reqwest::Response {
    client().post(format!("{base}/v1/orders")).bearer_auth(token(user)).json(body).send().await.expect("request")
}

async fn admin_put_catalog(base: &str, doc: &Value, expected: Option<u64>) -> reqwest::Response {
    let mut url = format!("{base}/admin/catalog");
    if let Some(v) = expected {
        url.push_str(&format!("?expected_version={v}"));
    }
    client().put(url).bearer_auth(admin_token()).json(doc).send().await.expect("request")
}

async fn catalog_of(base: &str) -> Value {
    let response = client().get(format!("{base}/admin/catalog")).bearer_auth(admin_token()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// The slot starting at `start` as `base` lists it for store `store`.
async fn slot_seen(base: &str, store: &str, start: &str, end: &str) -> Value {
    let url = format!("{base}/v1/stores/{store}/slots");
    let list: Value =
        client().get(url).query(&[("from", start), ("to", end)]).send().await.unwrap().json().await.unwrap();
    list["slots"].as_array().and_then(|s| s.first()).cloned().unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_with_different_config_files_give_one_answer_and_never_overbook() {
    // The scenario of the report: one node's file says 50 pizzas a slot, the others 2.
    let cluster =
        TestCluster::start_each(&[&["slots.capacity=50"], &["slots.capacity=2"], &["slots.capacity=2"]]).await;
    // Whichever leader seeded the catalog, every node serves that one.
    let seen = eventually(Duration::from_secs(20), "one catalog everywhere", || async {
        let mut all = Vec::new();
        for i in 0..3 {
            let stores: Value = client().get(cluster.url(i, "/v1/stores")).send().await.ok()?.json().await.ok()?;
            all.push((stores["catalog_version"].clone(), stores["stores"][0]["capacity"].clone()));
        }
        all.iter().all(|s| *s == all[0] && s.0 == 1).then(|| all[0].clone())
    })
    .await;
    assert!(seen.1 == 2 || seen.1 == 50, "{seen:?}");

    // The kitchen says 2: an admin applies that through the odd node.
    let mut doc = catalog_of(&cluster.url(0, "")).await["catalog"].clone();
    doc["stores"][0]["capacity"] = json!(2);
    let applied = admin_put_catalog(&cluster.url(0, ""), &doc, Some(1)).await;
    assert_eq!(applied.status(), StatusCode::OK, "{}", applied.text().await.unwrap_or_default());

    // Ten customers who all reach the odd node race for one slot: two win.
    let (start, end) = (utc(3, 12), utc(3, 13));
    let body = |_: usize| json!({ "address": "1 Main St", "size": "small", "delivery_slot": start });
    let base = cluster.url(0, "");
    let tries = (0..10).map(|i| {
        let (base, body) = (base.clone(), body(i));
        tokio::spawn(async move { post_order(&base, &format!("racer{i}"), &body).await.status() })
    });
    let mut statuses = Vec::new();
    for t in tries {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 2, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count(), 8, "{statuses:?}");

    // Every node answers the same capacity and remaining places.
    for i in 0..3 {
        let slot = slot_seen(&cluster.url(i, ""), "main", &start, &end).await;
        assert_eq!((slot["capacity"].clone(), slot["remaining"].clone()), (json!(2), json!(0)), "node {}", i + 1);
    }
    cluster.converged().await;
    for i in 0..3 {
        let check = cluster.admin_get(i, "/admin/check").await.expect("check");
        assert_eq!(check["ok"], true, "node {}: {check}", i + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn catalog_apply_is_validated_whole_replicated_kept_across_restarts_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let chain = chain_file(dir.path());
    let config = dir.path().join("admin.toml");
    std::fs::write(&config, format!("[auth]\njwt_secret = \"{}\"\n", common::SECRET)).unwrap();
    let mut cluster = TestCluster::start(3, &[&format!("catalog_file={chain}")]).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let node_url = cluster.url(follower, "");
    let cli = |args: &[&str]| {
        let mut all = vec!["catalog"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--node", &node_url, "--config", config.to_str().unwrap()]);
        run_cli(&all)
    };

    // A bad file changes nothing and every problem names its store and field.
    let bad = dir.path().join("bad.toml");
    let text = CHAIN
        .replace("time_zone = \"Pacific/Auckland\"", "time_zone = \"Pacific/Atlantis\"")
        .replace("capacity = 2\n", "capacity = 2\nslot_minutes = 7\n");
    std::fs::write(&bad, text).unwrap();
    let (code, _, err) = cli(&["apply", bad.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("store 'auckland': time_zone"), "{err}");
    assert!(err.contains("store 'kreuzberg': slot_minutes"), "{err}");
    let mut broken = catalog_of(&node_url).await["catalog"].clone();
    broken["stores"][1]["hours"]["mon"] = json!(["23:00-01:00"]);
    let refused = admin_put_catalog(&node_url, &broken, None).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["type"], "/problems/invalid-catalog");
    assert!(problem["errors"][0].as_str().unwrap().contains("store 'kreuzberg': hours.mon"), "{problem}");
    assert_eq!(catalog_of(&node_url).await["version"], 1);

    // A good change, applied through a follower, is diffed first and reaches every node.
    let good = dir.path().join("good.toml");
    std::fs::write(&good, CHAIN.replace("capacity = 3\n", "capacity = 7\n")).unwrap();
    let (code, diff, err) = cli(&["diff", good.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(diff.contains("-capacity = 3") && diff.contains("+capacity = 7"), "{diff}");
    let (code, out, err) = cli(&["apply", good.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("applied catalog version 2"), "{out}");
    for i in 0..3 {
        let url = cluster.url(i, "/v1/stores?consistency=linearizable");
        let stores: Value = client().get(url).send().await.unwrap().json().await.unwrap();
        let mitte = stores["stores"].as_array().unwrap().iter().find(|s| s["id"] == "mitte").unwrap().clone();
        assert_eq!((stores["catalog_version"].clone(), mitte["capacity"].clone()), (json!(2), json!(7)));
    }
    // Applying on top of a version that is no longer in force is refused.
    let stale = admin_put_catalog(&node_url, &catalog_of(&node_url).await["catalog"], Some(1)).await;
    assert_eq!(stale.status(), StatusCode::CONFLICT);

    // A restarted node serves the new catalog, whatever its file says; history has both.
    cluster.kill(follower);
    cluster.restart(follower);
    cluster.wait_ready().await;
    let (code, shown, err) = cli(&["show"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(shown.starts_with("# catalog version 2"), "{shown}");
    assert!(shown.contains("capacity = 7"), "{shown}");
    let (code, history, _) = cli(&["history"]);
    assert_eq!(code, Some(0));
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 3, "{history}");
    assert!(lines[1].trim_start().starts_with('1') && lines[1].contains("seed from node"), "{history}");
    assert!(lines[2].trim_start().starts_with('2') && lines[2].contains("cluster-admin"), "{history}");
}

#[tokio::test]
async fn the_address_decides_the_store_and_outside_names_the_nearest() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start_with(&[&format!("catalog_file={}", chain_file(dir.path()))]);
    let order = |user: &str, extra: Value| {
        let mut body = json!({ "address": "Somewhere 1", "size": "large", "delivery_slot": utc(5, 12) });
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let base = node.base.clone();
        let user = user.to_owned();
        async move { post_order(&base, &user, &body).await }
    };
    // Inside both Berlin areas, nearer Kreuzberg.
    let both: Value = order("u1", json!({ "latitude": 52.505, "longitude": 13.41 })).await.json().await.unwrap();
    assert_eq!(both["store_id"], "kreuzberg", "{both}");
    // Inside only Mitte's radius.
    let mitte: Value = order("u2", json!({ "latitude": 52.535, "longitude": 13.395 })).await.json().await.unwrap();
    assert_eq!(mitte["store_id"], "mitte", "{mitte}");
    // No location: the postcode decides (spaces around it do not matter).
    // (11:00 UTC is 23:00 or 00:00 in Auckland, inside its hours whatever the season.)
    let by_code: Value =
        order("u3", json!({ "postcode": " 1010 ", "delivery_slot": utc(5, 11) })).await.json().await.unwrap();
    assert_eq!((by_code["store_id"].clone(), by_code["postcode"].clone()), (json!("auckland"), json!("1010")));
    // A location outside every area: 422 naming the nearest store and its distance.
    let outside = order("u4", json!({ "latitude": 52.60, "longitude": 13.40 })).await;
    assert_eq!(outside.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = outside.json().await.unwrap();
    assert_eq!(problem["type"], "/problems/outside-delivery-area");
    assert_eq!(problem["nearest_store"]["id"], "mitte");
    let km = problem["nearest_store"]["distance_m"].as_f64().unwrap() / 1000.0;
    assert!((7.0..9.0).contains(&km), "{problem}");
    // A named store must cover the address.
    let wrong = order("u5", json!({ "latitude": 52.505, "longitude": 13.41, "store_id": "auckland" })).await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let named: Value =
        order("u6", json!({ "latitude": 52.505, "longitude": 13.41, "store_id": "mitte" })).await.json().await.unwrap();
    assert_eq!(named["store_id"], "mitte");
    // Nothing to go on: the field to fill in is named.
    let nothing = order("u7", json!({})).await;
    let problem: Value = nothing.json().await.unwrap();
    assert_eq!(
        (problem["type"].clone(), problem["field"].clone()),
        (json!("/problems/invalid-field"), json!("postcode"))
    );
    // Bad coordinates are named too.
    let bad = order("u8", json!({ "latitude": 95.0, "longitude": 13.4 })).await;
    let problem: Value = bad.json().await.unwrap();
    assert_eq!(problem["field"], "latitude", "{problem}");
    // /v1/stores/locate answers the same question without ordering, and says what took the
    // address: the most specific entry of any store's postcode list, or the area.
    let locate = |query: Vec<(&'static str, String)>| {
        let url = node.url("/v1/stores/locate");
        async move { get_json(&url, &query.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()).await }
    };
    let by_code = |code: &'static str| locate(vec![("postcode", code.to_owned())]);
    for (code, store, rule) in [
        ("10997", "kreuzberg", "10997"),
        ("10 967", "kreuzberg", "10961-10999"),
        ("10178", "mitte", "101*"),
        ("10115", "mitte", "10115"),
    ] {
        let located = by_code(code).await;
        assert_eq!(
            (&located["store"]["id"], &located["matched_by"], &located["postcode_rule"]),
            (&json!(store), &json!("postcode"), &json!(rule)),
            "{code}: {located}"
        );
    }
    let in_radius =
        locate(vec![("latitude", "52.535".into()), ("longitude", "13.395".into()), ("postcode", "10997".into())]).await;
    assert_eq!(
        (&in_radius["store"]["id"], &in_radius["matched_by"]),
        (&json!("mitte"), &json!("radius")),
        "{in_radius}"
    );
    assert_eq!(in_radius["postcode_rule"], Value::Null);
    let list = get_json(&node.url("/v1/stores"), &[]).await;
    let kreuzberg = list["stores"].as_array().unwrap().iter().find(|s| s["id"] == "kreuzberg").unwrap().clone();
    assert_eq!(kreuzberg["postcodes"], json!(["10997", "10961-10999"]), "{kreuzberg}");
    // An order by a postcode that only a range holds goes to that store.
    let ranged: Value =
        order("u9", json!({ "postcode": "10965", "delivery_slot": utc(5, 13) })).await.json().await.unwrap();
    assert_eq!(ranged["store_id"], "kreuzberg", "{ranged}");
}

/// The next local day (at least two days ahead) in `zone` that lasts `hours` hours, as the
/// UTC instants of its first and last midnight. The dates come from chrono-tz, so the test
/// holds whatever year it runs in.
fn next_day_lasting(zone: chrono_tz::Tz, hours: i64) -> (String, String) {
    use chrono::{Duration as Days, TimeZone, Utc};
    let today = Utc::now().date_naive();
    for ahead in 2..400 {
        let day = today + Days::days(ahead);
        let midnight =
            |d: chrono::NaiveDate| zone.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap()).earliest().unwrap();
        let (from, to) = (midnight(day), midnight(day + Days::days(1)));
        if (to - from).num_hours() == hours {
            let text = |t: chrono::DateTime<chrono_tz::Tz>| {
                t.with_timezone(&Utc).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            };
            return (text(from), text(to));
        }
    }
    panic!("no {hours}-hour day in {zone} within 400 days");
}

#[tokio::test]
async fn slots_follow_each_stores_local_clock_across_daylight_saving_days() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start_with(&[&format!("catalog_file={}", chain_file(dir.path()))]);
    let slots = |store: &'static str, from: String, to: String| {
        let url = node.url(&format!("/v1/stores/{store}/slots"));
        async move {
            let list: Value =
                client().get(url).query(&[("from", from), ("to", to)]).send().await.unwrap().json().await.unwrap();
            list["slots"].as_array().cloned().unwrap_or_default()
        }
    };
    let local = |s: &Value| s["local_start"].as_str().unwrap().to_owned();
    // Berlin, hourly, open around the clock: the day clocks go forward has 23 slots, the day
    // they go back 25, with the local 02:00 twice (once at +02:00, once at +01:00).
    let (from, to) = next_day_lasting(chrono_tz::Europe::Berlin, 23);
    let spring = slots("mitte", from, to).await;
    assert_eq!(spring.len(), 23);
    assert!(spring.iter().all(|s| !local(s).contains("T02:")), "no 02:00 that day");
    let (from, to) = next_day_lasting(chrono_tz::Europe::Berlin, 25);
    let autumn = slots("mitte", from, to).await;
    assert_eq!(autumn.len(), 25);
    let twice: Vec<&Value> = autumn.iter().filter(|s| local(s).contains("T02:00")).collect();
    assert_eq!(twice.len(), 2, "{autumn:?}");
    assert!(local(twice[0]).ends_with("+02:00") && local(twice[1]).ends_with("+01:00"), "{twice:?}");
    // Both of those slots can be booked, and are two slots.
    for (user, slot) in ["dst1", "dst2"].into_iter().zip(twice) {
        let body =
            json!({ "address": "Torstr 1", "size": "small", "postcode": "10115", "delivery_slot": slot["start"] });
        assert_eq!(post_order(&node.base, user, &body).await.status(), StatusCode::CREATED, "{slot}");
    }
    // Auckland (UTC+12 or +13): its local day starts on the previous UTC day.
    let auckland = slots("auckland", utc(10, 0), utc(12, 0)).await;
    assert_eq!(auckland.len(), 8, "two one-hour shifts a day of 30-minute slots, two days: {auckland:?}");
    let spans = auckland.iter().any(|s| s["start"].as_str().unwrap()[..10] != local(s)[..10]);
    assert!(spans, "a local date differs from the UTC date: {auckland:?}");
    assert!(auckland.iter().all(|s| local(s)[11..13] == *"00" || local(s)[11..13] == *"23"), "{auckland:?}");
    // A time outside the local opening hours is refused with the hours and zone named.
    let closed = json!({ "address": "Queen St 1", "size": "small", "postcode": "1010", "delivery_slot": utc(5, 2) });
    let refused = post_order(&node.base, "nz", &closed).await;
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["field"], "delivery_slot");
    assert!(problem["detail"].as_str().unwrap().contains("Pacific/Auckland"), "{problem}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lowering_capacity_closes_a_slot_keeps_its_orders_and_is_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start_with(&[&format!("catalog_file={}", chain_file(dir.path()))]);
    let (start, end) = (utc(4, 15), utc(4, 16));
    let body = json!({ "address": "Torstr 1", "size": "small", "postcode": "10115", "delivery_slot": start });
    for user in ["k1", "k2", "k3"] {
        assert_eq!(post_order(&node.base, user, &body).await.status(), StatusCode::CREATED);
    }
    // The kitchen loses a cook: capacity 1. The three orders stay; the slot is closed.
    let mut doc = catalog_of(&node.base).await["catalog"].clone();
    let mitte = doc["stores"].as_array().unwrap().iter().position(|s| s["id"] == "mitte").unwrap();
    doc["stores"][mitte]["capacity"] = json!(1);
    assert_eq!(admin_put_catalog(&node.base, &doc, None).await.status(), StatusCode::OK);
    let slot = slot_seen(&node.base, "mitte", &start, &end).await;
    assert_eq!((slot["capacity"].clone(), slot["remaining"].clone()), (json!(1), json!(0)));
    let full = post_order(&node.base, "k4", &body).await;
    assert_eq!(full.status(), StatusCode::CONFLICT);
    let check: Value = common::admin_get_json(&node.url("/admin/check")).await;
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!(check["slots_over_current_capacity"], 1, "{check}");

    // Capacity changes racing with orders: never more orders in a slot than the largest
    // capacity in force while they were taken.
    let (race, race_end) = (utc(6, 18), utc(6, 19));
    let racers = (0..16).map(|i| {
        let base = node.base.clone();
        let body = json!({ "address": "Torstr 1", "size": "small", "postcode": "10115", "delivery_slot": race });
        tokio::spawn(async move { post_order(&base, &format!("r{i}"), &body).await.status() })
    });
    let mut changers = Vec::new();
    for capacity in [2, 5, 3] {
        let mut doc = doc.clone();
        doc["stores"][mitte]["capacity"] = json!(capacity);
        let base = node.base.clone();
        changers.push(tokio::spawn(async move { admin_put_catalog(&base, &doc, None).await.status() }));
    }
    let mut created = 0;
    for r in racers {
        created += usize::from(r.await.unwrap() == StatusCode::CREATED);
    }
    for c in changers {
        assert_eq!(c.await.unwrap(), StatusCode::OK);
    }
    assert!(created <= 5, "{created} orders in a slot whose capacity was never above 5");
    let slot = slot_seen(&node.base, "mitte", &race, &race_end).await;
    let capacity = slot["capacity"].as_u64().unwrap();
    assert_eq!(slot["remaining"].as_u64().unwrap(), capacity.saturating_sub(created as u64));
    let check: Value = common::admin_get_json(&node.url("/admin/check")).await;
    assert_eq!(check["ok"], true, "{check}");
}

/// The first slot with room at `store`, looking up to a week ahead from two days out.
async fn open_slot(base: &str, store: &str) -> String {
    for day in 2..9 {
        let (from, to) = (utc(day, 0), utc(day + 1, 0));
        let url = format!("{base}/v1/stores/{store}/slots");
        let list: Value =
            client().get(url).query(&[("from", &from), ("to", &to)]).send().await.unwrap().json().await.unwrap();
        if let Some(slot) = list["slots"].as_array().and_then(|s| s.first()) {
            return slot["start"].as_str().unwrap().to_owned();
        }
    }
    panic!("{store} has no open slot in the week from two days out");
}

#[tokio::test]
async fn each_demo_store_sells_in_its_currency_with_its_tax_and_only_what_its_menu_lists() {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/config/catalog.toml");
    let node = TestNode::start_with(&[&format!("catalog_file={demo}")]);
    let base = node.base.clone();
    // The same pizza (medium, pepperoni) at each country's store.
    let (mut placed, mut days) = (Vec::new(), Vec::new());
    for (user, store, postcode, currency, gross, tax, rate) in [
        // 1 250 cents with 7 % included: 1250 × 7 / 107 = 81.8 → 82.
        ("de-customer", "berlin-mitte", "10115", "EUR", 1250, 82, "7%"),
        // 1 290 pence with 20 % included: 1290 / 6 = 215.
        ("uk-customer", "london-soho", "W1D 3QF", "GBP", 1290, 215, "20%"),
        // 2 100 cents with 15 % GST included: 2100 × 15 / 115 = 273.9 → 274.
        ("nz-customer", "auckland-central", "1010", "NZD", 2100, 274, "15%"),
    ] {
        let menu = get_json(&node.url("/v1/menu"), &[("store", store)]).await;
        assert_eq!((&menu["currency"], &menu["exponent"]), (&json!(currency), &json!(2)), "{menu}");
        assert_eq!(menu["tax"], json!({ "rate": rate, "included": true }), "{menu}");
        let slot = open_slot(&base, store).await;
        let body = json!({ "address": "1 High St", "postcode": postcode, "size": "medium",
            "toppings": ["pepperoni"], "delivery_slot": slot });
        let response = post_order(&base, user, &body).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{store}");
        let order: Value = response.json().await.unwrap();
        assert_eq!(order["store_id"], store, "{order}");
        assert_eq!((&order["currency"], &order["price_cents"]), (&json!(currency), &json!(gross)), "{order}");
        let price = &order["price"];
        assert_eq!(
            (&price["currency"], &price["gross"], &price["tax"], &price["net"], &price["tax_rate"]),
            (&json!(currency), &json!(gross), &json!(tax), &json!(gross - tax), &json!(rate)),
            "{order}"
        );
        placed.push((order["id"].as_str().unwrap().to_owned(), currency, gross, tax));
        days.push(order["delivery_slot"]["start"].as_str().unwrap()[..10].to_owned());
    }
    // The dashboard's money: per day of the slots, one line per currency, never added up.
    let mut expected: std::collections::BTreeMap<&str, Vec<Value>> = Default::default();
    for ((_, currency, gross, tax), day) in placed.iter().zip(&days) {
        expected.entry(day.as_str()).or_default().push(json!({ "currency": currency, "exponent": 2,
            "orders": 1, "net": gross - tax, "tax": tax, "gross": gross }));
    }
    for (day, mut lines) in expected {
        lines.sort_by_key(|l| l["currency"].as_str().unwrap().to_owned());
        let report = common::admin_get_json(&format!("{}?day={day}", node.url("/admin/revenue"))).await;
        assert_eq!(report, json!({ "day": day, "currencies": lines }));
    }
    // Billing's export carries the same split per order, in each order's currency.
    let export = client()
        .get(node.url("/admin/export"))
        .query(&[("format", "ndjson")])
        .bearer_auth(common::cluster::admin_token())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rows: Vec<Value> = export.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for (id, currency, gross, tax) in &placed {
        let row = rows.iter().find(|r| r["order_id"] == json!(id)).expect("the order is exported");
        assert_eq!(
            (&row["currency"], &row["gross"], &row["tax"], &row["net"], &row["tax_included"]),
            (&json!(currency), &json!(gross), &json!(tax), &json!(gross - tax), &json!(true)),
            "{row}"
        );
    }
    // The UK menu stops selling mushroom: London refuses it by name, Berlin still sells it.
    let mut doc = catalog_of(&base).await["catalog"].clone();
    doc["menus"]["uk"]["toppings"].as_object_mut().unwrap().remove("mushroom");
    let applied = admin_put_catalog(&base, &doc, None).await;
    assert_eq!(applied.status(), StatusCode::OK, "{}", applied.text().await.unwrap_or_default());
    let slot = open_slot(&base, "london-soho").await;
    let body = json!({ "address": "1 High St", "postcode": "W1D 3QF", "size": "small",
        "toppings": ["mushroom"], "delivery_slot": slot });
    let refused = post_order(&base, "uk-second", &body).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(
        (&problem["type"], &problem["item"], &problem["store_id"], &problem["field"]),
        (&json!("/problems/not-on-menu"), &json!("mushroom"), &json!("london-soho"), &json!("toppings")),
        "{problem}"
    );
    let menu = get_json(&node.url("/v1/menu"), &[("store", "london-soho")]).await;
    assert!(menu["toppings"].as_array().unwrap().iter().all(|t| t["id"] != "mushroom"), "{menu}");
    let slot = open_slot(&base, "berlin-mitte").await;
    let body = json!({ "address": "1 High St", "postcode": "10115", "size": "small",
        "toppings": ["mushroom"], "delivery_slot": slot });
    assert_eq!(post_order(&base, "de-second", &body).await.status(), StatusCode::CREATED);
    // The orders placed before the change keep their price and tax.
    let (id, _, gross, tax) = &placed[1];
    let again = get_as(&node.url(&format!("/v1/orders/{id}")), "uk-customer").await;
    assert_eq!((&again["price"]["gross"], &again["price"]["tax"]), (&json!(gross), &json!(tax)), "{again}");
    // A store that does not exist has no menu.
    let missing = client().get(node.url("/v1/menu")).query(&[("store", "nowhere")]).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // A change prices the order at the menu in force, and its answer says what it cost before.
    let (id, _, gross, _) = &placed[0];
    let current = get_as(&node.url(&format!("/v1/orders/{id}")), "de-customer").await;
    let body = json!({ "address": "1 High St", "postcode": "10115", "size": "large", "toppings": ["pepperoni"],
        "delivery_slot": current["delivery_slot"]["start"] });
    let changed = client()
        .put(node.url(&format!("/v1/orders/{id}")))
        .bearer_auth(token("de-customer"))
        .header("If-Match", format!("\"{}\"", current["version"]))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    let changed: Value = changed.json().await.unwrap();
    // 1 500 with 7 % included: 1500 × 7 / 107 = 98.13 → 98.
    assert_eq!(
        (&changed["repriced_from_cents"], &changed["price"]["gross"], &changed["price"]["tax"]),
        (&json!(gross), &json!(1500), &json!(98)),
        "{changed}"
    );
}
