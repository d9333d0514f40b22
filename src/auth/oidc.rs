//! Tokens from an OpenID Connect provider: RS256, ES256 or EdDSA JWTs signed with the keys the
//! provider publishes as a JWKS, checked with `jsonwebtoken` (no cryptography written here).
//!
//! The keys come from a JWKS file (hosts without egress; whoever rotates the provider's keys
//! rewrites it) or the provider's `jwks_uri`. They are kept in memory and read again when a
//! token names a key id (`kid`) that is not among them, at most once per [`REFRESH_GAP`], so a
//! flood of made-up key ids cannot hammer the provider; the uri is also read again every
//! [`KEYS_LIFETIME`]. The provider unreachable: the keys already read keep working, a token
//! with an unknown key id is refused with 401 saying so.
//!
//! Who is who: the user is `NAME:sub` (`NAME` is the provider's short name in the config), so
//! two providers, or a provider and `pizza-orders token`, never share a user id; admin and staff
//! come from a claim (`roles` by default: a list of strings, or one string of space-separated
//! roles) holding `admin_role`, or `staff_role_prefix` followed by the store's id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::{map_error, AuthError, Principal, LEEWAY_SECONDS};
pub use crate::config::{JwksSource, OidcConfig, PagesSignIn, ProviderEndpoints};
use crate::domain::{StoreId, UserId};

/// The shortest time between two reads of the keys prompted by unknown key ids.
pub const REFRESH_GAP: Duration = Duration::from_secs(10);

/// How long keys read from a uri are kept before they are read again.
pub const KEYS_LIFETIME: Duration = Duration::from_secs(3600);

/// One verification key of the provider.
struct Key {
    algorithm: Algorithm,
    key: DecodingKey,
}

struct Keys {
    by_kid: HashMap<String, Key>,
    /// Why the last read failed, for the 401's detail and the log.
    last_error: Option<String>,
}

pub struct OidcVerifier {
    config: OidcConfig,
    keys: RwLock<Keys>,
    /// When the last read prompted by an unknown key id began (rate limit).
    last_prompted: Mutex<Option<Instant>>,
    /// Wakes the task that reads a `jwks_uri` (`node` runs it) for an unknown key id.
    refresh_wanted: std::sync::Arc<tokio::sync::Notify>,
    /// The pages' endpoints: from the config, or from the discovery document once read.
    endpoints: RwLock<Option<ProviderEndpoints>>,
    /// A read of a `jwks_uri` asked for by an unknown key id is under way …
    reading: AtomicBool,
    /// … and this counts the reads done, for a request waiting on one ([`Self::await_keys`]).
    reads: tokio::sync::watch::Sender<u64>,
}

/// What the discovery document says.
struct Discovered {
    jwks_uri: Option<String>,
    endpoints: Option<ProviderEndpoints>,
}

impl OidcVerifier {
    /// The verifier, with the keys read once (a failed read is logged and retried on the first
    /// token that needs a key).
    pub fn new(config: OidcConfig) -> Self {
        let verifier = Self {
            keys: RwLock::new(Keys { by_kid: HashMap::new(), last_error: None }),
            last_prompted: Mutex::new(None),
            refresh_wanted: std::sync::Arc::new(tokio::sync::Notify::new()),
            endpoints: RwLock::new(config.pages.as_ref().and_then(|p| p.endpoints.clone())),
            reading: AtomicBool::new(false),
            reads: tokio::sync::watch::channel(0).0,
            config,
        };
        if let JwksSource::File(_) = verifier.config.jwks {
            verifier.reload_file();
        }
        verifier
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// The pages' sign-in and the provider's endpoints for it: `None` when the pages have no
    /// client at the provider; endpoints `None` while the discovery document is unread.
    pub fn pages(&self) -> Option<(&PagesSignIn, Option<ProviderEndpoints>)> {
        let pages = self.config.pages.as_ref()?;
        Some((pages, self.endpoints.read().unwrap_or_else(|p| p.into_inner()).clone()))
    }

    /// The origin the pages fetch tokens from (their Content-Security-Policy's `connect-src`):
    /// the token endpoint's, else the issuer's until the discovery document is read.
    pub fn token_origin(&self) -> Option<String> {
        let (_, endpoints) = self.pages()?;
        let url = endpoints.map_or_else(|| self.config.issuer.clone(), |e| e.token_endpoint);
        let origin = reqwest::Url::parse(&url).ok()?.origin();
        origin.is_tuple().then(|| origin.ascii_serialization())
    }

    /// Where the issuer's discovery document is (`ISSUER/.well-known/openid-configuration`).
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.config.issuer.trim_end_matches('/'))
    }

    /// Whether the discovery document must be read: for the keys, or for the pages' endpoints.
    fn needs_discovery(&self) -> bool {
        self.config.jwks == JwksSource::Discovery || self.config.pages.as_ref().is_some_and(|p| p.endpoints.is_none())
    }

    /// Whether `algorithm` is one of this provider's (the token goes here, not to the secrets).
    pub fn handles(algorithm: Algorithm) -> bool {
        matches!(algorithm, Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA)
    }

    /// Take a JWKS document: every RSA, P-256 and Ed25519 key with a key id; symmetric keys and
    /// other curves are left out (a provider's JWKS never needs them, and an `oct` key here
    /// would turn a public document into a signing secret).
    pub fn install(&self, document: &str) -> Result<usize, String> {
        let set: JwkSet = serde_json::from_str(document).map_err(|e| format!("the JWKS is not valid: {e}"))?;
        let mut by_kid = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else { continue };
            let algorithm = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
                AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => Algorithm::EdDSA,
                _ => continue,
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else { continue };
            by_kid.insert(kid, Key { algorithm, key });
        }
        let count = by_kid.len();
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        *keys = Keys { by_kid, last_error: None };
        Ok(count)
    }

    fn failed(&self, why: String) {
        tracing::warn!(provider = %self.config.name, error = %why, "cannot read the identity provider's keys");
        self.keys.write().unwrap_or_else(|p| p.into_inner()).last_error = Some(why);
    }

    fn reload_file(&self) {
        let JwksSource::File(path) = &self.config.jwks else { return };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                if let Err(e) = self.install(&text) {
                    self.failed(format!("{}: {e}", path.display()));
                }
            }
            Err(e) => self.failed(format!("{}: {e}", path.display())),
        }
    }

    /// Read the keys from the uri (or the one the discovery document names) now: at start, on
    /// their lifetime and when prompted.
    pub async fn reload_uri(&self, client: &reqwest::Client) {
        let discovered = if self.needs_discovery() {
            match self.discover(client).await {
                Ok(found) => {
                    // The pages' endpoints from the document unless the config gave them.
                    let from_document = self.config.pages.as_ref().is_some_and(|p| p.endpoints.is_none());
                    if let Some(endpoints) = found.endpoints.filter(|_| from_document) {
                        *self.endpoints.write().unwrap_or_else(|p| p.into_inner()) = Some(endpoints);
                    }
                    Some(found.jwks_uri)
                }
                Err(e) if self.config.jwks == JwksSource::Discovery => return self.failed(e),
                Err(e) => {
                    tracing::warn!(provider = %self.config.name, error = %e, "cannot read the identity provider's discovery document for the pages' sign-in");
                    None
                }
            }
        } else {
            None
        };
        let uri = match &self.config.jwks {
            JwksSource::File(_) => return,
            JwksSource::Uri(uri) => uri.clone(),
            JwksSource::Discovery => match discovered.flatten() {
                Some(uri) => uri,
                None => return self.failed(format!("{}: has no jwks_uri", self.discovery_url())),
            },
        };
        match tokio::time::timeout(Duration::from_secs(5), get_text(client, &uri)).await {
            Ok(Ok(text)) => {
                if let Err(e) = self.install(&text) {
                    self.failed(format!("{uri}: {e}"));
                }
            }
            Ok(Err(e)) => self.failed(format!("{uri}: {e}")),
            Err(_) => self.failed(format!("{uri}: no answer within 5 s")),
        }
    }

    /// The issuer's discovery document, which must name the same issuer (OpenID Connect
    /// Discovery 1.0, section 4.3): its `jwks_uri` and the pages' endpoints.
    async fn discover(&self, client: &reqwest::Client) -> Result<Discovered, String> {
        let url = self.discovery_url();
        let text = tokio::time::timeout(Duration::from_secs(5), get_text(client, &url))
            .await
            .map_err(|_| format!("{url}: no answer within 5 s"))?
            .map_err(|e| format!("{url}: {e}"))?;
        let document: Value = serde_json::from_str(&text).map_err(|e| format!("{url}: not JSON: {e}"))?;
        if document["issuer"].as_str() != Some(self.config.issuer.as_str()) {
            return Err(format!("{url}: names the issuer {}, not {}", document["issuer"], self.config.issuer));
        }
        let text = |name: &str| document[name].as_str().map(str::to_owned);
        let endpoints = match (text("authorization_endpoint"), text("token_endpoint")) {
            (Some(authorization_endpoint), Some(token_endpoint)) => Some(ProviderEndpoints {
                authorization_endpoint,
                token_endpoint,
                end_session_endpoint: text("end_session_endpoint"),
            }),
            _ => None,
        };
        Ok(Discovered { jwks_uri: text("jwks_uri"), endpoints })
    }

    /// A token named a key id not among the keys and a read of the provider's keys is under
    /// way: wait for it (at most `timeout`), so a rotation at the provider costs the first
    /// request with the new key a wait, not a 401. True when the caller should verify again.
    pub async fn await_keys(&self, timeout: Duration) -> bool {
        let mut reads = self.reads.subscribe();
        reads.borrow_and_update();
        // The reader installs the keys, clears `reading`, then counts the read: seen clear,
        // the keys are in.
        if !self.reading.load(Ordering::SeqCst) {
            return true;
        }
        tokio::time::timeout(timeout, reads.changed()).await.is_ok_and(|r| r.is_ok())
    }

    /// Whether an unknown key id may prompt a read now (at most once per [`REFRESH_GAP`]);
    /// marks the read as begun.
    pub fn may_refresh(&self) -> bool {
        let mut last = self.last_prompted.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|at| at.elapsed() < REFRESH_GAP) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    /// Verify a token this provider signed. An unknown key id re-reads a JWKS file at once and
    /// wakes the reader of a `jwks_uri` (both rate limited): that token is refused
    /// ([`AuthError::UnknownKey`]) and its retry finds the key.
    /// The token's principal and its `exp`.
    pub fn verify(&self, token: &str, algorithm: Algorithm, kid: Option<&str>) -> Result<(Principal, u64), AuthError> {
        let kid = kid.ok_or_else(|| AuthError::Claims("a provider's token must name its key (kid)".into()))?;
        let known = self.keys.read().unwrap_or_else(|p| p.into_inner()).by_kid.contains_key(kid);
        if !known && self.may_refresh() {
            match self.config.jwks {
                JwksSource::File(_) => self.reload_file(),
                // Read in the background; the request waits for it (`await_keys`).
                JwksSource::Uri(_) | JwksSource::Discovery => {
                    self.reading.store(true, Ordering::SeqCst);
                    self.refresh_wanted.notify_one();
                }
            }
        }
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let Some(key) = keys.by_kid.get(kid) else {
            return Err(match &keys.last_error {
                Some(why) => AuthError::ProviderKeys(why.clone()),
                None => AuthError::UnknownKey,
            });
        };
        if key.algorithm != algorithm {
            return Err(AuthError::WrongAlgorithm);
        }
        let mut validation = Validation::new(key.algorithm);
        validation.leeway = LEEWAY_SECONDS;
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key.key, &validation)
            .map_err(|e| map_error(&e))?;
        let exp = data.claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        Ok((self.principal(&data.claims)?, exp))
    }

    fn principal(&self, claims: &serde_json::Map<String, Value>) -> Result<Principal, AuthError> {
        let sub = claims.get("sub").and_then(Value::as_str).unwrap_or_default();
        let user = UserId::parse(&format!("{}:{sub}", self.config.name))
            .map_err(|e| AuthError::Claims(format!("sub: {e}")))?;
        let roles: Vec<&str> = match claims.get(&self.config.roles_claim) {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            Some(Value::String(text)) => text.split_whitespace().collect(),
            _ => Vec::new(),
        };
        let admin = roles.contains(&self.config.admin_role.as_str());
        let mut stores = roles.iter().filter_map(|r| r.strip_prefix(self.config.staff_role_prefix.as_str()));
        let staff = match (stores.next(), stores.next()) {
            (None, _) => None,
            (Some(store), None) => {
                Some(StoreId::parse(store).map_err(|e| AuthError::Claims(format!("staff role's store: {e}")))?)
            }
            (Some(_), Some(_)) => {
                return Err(AuthError::Claims("staff of more than one store: give each its own account".into()))
            }
        };
        Ok(Principal { user, admin, staff })
    }
}

async fn get_text(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    response.text().await.map_err(|e| e.to_string())
}

/// Keep a `jwks_uri`'s keys: read at start, again every [`KEYS_LIFETIME`] and whenever an
/// unknown key id asks for it; ends with the verifier.
pub fn spawn_uri_reader(verifier: &std::sync::Arc<OidcVerifier>) {
    if matches!(verifier.config.jwks, JwksSource::File(_)) && !verifier.needs_discovery() {
        return;
    }
    let (weak, wanted) = (std::sync::Arc::downgrade(verifier), verifier.refresh_wanted.clone());
    let ca_file = verifier.config.ca_file.clone();
    tokio::spawn(async move {
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(5));
        // The roots an https provider is checked against (this build's HTTP client has none of
        // its own); without the file only a plain-http uri (a sidecar, a test) can be read.
        match std::fs::read(&ca_file).map(|pem| reqwest::Certificate::from_pem_bundle(&pem)) {
            Ok(Ok(roots)) => {
                for root in roots {
                    builder = builder.add_root_certificate(root);
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(file = %ca_file.display(), error = %e, "cannot read the CA certificates for auth.oidc.jwks_uri")
            }
            Err(e) => {
                tracing::warn!(file = %ca_file.display(), error = %e, "no CA certificates for auth.oidc.jwks_uri (set auth.oidc.ca_file)")
            }
        }
        let client = match builder.build() {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(error = %e, "no HTTP client for the identity provider's keys");
                return;
            }
        };
        loop {
            match weak.upgrade() {
                Some(verifier) => {
                    verifier.reload_uri(&client).await;
                    verifier.reading.store(false, Ordering::SeqCst);
                    verifier.reads.send_modify(|n| *n += 1);
                }
                None => return,
            }
            tokio::select! {
                () = wanted.notified() => {}
                () = tokio::time::sleep(KEYS_LIFETIME) => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;

    const ISSUER: &str = "https://id.example.test/realms/pizza";

    /// A provider in the test: its keys (ES256 and EdDSA made here, RS256 from a fixture) and
    /// the JWKS it publishes.
    struct Provider {
        es256: EncodingKey,
        eddsa: EncodingKey,
        rs256: EncodingKey,
        jwks: Value,
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn provider() -> Provider {
        let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let raw = ec.public_key_raw();
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let rsa_pem = include_str!("../../tests/fixtures/oidc-rs256.pem");
        let rsa_jwk: Value = serde_json::from_str(include_str!("../../tests/fixtures/oidc-rs256.jwk.json")).unwrap();
        Provider {
            es256: EncodingKey::from_ec_pem(ec.serialize_pem().as_bytes()).unwrap(),
            eddsa: EncodingKey::from_ed_pem(ed.serialize_pem().as_bytes()).unwrap(),
            rs256: EncodingKey::from_rsa_pem(rsa_pem.as_bytes()).unwrap(),
            jwks: json!({ "keys": [
                { "kty": "EC", "crv": "P-256", "kid": "ec-1", "use": "sig", "alg": "ES256",
                  "x": b64(&raw[1..33]), "y": b64(&raw[33..65]) },
                { "kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "use": "sig", "alg": "EdDSA",
                  "x": b64(ed.public_key_raw()) },
                rsa_jwk,
                // A symmetric key in a JWKS is never taken.
                { "kty": "oct", "kid": "oct-1", "k": b64(b"a-shared-secret-a-shared-secret-00") },
            ]}),
        }
    }

    fn config(jwks: JwksSource) -> OidcConfig {
        OidcConfig {
            name: "kc".into(),
            issuer: ISSUER.into(),
            audience: "pizza-orders".into(),
            jwks,
            ca_file: "/etc/ssl/certs/ca-certificates.crt".into(),
            roles_claim: "roles".into(),
            admin_role: "pizza-admin".into(),
            staff_role_prefix: "pizza-staff:".into(),
            pages: None,
        }
    }

    fn verifier(p: &Provider) -> OidcVerifier {
        let v = OidcVerifier::new(config(JwksSource::Uri("http://127.0.0.1:9/jwks".into())));
        assert_eq!(v.install(&p.jwks.to_string()), Ok(3));
        v
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn claims(extra: Value) -> Value {
        let mut c = json!({ "iss": ISSUER, "aud": ["pizza-orders", "account"], "sub": "4f1c-77",
            "exp": now() + 300, "iat": now(), "nbf": now() - 5 });
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    }

    fn sign(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    fn check(v: &OidcVerifier, token: &str) -> Result<Principal, AuthError> {
        let header = jsonwebtoken::decode_header(token).unwrap();
        v.verify(token, header.alg, header.kid.as_deref()).map(|(p, _)| p)
    }

    #[test]
    fn rs256_es256_and_eddsa_tokens_verify_to_the_namespaced_subject_and_its_roles() {
        let p = provider();
        let v = verifier(&p);
        let customer = sign(Algorithm::ES256, "ec-1", &p.es256, &claims(json!({})));
        let expected = Principal { user: UserId::parse("kc:4f1c-77").unwrap(), admin: false, staff: None };
        assert_eq!(check(&v, &customer), Ok(expected.clone()));
        let admin = sign(Algorithm::EdDSA, "ed-1", &p.eddsa, &claims(json!({ "roles": ["pizza-admin", "other"] })));
        assert!(check(&v, &admin).unwrap().admin);
        let cook = sign(
            Algorithm::RS256,
            "rsa-1",
            &p.rs256,
            &claims(json!({ "roles": "offline_access pizza-staff:berlin-mitte" })),
        );
        assert_eq!(check(&v, &cook).unwrap().staff, Some(StoreId::parse("berlin-mitte").unwrap()));
        let two =
            sign(Algorithm::ES256, "ec-1", &p.es256, &claims(json!({ "roles": ["pizza-staff:a", "pizza-staff:b"] })));
        assert!(matches!(check(&v, &two), Err(AuthError::Claims(_))));
    }

    #[test]
    fn wrong_issuer_audience_times_keys_and_algorithms_are_refused() {
        let p = provider();
        let v = verifier(&p);
        let es = |extra: Value| sign(Algorithm::ES256, "ec-1", &p.es256, &claims(extra));
        assert!(check(&v, &es(json!({ "iss": "https://evil.test" }))).is_err());
        assert!(check(&v, &es(json!({ "aud": "another-service" }))).is_err());
        assert_eq!(check(&v, &es(json!({ "exp": now() - 120 }))), Err(AuthError::Expired));
        assert!(check(&v, &es(json!({ "nbf": now() + 600 }))).is_err(), "not yet valid");
        // Within the stated leeway (30 s) an expiry just passed still counts.
        assert!(check(&v, &es(json!({ "exp": now() - 10 }))).is_ok());
        // Signed by another key under a known kid.
        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let forged = sign(
            Algorithm::ES256,
            "ec-1",
            &EncodingKey::from_ec_pem(other.serialize_pem().as_bytes()).unwrap(),
            &claims(json!({})),
        );
        assert_eq!(check(&v, &forged), Err(AuthError::BadSignature));
        // A kid that names a key of another algorithm.
        let mixed = sign(Algorithm::EdDSA, "ec-1", &p.eddsa, &claims(json!({})));
        assert_eq!(check(&v, &mixed), Err(AuthError::WrongAlgorithm));
        // The symmetric key in the JWKS was not taken: a token "signed" with it is unknown.
        let oct = sign(
            Algorithm::HS256,
            "oct-1",
            &EncodingKey::from_secret(b"a-shared-secret-a-shared-secret-00"),
            &claims(json!({})),
        );
        assert_eq!(check(&v, &oct), Err(AuthError::UnknownKey));
        // No kid at all.
        let none = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims(json!({})), &p.es256).unwrap();
        assert!(matches!(check(&v, &none), Err(AuthError::Claims(_))));
    }

    #[test]
    fn beside_the_secrets_a_token_cannot_choose_which_kind_of_key_checks_it() {
        let p = provider();
        let secret = crate::config::TokenSecret::parse(b"0123456789abcdef0123456789abcdef").unwrap();
        let keys = super::super::TokenKeys::new(&secret).with_oidc(std::sync::Arc::new(verifier(&p)));
        // Both kinds verify side by side.
        let minted =
            keys.mint(&UserId::parse("dev").unwrap(), false, Duration::from_secs(60), crate::domain::Timestamp::now());
        assert_eq!(keys.verify(&minted.unwrap()).map(|p| p.user.as_str().to_owned()), Ok("dev".into()));
        let provided = sign(Algorithm::RS256, "rsa-1", &p.rs256, &claims(json!({})));
        assert_eq!(keys.verify(&provided).map(|p| p.user.as_str().to_owned()), Ok("kc:4f1c-77".into()));
        // The classic confusion: HS256 "signed" with the provider's published key as the secret.
        let public_pem = include_str!("../../tests/fixtures/oidc-rs256.jwk.json");
        let confused =
            sign(Algorithm::HS256, "rsa-1", &EncodingKey::from_secret(public_pem.as_bytes()), &claims(json!({})));
        assert_eq!(keys.verify(&confused), Err(AuthError::BadSignature));
        // `alg: none` with the provider's kid.
        let none =
            format!("{}.{}.", b64(br#"{"alg":"none","kid":"rsa-1"}"#), b64(claims(json!({})).to_string().as_bytes()));
        assert!(keys.verify(&none).is_err());
        // Without a provider configured, a provider's token is refused for its algorithm.
        let plain = super::super::TokenKeys::new(&secret);
        assert_eq!(plain.verify(&provided), Err(AuthError::WrongAlgorithm));
    }

    #[test]
    fn an_unknown_kid_rereads_a_jwks_file_at_most_once_per_gap() {
        let p = provider();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        // The file starts with the EC key only; the provider then rotates to the Ed25519 key.
        let first = json!({ "keys": [p.jwks["keys"][0].clone()] });
        std::fs::write(&path, first.to_string()).unwrap();
        let v = OidcVerifier::new(config(JwksSource::File(path.clone())));
        let rotated = sign(Algorithm::EdDSA, "ed-1", &p.eddsa, &claims(json!({})));
        std::fs::write(&path, p.jwks.to_string()).unwrap();
        assert!(check(&v, &rotated).is_ok(), "the new kid made the file be read again");
        // A made-up kid right after: no read (the gap), refused as unknown.
        let made_up = sign(Algorithm::ES256, "made-up", &p.es256, &claims(json!({})));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(check(&v, &made_up), Err(AuthError::UnknownKey));
        // The keys already read keep working while the file is gone.
        assert!(check(&v, &rotated).is_ok());
    }
}
