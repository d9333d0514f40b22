//! The HTTP API as a client sees it, against a real node.

mod common;

use common::{client, create, get_json, order_body, problem_type, slot, token, token_with, TestNode};
use pizza_orders::domain::Timestamp;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn menu_lists_every_size_and_topping_with_prices_in_cents() {
    let node = TestNode::start();
    let menu: Value = client().get(node.url("/v1/menu")).send().await.unwrap().json().await.unwrap();
    assert_eq!(menu["currency"], "EUR");
    let sizes: Vec<&str> = menu["sizes"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(sizes, ["small", "medium", "large"]);
    assert_eq!(menu["toppings"][1], json!({"id": "pepperoni", "price_cents": 200}));
}

#[tokio::test]
async fn an_order_is_priced_saved_and_read_back_with_its_etag() {
    let node = TestNode::start();
    let body = json!({"address": "  12 Baker St ", "size": "large", "toppings": ["mushroom", "extra_cheese"], "delivery_slot": slot(3, 36)});
    let created = create(&node, "alice", &body).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(created.headers()["etag"], "\"1\"");
    let order: Value = created.json().await.unwrap();
    assert_eq!(order["address"], "12 Baker St");
    assert_eq!(order["price_cents"], 1300 + 150 + 120);
    assert_eq!(order["toppings"], json!(["extra_cheese", "mushroom"]));
    assert_eq!(order["status"], "placed");
    assert_eq!(location, format!("/v1/orders/{}", order["id"].as_str().unwrap()));

    let read = client().get(node.url(&location)).bearer_auth(token("alice")).send().await.unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(read.headers()["etag"], "\"1\"");
    assert_eq!(read.json::<Value>().await.unwrap(), order);
}

#[tokio::test]
async fn a_second_active_order_for_the_same_user_is_refused() {
    let node = TestNode::start();
    assert_eq!(create(&node, "bob", &order_body(&slot(2, 30))).await.status(), StatusCode::CREATED);
    let second = create(&node, "bob", &order_body(&slot(2, 31))).await;
    assert_eq!(second.status(), StatusCode::CONFLICT);
    assert_eq!(problem_type(second).await, "/problems/order-exists");
}

#[tokio::test]
async fn slots_report_the_room_left_and_a_full_slot_is_refused() {
    let node = TestNode::start_with(&["slots.capacity=2"]);
    let start = slot(4, 20);
    for user in ["u1", "u2"] {
        assert_eq!(create(&node, user, &order_body(&start)).await.status(), StatusCode::CREATED);
    }
    let full = create(&node, "u3", &order_body(&start)).await;
    assert_eq!(full.status(), StatusCode::CONFLICT);
    assert_eq!(problem_type(full).await, "/problems/slot-full");

    let list: Value = get_json(&node.url("/v1/slots"), &[("from", start.as_str()), ("to", slot(4, 22).as_str())]).await;
    let slots = list["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 2);
    assert_eq!((slots[0]["start"].as_str().unwrap(), slots[0]["remaining"].as_u64()), (start.as_str(), Some(0)));
    assert_eq!(slots[1]["remaining"], 2);
}

#[tokio::test]
async fn an_idempotent_retry_returns_the_original_and_a_reused_key_is_refused() {
    let node = TestNode::start();
    let body = order_body(&slot(2, 40));
    let post = |body: Value| {
        client()
            .post(node.url("/v1/orders"))
            .bearer_auth(token("carol"))
            .header("Idempotency-Key", "order-7f3a")
            .json(&body)
            .send()
    };
    let first = post(body.clone()).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let retry = post(body.clone()).await.unwrap();
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.json::<Value>().await.unwrap(), first);

    let other = post(order_body(&slot(2, 41))).await.unwrap();
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_type(other).await, "/problems/idempotency-key-reused");
}

#[tokio::test]
async fn changing_an_order_reprices_it_moves_its_slot_and_honours_if_match() {
    let node = TestNode::start_with(&["slots.capacity=1"]);
    let (a, b) = (slot(5, 30), slot(5, 31));
    let order: Value = create(&node, "dave", &order_body(&a)).await.json().await.unwrap();
    let url = node.url(&format!("/v1/orders/{}", order["id"].as_str().unwrap()));
    let change = json!({"address": "2 Side St", "size": "small", "toppings": [], "delivery_slot": b});

    let changed =
        client().put(&url).bearer_auth(token("dave")).header("If-Match", "\"1\"").json(&change).send().await.unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    assert_eq!(changed.headers()["etag"], "\"2\"");
    let mut changed: Value = changed.json().await.unwrap();
    assert_eq!((changed["price_cents"].as_u64(), changed["version"].as_u64()), (Some(800), Some(2)));
    assert_eq!(changed["delivery_slot"]["start"], b.as_str());
    // The answer to the change says what the order cost before it (a medium with pepperoni);
    // only that answer says so, so it is set aside for comparing with a later read.
    let before = changed.as_object_mut().unwrap().remove("repriced_from_cents");
    assert_eq!(before, Some(json!(order["price_cents"])), "{order}");

    // The old slot has room again (capacity 1), the new one is taken.
    assert_eq!(create(&node, "erin", &order_body(&a)).await.status(), StatusCode::CREATED);
    let taken = create(&node, "frank", &order_body(&b)).await;
    assert_eq!(problem_type(taken).await, "/problems/slot-full");

    let stale =
        client().put(&url).bearer_auth(token("dave")).header("If-Match", "\"1\"").json(&change).send().await.unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(stale.headers()["etag"], "\"2\"");
    assert_eq!(problem_type(stale).await, "/problems/precondition-failed");

    // Moving into a full slot is refused and changes nothing.
    let into_full = json!({"address": "2 Side St", "size": "small", "delivery_slot": a});
    let refused = client().put(&url).bearer_auth(token("dave")).json(&into_full).send().await.unwrap();
    assert_eq!(problem_type(refused).await, "/problems/slot-full");
    let now: Value = client().get(&url).bearer_auth(token("dave")).send().await.unwrap().json().await.unwrap();
    assert_eq!(now, changed);
}

#[tokio::test]
async fn cancelling_keeps_the_order_frees_the_slot_and_allows_a_new_order() {
    let node = TestNode::start_with(&["slots.capacity=1"]);
    let start = slot(6, 30);
    let order: Value = create(&node, "gina", &order_body(&start)).await.json().await.unwrap();
    let url = node.url(&format!("/v1/orders/{}", order["id"].as_str().unwrap()));

    let stale = client().delete(&url).bearer_auth(token("gina")).header("If-Match", "\"9\"").send().await.unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let cancelled = client().delete(&url).bearer_auth(token("gina")).header("If-Match", "\"1\"").send().await.unwrap();
    assert_eq!(cancelled.status(), StatusCode::OK);
    let cancelled: Value = cancelled.json().await.unwrap();
    assert_eq!((cancelled["status"].as_str(), cancelled["active"].as_bool()), (Some("cancelled"), Some(false)));

    let again = client().delete(&url).bearer_auth(token("gina")).send().await.unwrap();
    assert_eq!(problem_type(again).await, "/problems/order-cancelled");
    let edit = client().put(&url).bearer_auth(token("gina")).json(&order_body(&start)).send().await.unwrap();
    assert_eq!(problem_type(edit).await, "/problems/order-cancelled");

    assert_eq!(create(&node, "hank", &order_body(&start)).await.status(), StatusCode::CREATED);
    assert_eq!(create(&node, "gina", &order_body(&slot(6, 31))).await.status(), StatusCode::CREATED);

    let page: Value =
        client().get(node.url("/v1/orders")).bearer_auth(token("gina")).send().await.unwrap().json().await.unwrap();
    let statuses: Vec<&str> =
        page["orders"].as_array().unwrap().iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["placed", "cancelled"], "newest first, cancelled kept");
}

#[tokio::test]
async fn listing_pages_through_a_users_orders_newest_first() {
    let node = TestNode::start();
    let mut ids = Vec::new();
    for i in 0..5 {
        let order: Value = create(&node, "ivy", &order_body(&slot(7, 20 + i))).await.json().await.unwrap();
        let id = order["id"].as_str().unwrap().to_owned();
        let cancel =
            client().delete(node.url(&format!("/v1/orders/{id}"))).bearer_auth(token("ivy")).send().await.unwrap();
        assert_eq!(cancel.status(), StatusCode::OK);
        ids.push(id);
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut req = client().get(node.url("/v1/orders")).bearer_auth(token("ivy")).query(&[("limit", "2")]);
        if let Some(b) = &before {
            req = req.query(&[("before", b.as_str())]);
        }
        let page: Value = req.send().await.unwrap().json().await.unwrap();
        seen.extend(page["orders"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => before = Some(next.to_owned()),
            None => break,
        }
        assert!(seen.len() <= 5, "pagination does not end");
    }
    assert_eq!(seen, ids);
    let bad = client().get(node.url("/v1/orders?limit=0")).bearer_auth(token("ivy")).send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn another_users_order_does_not_exist_for_you() {
    let node = TestNode::start();
    let order: Value = create(&node, "owner", &order_body(&slot(2, 33))).await.json().await.unwrap();
    let url = node.url(&format!("/v1/orders/{}", order["id"].as_str().unwrap()));
    let c = client();
    let get = c.get(&url).bearer_auth(token("mallory")).send().await.unwrap();
    assert_eq!(get.status(), StatusCode::NOT_FOUND);
    let put = c.put(&url).bearer_auth(token("mallory")).json(&order_body(&slot(2, 34))).send().await.unwrap();
    assert_eq!(put.status(), StatusCode::NOT_FOUND);
    let delete = c.delete(&url).bearer_auth(token("mallory")).send().await.unwrap();
    assert_eq!(problem_type(delete).await, "/problems/order-not-found");
    let unknown = c.get(node.url("/v1/orders/not-an-id")).bearer_auth(token("owner")).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    // Still intact for its owner.
    let mine: Value = c.get(&url).bearer_auth(token("owner")).send().await.unwrap().json().await.unwrap();
    assert_eq!(mine["status"], "placed");
}

/// `GET /v1/orders/{id}` is answered ahead of the router when its id is written plainly
/// (`src/api/hot.rs`); the same request with one character of the id percent-encoded goes
/// through the router. Both must answer alike, whatever the request gets, and both count
/// under the route's template.
#[tokio::test]
async fn an_order_read_answers_alike_ahead_of_and_through_the_router() {
    let node = TestNode::start();
    let order: Value = create(&node, "owner", &order_body(&slot(2, 35))).await.json().await.unwrap();
    let id = order["id"].as_str().unwrap().to_owned();
    let routed = |id: &str| format!("{}%2D{}", &id[..8], &id[9..]);
    let unknown = "00000000-0000-7000-8000-000000000000";
    let not_an_id = "------------------------------------";
    let scrape = || async { client().get(node.url("/metrics")).send().await.unwrap().text().await.unwrap() };
    let counted = |text: &str, status: u16| -> f64 {
        let series = format!(
            "pizza_orders_http_requests_total{{method=\"GET\",route=\"/v1/orders/{{id}}\",status=\"{status}\"}}"
        );
        text.lines().filter(|l| l.starts_with(&series)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    };
    let before = scrape().await;
    let cases: Vec<(&str, &str, Option<String>, Option<&str>)> = vec![
        (&id, "", Some(token("owner")), None),
        (&id, "?consistency=stale", Some(token("owner")), None),
        (&id, "?consistency=linearizable", Some(token("owner")), None),
        (&id, "?consistency=stale&max_staleness_ms=250", Some(token("owner")), None),
        (&id, "?consistency=sometimes", Some(token("owner")), None),
        (&id, "?max_staleness_ms=-1", Some(token("owner")), None),
        (&id, "", Some(token("owner")), Some("\"1\"")),
        (&id, "", Some(token("mallory")), None),
        (&id, "", None, None),
        (&id, "", Some("garbage".to_owned()), None),
        (unknown, "", Some(token("owner")), None),
        (not_an_id, "", Some(token("owner")), None),
    ];
    let mut statuses = std::collections::BTreeMap::<u16, f64>::new();
    for (case_id, query, bearer, if_none_match) in &cases {
        let mut answers = Vec::new();
        for path_id in [case_id.to_string(), routed(case_id)] {
            let mut request = client().get(node.url(&format!("/v1/orders/{path_id}{query}")));
            if let Some(bearer) = bearer {
                request = request.bearer_auth(bearer);
            }
            if let Some(tag) = if_none_match {
                request = request.header("If-None-Match", *tag);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let mut headers: Vec<(String, String)> = response
                .headers()
                .iter()
                .filter(|(name, _)| !matches!(name.as_str(), "date" | "x-request-id"))
                .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("(bytes)").to_owned()))
                .collect();
            headers.sort();
            let body = response.text().await.unwrap();
            // A problem names the path as the client wrote it.
            answers.push((status, headers, body.replace(&format!("/v1/orders/{path_id}"), "/v1/orders/{id}")));
            *statuses.entry(status).or_default() += 1.0;
        }
        assert_eq!(answers[0], answers[1], "GET /v1/orders/{case_id}{query}, bearer {}", bearer.is_some());
    }
    assert!(statuses.contains_key(&200) && statuses.contains_key(&401) && statuses.contains_key(&404), "{statuses:?}");
    let after = scrape().await;
    for (status, requests) in statuses {
        assert_eq!(counted(&after, status) - counted(&before, status), requests, "status {status}: {after}");
    }
}

#[tokio::test]
async fn bad_tokens_get_401_with_a_challenge() {
    let node = TestNode::start();
    let expired = token_with("alice", false, 60, Timestamp::from_millis(Timestamp::now().millis() - 7_200_000));
    let none_alg = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6OTk5OTk5OTk5OX0.";
    // Change the first character of the signature (the last one may only carry padding bits).
    let genuine = token("alice");
    let signature_at = genuine.rfind('.').unwrap() + 1;
    let replacement = if genuine[signature_at..].starts_with('A') { "B" } else { "A" };
    let forged = format!("{}{}{}", &genuine[..signature_at], replacement, &genuine[signature_at + 1..]);
    assert_ne!(forged, genuine);
    for auth in [
        None,
        Some("Basic YWxpY2U6cHc=".to_owned()),
        Some(format!("Bearer {expired}")),
        Some(format!("Bearer {none_alg}")),
        Some(format!("Bearer {forged}")),
        Some("Bearer garbage".into()),
    ] {
        let mut req = client().get(node.url("/v1/orders"));
        if let Some(value) = &auth {
            req = req.header("Authorization", value);
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(response.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer"));
        assert_eq!(problem_type(response).await, "/problems/unauthorized");
    }
}

#[tokio::test]
async fn every_bad_request_gets_its_own_problem_status() {
    let node = TestNode::start();
    let c = client();
    let post = |body: String, content_type: &'static str| {
        c.post(node.url("/v1/orders")).bearer_auth(token("zed")).header("content-type", content_type).body(body).send()
    };
    let json = "application/json";
    // Two days ahead, a quarter past the hour: off the 30-minute grid (a fixed date would one
    // day be in the past and be refused for that instead).
    let on_grid = Timestamp::parse_rfc3339(&slot(2, 20)).expect("a slot");
    let off_grid = Timestamp::from_millis(on_grid.millis() + 15 * 60_000).to_rfc3339();
    let cases: Vec<(String, &str, StatusCode, &str)> = vec![
        ("{\"address\":".into(), json, StatusCode::BAD_REQUEST, "/problems/malformed-json"),
        (order_body(&slot(2, 30)).to_string(), "text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE, "/problems/unsupported-media-type"),
        (format!("{{\"address\":\"{}\"}}", "x".repeat(17 * 1024)), json, StatusCode::PAYLOAD_TOO_LARGE, "/problems/payload-too-large"),
        (json!({"address": "a", "size": "small", "delivery_slot": slot(2, 30), "tip": 5}).to_string(), json, StatusCode::UNPROCESSABLE_ENTITY, "/problems/invalid-field"),
        (json!({"address": "  ", "size": "small", "delivery_slot": slot(2, 30)}).to_string(), json, StatusCode::UNPROCESSABLE_ENTITY, "/problems/invalid-field"),
        (json!({"address": "a", "size": "small", "toppings": ["pepperoni", "pepperoni"], "delivery_slot": slot(2, 30)}).to_string(), json, StatusCode::UNPROCESSABLE_ENTITY, "/problems/invalid-field"),
        (json!({"address": "a", "size": "small", "delivery_slot": off_grid}).to_string(), json, StatusCode::UNPROCESSABLE_ENTITY, "/problems/invalid-field"),
        (json!({"address": "a", "size": "small", "delivery_slot": "2020-01-01T10:00:00Z"}).to_string(), json, StatusCode::UNPROCESSABLE_ENTITY, "/problems/invalid-field"),
        (json!({"address": "a", "size": "small", "delivery_slot": slot(4000, 20)}).to_string(), json, StatusCode::UNPROCESSABLE_ENTITY, "/problems/invalid-field"),
        (json!({"address": "a", "size": "small", "delivery_slot": "soon"}).to_string(), json, StatusCode::UNPROCESSABLE_ENTITY, "/problems/invalid-field"),
    ];
    for (body, content_type, status, kind) in cases {
        let response = post(body.clone(), content_type).await.unwrap();
        assert_eq!(response.status(), status, "{}", &body[..body.len().min(120)]);
        assert_eq!(problem_type(response).await, kind);
    }

    let named: Value = post(json!({"address": "a", "size": "huge", "delivery_slot": slot(2, 30)}).to_string(), json)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(named["field"], "size");
    assert!(named["detail"].as_str().unwrap().contains("huge"));

    let route = c.get(node.url("/v2/nothing")).send().await.unwrap();
    assert_eq!(route.status(), StatusCode::NOT_FOUND);
    assert_eq!(problem_type(route).await, "/problems/not-found");
    let method = c.patch(node.url("/v1/orders")).send().await.unwrap();
    assert_eq!(method.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(problem_type(method).await, "/problems/method-not-allowed");
    let bad_key = c
        .post(node.url("/v1/orders"))
        .bearer_auth(token("zed"))
        .header("Idempotency-Key", "")
        .json(&order_body(&slot(2, 30)))
        .send()
        .await
        .unwrap();
    assert_eq!(problem_type(bad_key).await, "/problems/invalid-header");
    let bad_range = c.get(node.url("/v1/slots?from=yesterday")).send().await.unwrap();
    assert_eq!(bad_range.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Nothing above created an order.
    let page: Value =
        c.get(node.url("/v1/orders")).bearer_auth(token("zed")).send().await.unwrap().json().await.unwrap();
    assert_eq!(page["orders"], json!([]));
}

#[tokio::test]
async fn metrics_move_with_traffic() {
    let node = TestNode::start();
    let scrape = || async { client().get(node.url("/metrics")).send().await.unwrap().text().await.unwrap() };
    let value = |text: &str, prefix: &str| -> f64 {
        text.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    };
    let before = scrape().await;
    assert_eq!(create(&node, "metered", &order_body(&slot(2, 30))).await.status(), StatusCode::CREATED);
    assert_eq!(create(&node, "metered", &order_body(&slot(2, 31))).await.status(), StatusCode::CONFLICT);
    let after = scrape().await;
    let created = "pizza_orders_orders_total{outcome=\"created\"}";
    assert_eq!(value(&after, created) - value(&before, created), 1.0, "{after}");
    assert_eq!(value(&after, "pizza_orders_rejections_total{reason=\"order_exists\"}"), 1.0);
    assert!(
        value(&after, "pizza_orders_http_requests_total{method=\"POST\",route=\"/v1/orders\",status=\"201\"}") >= 1.0
    );
    assert_eq!(value(&after, "pizza_orders_orders_placed"), 1.0);
    assert_eq!(value(&after, "pizza_orders_raft_is_leader"), 1.0);
    assert!(value(&after, "pizza_orders_raft_applied_index") >= 2.0);
    assert!(after.contains("pizza_orders_raft_append_seconds_bucket"));
    assert!(after.contains("pizza_orders_raft_batch_size_bucket"));

    // A method the client makes up is counted, but never becomes a label value of its own.
    let invented = axum::http::Method::from_bytes(b"BREWCOFFEE").unwrap();
    let answer = client().request(invented, node.url("/v1/orders")).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::METHOD_NOT_ALLOWED);
    let last = scrape().await;
    assert!(!last.contains("BREWCOFFEE"), "{last}");
    assert!(
        value(&last, "pizza_orders_http_requests_total{method=\"other\",route=\"/v1/orders\",status=\"405\"}") >= 1.0
    );
}

/// Every route the service answers is in the OpenAPI document, and every documented route
/// is answered (not "no such route" or "method not allowed").
#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let node = TestNode::start();
    let spec: Value = client().get(node.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"), "{}", spec["openapi"]);
    // Every schema a path refers to is in the document (a client generator needs each one).
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r.clone());
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&spec, &mut all);
    for r in &all {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("an outside $ref: {r}"));
        assert!(spec["components"]["schemas"].get(name).is_some(), "{r} is not in components.schemas");
    }
    // An order's money and a menu's tax are described.
    let schemas = &spec["components"]["schemas"];
    for (schema, field) in
        [("OrderView", "price"), ("PriceView", "tax_rate"), ("MenuView", "tax"), ("MenuView", "exponent")]
    {
        assert!(schemas[schema]["properties"].get(field).is_some(), "{schema}.{field} is not documented");
    }
    let served = [
        ("get", "/v1/menu"),
        ("get", "/v1/slots"),
        ("get", "/v1/orders"),
        ("post", "/v1/orders"),
        ("get", "/v1/orders/{id}"),
        ("put", "/v1/orders/{id}"),
        ("delete", "/v1/orders/{id}"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
        ("get", "/admin/cluster"),
        ("post", "/admin/cluster/init"),
        ("post", "/admin/cluster/nodes"),
        ("delete", "/admin/cluster/nodes/{id}"),
        ("get", "/admin/state"),
        ("get", "/admin/backup"),
        ("get", "/admin/check"),
        ("get", "/admin/export"),
    ];
    let paths = spec["paths"].as_object().unwrap();
    for (method, path) in served {
        assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path} is not documented");
    }
    for (path, methods) in paths {
        for method in methods.as_object().unwrap().keys() {
            let url = node.url(&path.replace("{id}", "0"));
            let request = client().request(method.to_uppercase().parse().unwrap(), url);
            let response = request.send().await.unwrap();
            assert_ne!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            if response.status() == StatusCode::NOT_FOUND {
                let kind = problem_type(response).await;
                assert_ne!(kind, "/problems/not-found", "{method} {path} is documented but not routed");
            }
        }
    }
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_disconnected_and_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let node = TestNode::start_with(&["http.header_read_timeout_ms=500"]);
    let addr = node.base.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    // Meanwhile a normal client is served.
    assert_eq!(client().get(node.url("/healthz")).send().await.unwrap().status(), StatusCode::OK);
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(10), slow.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "the server kept a connection whose headers never finished");

    let huge = "x".repeat(100 * 1024);
    let response = client().get(node.url("/healthz")).header("x-huge", huge).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

/// Each page (customer, kitchen, dashboard) has a description for search engines and names an
/// icon that is served as an image, and `/favicon.ico`, where browsers and bookmark tools look
/// without being told, answers with the same icon instead of a 404.
#[tokio::test]
async fn every_page_has_a_description_and_an_icon_that_is_served() {
    let node = TestNode::start();
    for page in ["/", "/kitchen/", "/admin/"] {
        let html = client().get(node.url(page)).send().await.unwrap().text().await.unwrap();
        assert!(html.contains("<meta name=\"description\" content=\""), "{page} has no description");
        assert!(html.contains("<link rel=\"icon\" href=\"/ui/favicon.svg\""), "{page} names no icon");
    }
    for path in ["/ui/favicon.svg", "/favicon.ico"] {
        let icon = client().get(node.url(path)).send().await.unwrap();
        assert_eq!(icon.status(), StatusCode::OK, "{path}");
        assert_eq!(icon.headers()["content-type"], "image/svg+xml", "{path}");
        assert!(icon.text().await.unwrap().starts_with("<svg"), "{path}");
    }
}

/// The pages' assets go out gzip-compressed to a client that takes it (each form with its own
/// ETag, `Vary: accept-encoding`), and as they are to one that does not or refuses it.
#[tokio::test]
async fn assets_are_served_gzipped_to_clients_that_take_it() {
    use std::io::Read;
    let node = TestNode::start();
    let get = |path: &'static str, encoding: Option<&'static str>, tag: Option<String>| {
        let mut request = client().get(node.url(path));
        if let Some(encoding) = encoding {
            request = request.header("accept-encoding", encoding);
        }
        if let Some(tag) = tag {
            request = request.header("if-none-match", tag);
        }
        request.send()
    };
    for path in ["/", "/ui/app.js", "/ui/admin.js"] {
        let plain = get(path, None, None).await.unwrap();
        assert_eq!(plain.headers().get("content-encoding"), None, "{path}");
        let plain_tag = plain.headers()["etag"].to_str().unwrap().to_owned();
        let text = plain.text().await.unwrap();
        let zipped = get(path, Some("br;q=1.0, gzip;q=0.8"), None).await.unwrap();
        assert_eq!(zipped.headers()["content-encoding"], "gzip", "{path}");
        assert_eq!(zipped.headers()["vary"], "accept-encoding", "{path}");
        let zipped_tag = zipped.headers()["etag"].to_str().unwrap().to_owned();
        assert_ne!(zipped_tag, plain_tag, "{path}: one strong ETag for two byte sequences");
        let bytes = zipped.bytes().await.unwrap();
        assert!(bytes.len() * 2 < text.len(), "{path}: {} bytes gzipped of {}", bytes.len(), text.len());
        let mut unzipped = String::new();
        flate2::read::GzDecoder::new(&bytes[..]).read_to_string(&mut unzipped).unwrap();
        assert_eq!(unzipped, text, "{path}");
        let again = get(path, Some("gzip"), Some(zipped_tag)).await.unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        let refused = get(path, Some("gzip;q=0, identity"), None).await.unwrap();
        assert_eq!(refused.headers().get("content-encoding"), None, "{path}");
    }
}
