//! Bearer tokens: HS256 JWTs issued elsewhere (or minted by `pizza-orders token` for
//! development). `sub` is the user id, `exp` is required, `admin: true` grants the admin API.
//! Only HS256 is accepted, so `alg: none` and algorithm-confusion tokens fail verification.

use std::time::Duration;

use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::TokenSecret;
use crate::domain::{Timestamp, UserId};

/// Who is calling, once their token has been verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user: UserId,
    pub admin: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    admin: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token: send 'Authorization: Bearer <token>'")]
    Missing,
    #[error("the Authorization header is not 'Bearer <token>'")]
    NotBearer,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token has expired")]
    Expired,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token uses an algorithm other than HS256")]
    WrongAlgorithm,
    #[error("the token's claims are invalid: {0}")]
    Claims(String),
}

/// Seconds of clock skew tolerated on `exp`.
const LEEWAY_SECONDS: u64 = 30;

/// How many verified tokens are remembered (about 300 bytes each).
const VERIFIED_TOKENS: usize = 16_384;

pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Tokens whose signature and claims checked out, with their `exp`: a client sends the
    /// same token with every request, and verifying it (base64, HMAC, two JSON parses) was
    /// ~7 % of a read's CPU. Keyed by the whole token, so only the same bytes hit, and the
    /// expiry is checked again on every hit.
    verified: quick_cache::sync::Cache<Box<str>, (Principal, u64)>,
}

impl TokenKeys {
    pub fn new(secret: &TokenSecret) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret.bytes()),
            decoding: DecodingKey::from_secret(secret.bytes()),
            validation,
            verified: quick_cache::sync::Cache::new(VERIFIED_TOKENS),
        }
    }

    /// A token for `user` valid for `ttl` from `now`.
    pub fn mint(&self, user: &UserId, admin: bool, ttl: Duration, now: Timestamp) -> Result<String, AuthError> {
        let iat = u64::try_from(now.millis() / 1000).unwrap_or(0);
        let claims =
            Claims { sub: user.as_str().to_owned(), exp: iat.saturating_add(ttl.as_secs()), iat: Some(iat), admin };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::Claims(e.to_string()))
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

    fn verify_uncached(&self, token: &str) -> Result<Principal, AuthError> {
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => AuthError::WrongAlgorithm,
                ErrorKind::MissingRequiredClaim(claim) => AuthError::Claims(format!("'{claim}' is required")),
                ErrorKind::Json(_) => AuthError::Claims("a claim has the wrong type".into()),
                _ => AuthError::Malformed,
            })?;
        let user = UserId::parse(&data.claims.sub).map_err(|e| AuthError::Claims(format!("sub: {e}")))?;
        let principal = Principal { user, admin: data.claims.admin };
        self.verified.insert(token.into(), (principal.clone(), data.claims.exp));
        Ok(principal)
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
        assert_eq!(p, Principal { user: alice, admin: true });
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
        assert_eq!(k.verify_at(&token, secs), Ok(Principal { user: alice.clone(), admin: false }));

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
}
