//! Property tests: no input to a parser — JSON bodies, tokens, headers, backup files, Raft
//! messages from a peer — makes it panic. Each returns a value or an error.

use std::io::Write;

use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft_legacy::network_v1::InstallSnapshotRequest;
use pizza_orders::auth::TokenKeys;
use pizza_orders::backup;
use pizza_orders::codec;
use pizza_orders::config::TokenSecret;
use pizza_orders::domain::{Address, Timestamp, UserId};
use pizza_orders::raft::TypeConfig;
use pizza_orders::state::Command;
use proptest::prelude::*;

fn keys() -> TokenKeys {
    TokenKeys::new(&TokenSecret::parse(b"property-test-secret-property-test-secret").unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn tokens_and_authorization_headers(raw in ".{0,400}", dots in "[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,80}") {
        let k = keys();
        let _ = k.verify(&raw);
        let _ = k.verify(&dots);
        let _ = k.verify_header(Some(&raw));
        let _ = k.verify_header(Some(&format!("Bearer {dots}")));
    }

    #[test]
    fn domain_text_fields(raw in "\\PC{0,400}|.{0,400}") {
        let _ = Address::parse(&raw);
        let _ = UserId::parse(&raw);
        let _ = Timestamp::parse_rfc3339(&raw);
    }

    #[test]
    fn codec_values_and_raft_messages_from_peers(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = codec::decode::<Command>(&bytes);
        let _ = codec::decode::<Vec<Command>>(&bytes);
        let _ = codec::decode::<AppendEntriesRequest<TypeConfig>>(&bytes);
        let _ = codec::decode::<VoteRequest<TypeConfig>>(&bytes);
        let _ = pizza_orders::raft::network::decode_vote_request(&bytes);
        let _ = codec::decode::<InstallSnapshotRequest<TypeConfig>>(&bytes);
        let mut versioned = vec![codec::FORMAT_VERSION];
        versioned.extend_from_slice(&bytes);
        let _ = codec::decode::<AppendEntriesRequest<TypeConfig>>(&versioned);
        let _ = codec::decode::<Vec<Command>>(&versioned);
    }

    #[test]
    fn backup_files(header in "PIZZA-ORDERS-BACKUP\n.{0,200}", body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b");
        let mut file = std::fs::File::create(&path).unwrap();
        let mut block = header.into_bytes();
        block.resize(4096, b' ');
        file.write_all(&block).unwrap();
        file.write_all(&body).unwrap();
        drop(file);
        prop_assert!(backup::verify_backup(&path, &mut std::io::sink()).is_err());
    }
}
