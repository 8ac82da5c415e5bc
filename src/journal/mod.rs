//! The append-only event journal: the single source of truth. Everything the daemon knows —
//! ingested events, users, keys, later hooks and cursors — is an entry here or a projection of
//! the entries. One writer thread ([`writer`]) appends; any thread reads ([`reader`]).

pub mod codec;
pub mod db;
pub mod reader;
pub mod schema;
pub mod writer;

pub use codec::{Envelope, Origin};
pub use db::Db;
pub use writer::{Appended, Blob, NewEvent, WriteFn, Writer};

/// Errors of the journal layer. `Clone` so one failed group commit can answer every request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JournalError {
    #[error("the journal write queue is full")]
    Busy,
    #[error("the journal writer has stopped")]
    Closed,
    #[error("storage error: {0}")]
    Storage(String),
    /// The disk is full or failed (I/O error): nothing of the request was written. The writer
    /// reopens the database by itself once there is room again.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("journal corrupt: {0}")]
    Corrupt(String),
}

impl From<redb::Error> for JournalError {
    fn from(e: redb::Error) -> Self {
        match e {
            // I/O failures (ENOSPC above all): redb refuses further writes until reopened.
            redb::Error::Io(_)
            | redb::Error::PreviousIo
            | redb::Error::DatabaseClosed
            | redb::Error::Backend(_) => JournalError::Unavailable(e.to_string()),
            other => JournalError::Storage(other.to_string()),
        }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for JournalError {
            fn from(e: $t) -> Self {
                JournalError::from(redb::Error::from(e))
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<codec::CodecError> for JournalError {
    fn from(e: codec::CodecError) -> Self {
        JournalError::Corrupt(e.to_string())
    }
}
