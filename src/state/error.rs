use crate::codec::CodecError;

/// A failure of the storage itself (disk, file, encoding), as opposed to a [`super::Rejection`]
/// of a command. Any of these aborts the whole transaction it happened in.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A bug, not a condition: the apply path borrowed a table it already holds (redb's
    /// `TableAlreadyOpen`).
    #[error("internal error: the table {0} is already in use in this transaction")]
    TableInUse(&'static str),
    #[error("storage error: {0}")]
    Redb(#[from] redb::Error),
    #[error("stored data is unreadable: {0}")]
    Codec(#[from] CodecError),
    #[error("the data directory {path} holds format version {found}; this build reads version {expected}")]
    FormatVersion { path: String, found: u64, expected: u64 },
    #[error("cannot use the data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error(
        "cannot open the data file {path}: {reason}. If it is damaged, do not edit it: move it aside, remove this \
         node from the cluster ('pizza-orders cluster remove --id <this node id>' against a healthy node), start it on an \
         empty data directory and add it again ('pizza-orders cluster add --id <id> --addr <host:port>'); it catches up by snapshot. A \
         one-node installation restores its last backup instead (docs/operations.md, \"Damaged data file\")"
    )]
    Unreadable { path: String, reason: String },
    #[error("the data file {path} is already open in another process (is a node already running on it?)")]
    AlreadyOpen { path: String },
    #[error("I/O error: {0}")]
    Io(String),
    #[error("the state stream is unusable: {0}")]
    Snapshot(String),
    #[error("the write batch was aborted: {0}")]
    BatchAborted(String),
    #[error("the writer has stopped; the node is shutting down")]
    WriterStopped,
}

macro_rules! via_redb_error {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                Self::Redb(e.into())
            }
        }
    )*};
}

via_redb_error!(redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError, redb::DatabaseError);
