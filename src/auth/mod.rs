//! Bearer tokens: HS256 JWTs issued elsewhere (or minted by `pizza-orders token` for
//! development). `sub` is the user id, `exp` is required, `admin: true` grants the admin API.
//! Beside them, with `[auth.oidc]`, an identity provider's RS256/ES256/EdDSA tokens (`oidc`).
//! HS256 is checked only with the secrets and the provider's algorithms only with its keys, so
//! `alg: none` and algorithm-confusion tokens fail verification.
//!
//! Secrets rotate without signing anyone out: `[[auth.keys]]` lists them current first; a
//! token is minted with the current one and its `kid`, and verified with the key its `kid`
//! names (a token without `kid`, from before the rotation, with each key in turn). With one
//! unnamed secret (`auth.jwt_secret`) the `kid` is not looked at.

use std::time::Duration;

use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

pub mod oidc;

use std::sync::Arc;

use crate::config::{NamedSecret, TokenSecret};
use crate::domain::{StoreId, Timestamp, UserId};

/// Who is calling, once their token has been verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user: UserId,
    pub admin: bool,
    /// Staff of this store (`role: "staff"`, `store`): sees and moves that store's orders.
    pub staff: Option<StoreId>,
}

/// The role a token grants beside its user's own orders.
pub const STAFF_ROLE: &str = "staff";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    admin: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    store: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token: send 'Authorization: Bearer <token>'")]
    Missing,
    #[error("the Authorization header is not 'Bearer <token>'")]
    NotBearer,
    #[error("the token is malformed (a JWT is three base64url parts: header, claims, signature)")]
    Malformed,
    #[error("the token has expired")]
    Expired,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token's algorithm is not one this service takes for its key (HS256 for its own secrets; RS256, ES256 or EdDSA for the identity provider's keys)")]
    WrongAlgorithm,
    #[error("the token's claims are invalid: {0}")]
    Claims(String),
    #[error("the token's key id (kid) is not one this service knows (a removed or future secret)")]
    UnknownKey,
    #[error("the identity provider's keys cannot be read ({0}); tokens signed with keys read before still work")]
    ProviderKeys(String),
}

/// Seconds of clock skew tolerated on `exp`.
const LEEWAY_SECONDS: u64 = 30;

/// How many verified tokens are remembered (about 300 bytes each).
const VERIFIED_TOKENS: usize = 16_384;

pub struct TokenKeys {
    /// The current secret, and the `kid` its tokens carry.
    encoding: Option<(Option<String>, EncodingKey)>,
    /// Every secret that verifies, current first.
    decoding: Vec<(Option<String>, DecodingKey)>,
    validation: Validation,
    /// Tokens whose signature and claims checked out, with their `exp`: a client sends the
    /// same token with every request, and verifying it (base64, HMAC, two JSON parses) was
    /// ~7 % of a read's CPU. Keyed by the whole token, so only the same bytes hit, and the
    /// expiry is checked again on every hit.
    verified: quick_cache::sync::Cache<Box<str>, (Principal, u64)>,
    /// An OpenID Connect provider whose RS256, ES256 and EdDSA tokens are taken too.
    oidc: Option<Arc<oidc::OidcVerifier>>,
}

impl TokenKeys {
    /// One secret; tokens carry no `kid`.
    pub fn new(secret: &TokenSecret) -> Self {
        Self::rotating(&[NamedSecret { kid: None, secret: secret.clone() }])
    }

    /// Several secrets, current (signing) first. With none, nothing verifies and nothing is
    /// minted (the configuration refuses that before it gets here).
    pub fn rotating(keys: &[NamedSecret]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: keys.first().map(|k| (k.kid.clone(), EncodingKey::from_secret(k.secret.bytes()))),
            decoding: keys.iter().map(|k| (k.kid.clone(), DecodingKey::from_secret(k.secret.bytes()))).collect(),
            validation,
            verified: quick_cache::sync::Cache::new(VERIFIED_TOKENS),
            oidc: None,
        }
    }

    /// These secrets and tokens from the provider `verifier` checks.
    pub fn with_oidc(mut self, verifier: Arc<oidc::OidcVerifier>) -> Self {
        self.oidc = Some(verifier);
        self
    }

    /// The provider, if one is configured.
    pub fn oidc(&self) -> Option<&Arc<oidc::OidcVerifier>> {
        self.oidc.as_ref()
    }

    /// A token for `user` valid for `ttl` from `now`.
    pub fn mint(&self, user: &UserId, admin: bool, ttl: Duration, now: Timestamp) -> Result<String, AuthError> {
        self.mint_as(user, admin, None, ttl, now)
    }

    /// A token for `user`, staff of `store` when given.
    pub fn mint_as(
        &self,
        user: &UserId,
        admin: bool,
        staff: Option<&StoreId>,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<String, AuthError> {
        let iat = u64::try_from(now.millis() / 1000).unwrap_or(0);
        let claims = Claims {
            sub: user.as_str().to_owned(),
            exp: iat.saturating_add(ttl.as_secs()),
            iat: Some(iat),
            admin,
            role: staff.map(|_| STAFF_ROLE.to_owned()),
            store: staff.map(|s| s.as_str().to_owned()),
        };
        let (kid, key) = self.encoding.as_ref().ok_or(AuthError::UnknownKey)?;
        let mut header = Header::new(Algorithm::HS256);
        header.kid.clone_from(kid);
        jsonwebtoken::encode(&header, &claims, key).map_err(|e| AuthError::Claims(e.to_string()))
    }

    /// Verify the value of an `Authorization` header.
    pub fn verify_header(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let (scheme, token) = header.trim().split_once(' ').ok_or(AuthError::NotBearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::NotBearer);
        }
        self.verify(token.trim())
    }

    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.verify_at(token, jsonwebtoken::get_current_timestamp())
    }

    /// `verify` with the clock (UNIX seconds) given, for remembered tokens.
    fn verify_at(&self, token: &str, now: u64) -> Result<Principal, AuthError> {
        if let Some((principal, exp)) = self.verified.get(token) {
            // jsonwebtoken's rule: expired when exp < now - leeway.
            if exp.saturating_add(LEEWAY_SECONDS) < now {
                self.verified.remove(token);
                return Err(AuthError::Expired);
            }
            return Ok(principal);
        }
        self.verify_uncached(token)
    }

    /// The keys to try for a token with `kid`: the one it names, or (no `kid`, or one
    /// unnamed secret) every key in order.
    fn keys_for(&self, kid: Option<String>) -> Result<Vec<&DecodingKey>, AuthError> {
        let named = self.decoding.iter().any(|(k, _)| k.is_some());
        match kid {
            Some(kid) if named => self
                .decoding
                .iter()
                .find(|(k, _)| k.as_deref() == Some(kid.as_str()))
                .map(|(_, key)| vec![key])
                .ok_or(AuthError::UnknownKey),
            _ => Ok(self.decoding.iter().map(|(_, key)| key).collect()),
        }
    }

    /// [`Self::verify`] without the remembered tokens: what a token's first request costs
    /// (`cargo bench --bench tokens`).
    pub fn verify_fresh(&self, token: &str) -> Result<Principal, AuthError> {
        self.verified.remove(token);
        self.verify_uncached(token)
    }

    fn verify_uncached(&self, token: &str) -> Result<Principal, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| map_error(&e))?;
        if oidc::OidcVerifier::handles(header.alg) {
            // The provider's algorithms go only to the provider's keys (and HS256 only to the
            // secrets below): a token cannot choose which kind of key checks it.
            let verifier = self.oidc.as_ref().ok_or(AuthError::WrongAlgorithm)?;
            let (principal, exp) = verifier.verify(token, header.alg, header.kid.as_deref())?;
            self.verified.insert(token.into(), (principal.clone(), exp));
            return Ok(principal);
        }
        let mut outcome = Err(AuthError::UnknownKey);
        for key in self.keys_for(header.kid)? {
            outcome = jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|e| map_error(&e));
            // Another key can only help a signature that did not match this one.
            if !matches!(outcome, Err(AuthError::BadSignature)) {
                break;
            }
        }
        let data = outcome?;
        let user = UserId::parse(&data.claims.sub).map_err(|e| AuthError::Claims(format!("sub: {e}")))?;
        let staff = match (data.claims.role.as_deref(), data.claims.store.as_deref()) {
            (None, None) => None,
            (Some(STAFF_ROLE), Some(store)) => {
                Some(StoreId::parse(store).map_err(|e| AuthError::Claims(format!("store: {e}")))?)
            }
            (Some(STAFF_ROLE), None) => return Err(AuthError::Claims("a staff token must name its store".into())),
            (Some(other), _) => return Err(AuthError::Claims(format!("unknown role '{other}'"))),
            (None, Some(_)) => return Err(AuthError::Claims("'store' needs role 'staff'".into())),
        };
        let principal = Principal { user, admin: data.claims.admin, staff };
        self.verified.insert(token.into(), (principal.clone(), data.claims.exp));
        Ok(principal)
    }
}

fn map_error(e: &jsonwebtoken::errors::Error) -> AuthError {
    match e.kind() {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => AuthError::WrongAlgorithm,
        ErrorKind::MissingRequiredClaim(claim) => AuthError::Claims(format!("'{claim}' is required")),
        ErrorKind::Json(_) => AuthError::Claims("a claim has the wrong type".into()),
        ErrorKind::InvalidAudience => {
            AuthError::Claims("aud: the token is for another audience, not this service".into())
        }
        ErrorKind::InvalidIssuer => AuthError::Claims("iss: the token is from another issuer".into()),
        ErrorKind::ImmatureSignature => AuthError::Claims("nbf: the token is not valid yet".into()),
        _ => AuthError::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> TokenKeys {
        TokenKeys::new(&TokenSecret::parse(secret.as_bytes()).unwrap())
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_minted_token_verifies_to_its_user() {
        let k = keys(SECRET);
        let alice = UserId::parse("alice").unwrap();
        let token = k.mint(&alice, true, Duration::from_secs(60), Timestamp::now()).unwrap();
        let p = k.verify_header(Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!(p, Principal { user: alice.clone(), admin: true, staff: None });
        let store = StoreId::parse("berlin-mitte").unwrap();
        let staff = k.mint_as(&alice, false, Some(&store), Duration::from_secs(60), Timestamp::now()).unwrap();
        assert_eq!(k.verify(&staff).unwrap().staff, Some(store));
    }

    #[test]
    fn expired_foreign_and_unsigned_tokens_are_refused() {
        let k = keys(SECRET);
        let alice = UserId::parse("alice").unwrap();
        let old = Timestamp::from_millis(Timestamp::now().millis() - 3_600_000);
        let expired = k.mint(&alice, false, Duration::from_secs(60), old).unwrap();
        assert_eq!(k.verify(&expired), Err(AuthError::Expired));

        let other =
            keys("another-secret-another-secret-000").mint(&alice, false, Duration::from_secs(60), Timestamp::now());
        assert_eq!(k.verify(&other.unwrap()), Err(AuthError::BadSignature));

        // {"alg":"none","typ":"JWT"} . {"sub":"alice","exp":9999999999} . (no signature)
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6OTk5OTk5OTk5OX0.";
        assert!(k.verify(none).is_err());
        assert_eq!(k.verify("not a token"), Err(AuthError::Malformed));
        assert_eq!(k.verify_header(None), Err(AuthError::Missing));
        assert_eq!(k.verify_header(Some("Basic abc")), Err(AuthError::NotBearer));
    }

    #[test]
    fn a_remembered_token_still_expires_and_a_changed_one_is_verified_again() {
        let k = keys(SECRET);
        let alice = UserId::parse("alice").unwrap();
        let now = Timestamp::now();
        let token = k.mint(&alice, false, Duration::from_secs(60), now).unwrap();
        let secs = u64::try_from(now.millis() / 1000).unwrap();
        assert_eq!(k.verify_at(&token, secs).unwrap().user, alice);
        // Remembered now; still valid within the leeway after exp, refused after it.
        assert_eq!(k.verify_at(&token, secs + 60 + LEEWAY_SECONDS).unwrap().user, alice);
        assert_eq!(k.verify_at(&token, secs + 61 + LEEWAY_SECONDS), Err(AuthError::Expired));
        assert_eq!(k.verify_at(&token, secs), Ok(Principal { user: alice.clone(), admin: false, staff: None }));

        // The same claims with another signature, or another payload with this signature.
        let (rest, signature) = token.rsplit_once('.').unwrap();
        let flipped = if signature.starts_with('A') { "B" } else { "A" };
        let forged = format!("{rest}.{flipped}{}", &signature[1..]);
        assert_eq!(k.verify(&forged), Err(AuthError::BadSignature));
        let bob = k.mint(&UserId::parse("bob").unwrap(), true, Duration::from_secs(60), now).unwrap();
        let (_, bob_payload, _) = split3(&bob);
        let (header, _, _) = split3(&token);
        assert_eq!(k.verify(&format!("{header}.{bob_payload}.{signature}")), Err(AuthError::BadSignature));
    }

    fn split3(token: &str) -> (&str, &str, &str) {
        let mut parts = token.splitn(3, '.');
        (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap())
    }

    fn named(kid: &str, secret: &str) -> NamedSecret {
        NamedSecret { kid: Some(kid.into()), secret: TokenSecret::parse(secret.as_bytes()).unwrap() }
    }

    #[test]
    fn a_rotated_secret_keeps_old_tokens_valid_until_it_is_removed() {
        let alice = UserId::parse("alice").unwrap();
        let ttl = Duration::from_secs(600);
        let old_secret = "old-secret-old-secret-old-secret-0";
        let new_secret = "new-secret-new-secret-new-secret-1";
        // Before the rotation: one unnamed secret, tokens without kid.
        let before = keys(old_secret).mint(&alice, false, ttl, Timestamp::now()).unwrap();
        let old_named = TokenKeys::rotating(&[named("2026-11", old_secret)]).mint(&alice, false, ttl, Timestamp::now());
        let old_named = old_named.unwrap();

        let rotated = TokenKeys::rotating(&[named("2026-12", new_secret), named("2026-11", old_secret)]);
        let fresh = rotated.mint(&alice, true, ttl, Timestamp::now()).unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&fresh).unwrap().kid.as_deref(),
            Some("2026-12"),
            "minted with the current key"
        );
        for token in [&before, &old_named, &fresh] {
            assert_eq!(rotated.verify(token).map(|p| p.user), Ok(alice.clone()));
        }

        // The old secret removed: its tokens are refused, the new ones still verify.
        let after = TokenKeys::rotating(&[named("2026-12", new_secret)]);
        assert_eq!(after.verify(&old_named), Err(AuthError::UnknownKey));
        assert_eq!(after.verify(&before), Err(AuthError::BadSignature));
        assert_eq!(after.verify(&fresh).map(|p| p.admin), Ok(true));

        // A kid naming the current key with another key's signature is no way in.
        let (_, payload, signature) = split3(&old_named);
        let (header, _, _) = split3(&fresh);
        assert_eq!(after.verify(&format!("{header}.{payload}.{signature}")), Err(AuthError::BadSignature));
    }
}
