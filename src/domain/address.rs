use serde::{Deserialize, Serialize};

/// A delivery address: trimmed, 1..=300 characters, no control characters.
///
/// Line breaks are control characters too: the UI joins lines with ", " before sending.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Address(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("the address is empty")]
    Empty,
    #[error("the address has {0} characters; at most {max} are allowed", max = Address::MAX_CHARS)]
    TooLong(usize),
    #[error("the address contains a control character (such as a line break or tab)")]
    ControlCharacter,
}

impl Address {
    pub const MAX_CHARS: usize = 300;

    pub fn parse(raw: &str) -> Result<Self, AddressError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(AddressError::Empty);
        }
        let chars = trimmed.chars().count();
        if chars > Self::MAX_CHARS {
            return Err(AddressError::TooLong(chars));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(AddressError::ControlCharacter);
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Address {
    type Error = AddressError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<Address> for String {
    fn from(address: Address) -> Self {
        address.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_surrounding_whitespace() {
        assert_eq!(Address::parse("  1 Main St  ").unwrap().as_str(), "1 Main St");
    }

    #[test]
    fn rejects_empty_and_blank() {
        assert_eq!(Address::parse(""), Err(AddressError::Empty));
        assert_eq!(Address::parse(" \t "), Err(AddressError::Empty));
    }

    #[test]
    fn counts_characters_not_bytes() {
        assert!(Address::parse(&"é".repeat(300)).is_ok());
        assert_eq!(Address::parse(&"é".repeat(301)), Err(AddressError::TooLong(301)));
    }

    #[test]
    fn rejects_control_characters_inside() {
        assert_eq!(Address::parse("1 Main\nSt"), Err(AddressError::ControlCharacter));
        assert_eq!(Address::parse("1 Main\u{7}St"), Err(AddressError::ControlCharacter));
    }
}
