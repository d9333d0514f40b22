//! Every byte encoding the service writes: redb values today, Raft messages and backups later.
//!
//! Layout: one format-version byte, then the value in bincode 2 (standard config, through
//! serde). Keeping the choice here means a new format is one new version number and one
//! decoder branch, never a hunt through the code base.

use serde::{de::DeserializeOwned, Serialize};

/// The version written in front of every encoded value.
pub const FORMAT_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty value: no format-version byte")]
    Empty,
    #[error(
        "format version {found} is not known to this build (it reads version {FORMAT_VERSION}); upgrade the binary"
    )]
    UnknownVersion { found: u8 },
    #[error("value cannot be decoded: {0}")]
    Malformed(String),
    #[error("{0} trailing bytes after the value")]
    Trailing(usize),
    #[error("value cannot be encoded: {0}")]
    Encode(String),
}

/// The largest value we ever decode. A corrupt length prefix must fail, not allocate.
const MAX_VALUE_BYTES: usize = 64 << 20;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_VALUE_BYTES>()
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![FORMAT_VERSION];
    bincode::serde::encode_into_std_write(value, &mut out, config()).map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(out)
}

/// Version 2 is the catalog's form with menus and tax (`domain::catalog`): its documents, store
/// rows, menus and history records are written at version 2 only when they use menus or tax,
/// and at [`FORMAT_VERSION`] in the form before (`domain::catalog::v1`) otherwise, so a node
/// of v0.5.0 reads every catalog that does not need more. No other value has a version 2.
pub const CATALOG_V2: u8 = 2;

/// `value` behind format version `version` (see [`CATALOG_V2`]).
pub fn encode_as<T: Serialize>(version: u8, value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = vec![version];
    bincode::serde::encode_into_std_write(value, &mut out, config()).map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(out)
}

/// The format version `bytes` were written in; values that have two forms decode by it.
pub fn version_of(bytes: &[u8]) -> Result<u8, CodecError> {
    bytes.first().copied().ok_or(CodecError::Empty)
}

/// A value written at format version `version` (see [`CATALOG_V2`]).
pub fn decode_as<T: DeserializeOwned>(version: u8, bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        Some((&found, body)) if found == version => decode_body(body),
        Some((&found, _)) => Err(CodecError::UnknownVersion { found }),
        None => Err(CodecError::Empty),
    }
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_as(FORMAT_VERSION, bytes)
}

fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, CodecError> {
    let (value, used) =
        bincode::serde::decode_from_slice(body, config()).map_err(|e| CodecError::Malformed(e.to_string()))?;
    if used != body.len() {
        return Err(CodecError::Trailing(body.len() - used));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{OrderId, Timestamp, Topping, Toppings};

    #[test]
    fn round_trips_domain_values() {
        let id = OrderId::new_at(Timestamp::from_millis(1_700_000_000_000));
        assert_eq!(decode::<OrderId>(&encode(&id).unwrap()).unwrap(), id);
        let toppings = Toppings::from_list(&[Topping::Mushroom]).unwrap();
        assert_eq!(decode::<Toppings>(&encode(&toppings).unwrap()).unwrap(), toppings);
    }

    #[test]
    fn unknown_version_empty_and_garbage_are_errors_not_panics() {
        assert!(matches!(decode::<u64>(&[]), Err(CodecError::Empty)));
        assert!(matches!(decode::<u64>(&[9, 1]), Err(CodecError::UnknownVersion { found: 9 })));
        assert!(matches!(decode::<String>(&[FORMAT_VERSION, 200]), Err(CodecError::Malformed(_))));
        assert!(matches!(decode::<u8>(&[FORMAT_VERSION, 1, 2]), Err(CodecError::Trailing(1))));
        // A topping set with a duplicate is refused on the way in from disk too.
        let twice = encode(&vec![Topping::Pepperoni, Topping::Pepperoni]).unwrap();
        assert!(decode::<Toppings>(&twice).is_err());
    }

    proptest::proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = decode::<crate::domain::Order>(&bytes);
        }
    }
}
