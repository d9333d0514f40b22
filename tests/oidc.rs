//! Tokens from an OpenID Connect provider, black-box: a node configured with `[auth.oidc]` and
//! a `jwks_uri` served on loopback by the test (the provider's keys: ES256 and EdDSA made here),
//! talked to over HTTP with tokens the test signs as the provider would.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use common::cluster::eventually;
use common::{client, order_body, slot, token, TestNode, SECRET};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};

const ISSUER: &str = "https://id.example.test/realms/pizza";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The provider's endpoints on loopback: `/jwks` serves the key set it holds now, and
/// `/.well-known/openid-configuration` the discovery document, until dropped.
struct JwksServer {
    url: String,
    base: String,
    document: Arc<Mutex<String>>,
    discovery: Arc<Mutex<String>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl JwksServer {
    fn start(document: Value) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let url = format!("{base}/jwks");
        let document = Arc::new(Mutex::new(document.to_string()));
        let discovery = Arc::new(Mutex::new(json!({ "issuer": base, "jwks_uri": url }).to_string()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (doc, found, halt) = (document.clone(), discovery.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            // Bounded: at most ten minutes, and until told to stop.
            let started = std::time::Instant::now();
            while !halt.load(std::sync::atomic::Ordering::Relaxed) && started.elapsed() < Duration::from_secs(600) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let discovering = request.contains("/.well-known/openid-configuration");
                let body = if discovering { found.lock().unwrap().clone() } else { doc.lock().unwrap().clone() };
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Self { url, base, document, discovery, stop, thread: Some(thread) }
    }

    fn publish(&self, document: Value) {
        *self.document.lock().unwrap() = document.to_string();
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Signer {
    kid: &'static str,
    alg: Algorithm,
    key: EncodingKey,
    jwk: Value,
}

fn ec_signer(kid: &'static str) -> Signer {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let raw = pair.public_key_raw();
    Signer {
        kid,
        alg: Algorithm::ES256,
        key: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap(),
        jwk: json!({ "kty": "EC", "crv": "P-256", "kid": kid, "x": b64(&raw[1..33]), "y": b64(&raw[33..65]) }),
    }
}

fn ed_signer(kid: &'static str) -> Signer {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    Signer {
        kid,
        alg: Algorithm::EdDSA,
        key: EncodingKey::from_ed_pem(pair.serialize_pem().as_bytes()).unwrap(),
        jwk: json!({ "kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(pair.public_key_raw()) }),
    }
}

impl Signer {
    fn token(&self, sub: &str, extra: Value) -> String {
        self.token_from(ISSUER, sub, extra)
    }

    fn token_from(&self, issuer: &str, sub: &str, extra: Value) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        let mut claims = json!({ "iss": issuer, "aud": "pizza-orders", "sub": sub, "exp": now + 600, "iat": now });
        claims.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.into());
        jsonwebtoken::encode(&header, &claims, &self.key).unwrap()
    }
}

async fn post_order(node: &TestNode, bearer: &str, body: &Value) -> reqwest::Response {
    client().post(node.url("/v1/orders")).bearer_auth(bearer).json(body).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_providers_tokens_work_beside_minted_ones_and_its_key_rotation_is_picked_up() {
    let (first, second) = (ec_signer("2026-12-a"), ed_signer("2026-12-b"));
    let provider = JwksServer::start(json!({ "keys": [first.jwk] }));
    let auth = format!(
        "[auth]\njwt_secret = \"{SECRET}\"\n[auth.oidc]\nname = \"kc\"\nissuer = \"{ISSUER}\"\naudience = \"pizza-orders\"\njwks_uri = \"{}\"\n",
        provider.url
    );
    let node = TestNode::start_with_auth(&auth, &[]);

    // A customer signed in at the provider orders; the order is theirs as kc:<sub>.
    let customer = first.token("7d1e-customer", json!({}));
    let placed = eventually(Duration::from_secs(10), "the provider's keys read", || async {
        let r = post_order(&node, &customer, &order_body(&slot(3, 10))).await;
        (r.status() == StatusCode::CREATED).then_some(r)
    })
    .await;
    let order: Value = placed.json().await.unwrap();
    let mine: Value =
        client().get(node.url("/v1/orders")).bearer_auth(&customer).send().await.unwrap().json().await.unwrap();
    assert_eq!(mine["orders"][0]["id"], order["id"], "{mine}");
    // A minted token (HS256) still works beside it, as another user.
    assert_eq!(post_order(&node, &token("minted"), &order_body(&slot(3, 11))).await.status(), StatusCode::CREATED);

    // Staff of a store by the roles claim; admin by its role.
    let cook = first.token("cook-1", json!({ "roles": ["pizza-staff:main"] }));
    let kitchen = client().get(node.url("/v1/kitchen/orders")).bearer_auth(&cook).send().await.unwrap();
    assert_eq!(kitchen.status(), StatusCode::OK);
    let ops = first.token("ops-1", json!({ "roles": "offline_access pizza-admin" }));
    let cluster = client().get(node.url("/admin/cluster")).bearer_auth(&ops).send().await.unwrap();
    assert_eq!(cluster.status(), StatusCode::OK);
    let not_admin = client().get(node.url("/admin/cluster")).bearer_auth(&customer).send().await.unwrap();
    assert_eq!(not_admin.status(), StatusCode::FORBIDDEN);

    // The provider rotates to a new key: its first token asks the node to read the keys again,
    // and works once they are read (without a restart).
    provider.publish(json!({ "keys": [first.jwk, second.jwk] }));
    let rotated = second.token("new-customer", json!({}));
    eventually(Duration::from_secs(20), "the rotated key picked up", || async {
        let r = post_order(&node, &rotated, &order_body(&slot(3, 13))).await;
        (r.status() == StatusCode::CREATED).then_some(())
    })
    .await;

    // (After the rotation: a made-up kid also asks for a read, and reads are at most one per
    // 10 s.) Refused, each with 401 and a reason: wrong audience, wrong issuer, expired, another key
    // under the known kid, a kid nobody published.
    let now = jsonwebtoken::get_current_timestamp();
    let stranger = ec_signer("2026-12-a");
    for (what, bad) in [
        ("audience", first.token("x", json!({ "aud": "another-service" }))),
        ("issuer", first.token("x", json!({ "iss": "https://evil.test" }))),
        ("expired", first.token("x", json!({ "exp": now - 600 }))),
        ("signature", stranger.token("x", json!({}))),
        ("kid", ec_signer("made-up").token("x", json!({}))),
    ] {
        let r = post_order(&node, &bad, &order_body(&slot(3, 12))).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what}");
        let problem: Value = r.json().await.unwrap();
        assert_eq!(problem["type"], "/problems/unauthorized", "{what}: {problem}");
    }

    // The provider gone: the keys already read keep working.
    drop(provider);
    let later = first.token("7d1e-customer", json!({}));
    let r = client().get(node.url("/v1/orders")).bearer_auth(&later).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_jwks_uri_the_keys_are_found_through_the_issuers_discovery_document() {
    let signer = ec_signer("disc-1");
    let provider = JwksServer::start(json!({ "keys": [signer.jwk] }));
    // The issuer is the provider's own URL, as a real provider's is.
    let issuer = provider.base.clone();
    let auth = format!("[auth]\njwt_secret = \"{SECRET}\"\n[auth.oidc]\nname = \"idp\"\nissuer = \"{issuer}\"\naudience = \"pizza-orders\"\n");
    let node = TestNode::start_with_auth(&auth, &[]);
    let customer = signer.token_from(&issuer, "someone", json!({}));
    eventually(Duration::from_secs(10), "the keys found by discovery", || async {
        let r = post_order(&node, &customer, &order_body(&slot(3, 14))).await;
        (r.status() == StatusCode::CREATED).then_some(())
    })
    .await;
    // A discovery document naming another issuer is not believed: a new key stays unknown,
    // and the 401 says why.
    *provider.discovery.lock().unwrap() =
        json!({ "issuer": "https://elsewhere.test", "jwks_uri": provider.url }).to_string();
    let next = ec_signer("disc-2");
    provider.publish(json!({ "keys": [next.jwk] }));
    let refused =
        post_order(&node, &next.token_from(&issuer, "someone-else", json!({})), &order_body(&slot(3, 15))).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let detail = eventually(Duration::from_secs(20), "the reason given", || async {
        let r =
            post_order(&node, &next.token_from(&issuer, "someone-else", json!({})), &order_body(&slot(3, 15))).await;
        let problem: Value = r.json().await.ok()?;
        let detail = problem["detail"].as_str()?.to_owned();
        detail.contains("names the issuer").then_some(detail)
    })
    .await;
    assert!(detail.contains("https://elsewhere.test"), "{detail}");
    // The key read before still works.
    let again = client().get(node.url("/v1/orders")).bearer_auth(&customer).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
}
