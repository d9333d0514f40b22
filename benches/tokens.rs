//! What verifying a bearer token costs on its first request, by kind: HS256 (a secret shared
//! with `pizza-orders token`) against RS256, ES256 and EdDSA (an OpenID Connect provider's
//! keys, `[auth.oidc]`). Later requests with the same token hit the remembered-token cache
//! whatever its kind. Run: `cargo bench --bench tokens`.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pizza_orders::auth::oidc::{JwksSource, OidcConfig, OidcVerifier};
use pizza_orders::auth::TokenKeys;
use pizza_orders::config::TokenSecret;
use pizza_orders::domain::{Timestamp, UserId};
use serde_json::json;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn tokens(c: &mut Criterion) {
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("Ed25519 key");
    let raw = ec.public_key_raw();
    let rsa_jwk: serde_json::Value =
        serde_json::from_str(include_str!("../tests/fixtures/oidc-rs256.jwk.json")).expect("RSA JWK");
    let jwks = json!({ "keys": [
        { "kty": "EC", "crv": "P-256", "kid": "ec", "x": b64(&raw[1..33]), "y": b64(&raw[33..65]) },
        { "kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(ed.public_key_raw()) },
        rsa_jwk,
    ]});
    let verifier = OidcVerifier::new(OidcConfig {
        name: "idp".into(),
        issuer: "https://id.example.test".into(),
        audience: "pizza-orders".into(),
        jwks: JwksSource::Uri("http://127.0.0.1:9/unused".into()),
        ca_file: "/dev/null".into(),
        roles_claim: "roles".into(),
        admin_role: "pizza-admin".into(),
        staff_role_prefix: "pizza-staff:".into(),
        pages: None,
    });
    verifier.install(&jwks.to_string()).expect("JWKS");
    let secret = TokenSecret::parse(b"bench-secret-bench-secret-bench-secret").expect("secret");
    let keys = TokenKeys::new(&secret).with_oidc(Arc::new(verifier));
    let now = jsonwebtoken::get_current_timestamp();
    let claims = json!({ "iss": "https://id.example.test", "aud": "pizza-orders", "sub": "bench",
        "exp": now + 3600, "iat": now, "roles": ["pizza-staff:main"] });
    let sign = |alg, kid: &str, key: &EncodingKey| {
        let mut header = Header::new(alg);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, &claims, key).expect("sign")
    };
    let hs256 = keys
        .mint(&UserId::parse("bench").expect("user"), false, Duration::from_secs(3600), Timestamp::now())
        .expect("mint");
    let rsa_pem = include_str!("../tests/fixtures/oidc-rs256.pem");
    let cases = [
        ("HS256", hs256),
        ("RS256", sign(Algorithm::RS256, "rsa-1", &EncodingKey::from_rsa_pem(rsa_pem.as_bytes()).expect("RSA"))),
        ("ES256", sign(Algorithm::ES256, "ec", &EncodingKey::from_ec_pem(ec.serialize_pem().as_bytes()).expect("EC"))),
        ("EdDSA", sign(Algorithm::EdDSA, "ed", &EncodingKey::from_ed_pem(ed.serialize_pem().as_bytes()).expect("Ed"))),
    ];
    let mut group = c.benchmark_group("token_first_verify");
    for (name, token) in &cases {
        keys.verify_fresh(token).expect("the token verifies");
        group.bench_function(*name, |b| b.iter(|| keys.verify_fresh(token).expect("verifies")));
    }
    group.finish();
    let (_, remembered) = &cases[1];
    keys.verify(remembered).expect("verifies");
    c.bench_function("token_remembered_verify", |b| b.iter(|| keys.verify(remembered).expect("verifies")));
}

criterion_group!(benches, tokens);
criterion_main!(benches);
