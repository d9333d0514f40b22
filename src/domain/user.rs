use serde::{Deserialize, Serialize};

/// The id of a customer, taken from the `sub` claim of a verified token:
/// 1..=128 characters, no control characters, no surrounding whitespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserIdError {
    #[error("the user id is empty")]
    Empty,
    #[error("the user id is longer than {max} characters", max = UserId::MAX_CHARS)]
    TooLong,
    #[error("the user id has surrounding whitespace or a control character")]
    BadCharacter,
}

impl UserId {
    pub const MAX_CHARS: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, UserIdError> {
        if raw.is_empty() {
            return Err(UserIdError::Empty);
        }
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(UserIdError::TooLong);
        }
        if raw.trim() != raw || raw.chars().any(char::is_control) {
            return Err(UserIdError::BadCharacter);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserId {
    type Error = UserIdError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<UserId> for String {
    fn from(user: UserId) -> Self {
        user.0
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids_and_rejects_odd_ones() {
        assert!(UserId::parse("alice").is_ok());
        assert_eq!(UserId::parse(""), Err(UserIdError::Empty));
        assert_eq!(UserId::parse(" alice"), Err(UserIdError::BadCharacter));
        assert_eq!(UserId::parse("a\u{0}b"), Err(UserIdError::BadCharacter));
        assert_eq!(UserId::parse(&"x".repeat(129)), Err(UserIdError::TooLong));
    }
}
