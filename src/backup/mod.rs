//! Backups of a running daemon and restoring them into an empty data dir (SPEC §13).
//!
//! A backup is a fresh redb file written from one read transaction of the live database — a
//! consistent snapshot taken while ingest and delivery go on, never a copy of the live file,
//! which redb may be writing. It holds every table the daemon knows ([`tables`]; an unknown
//! table fails the backup rather than being left out), plus two of its own: `backup_meta`
//! (format, journal head, time) and `backup_files`, the data dir's secret files:
//!
//! - `signing.key`: restored so receivers that pinned the daemon's ed25519 public key (`v1a`)
//!   and signed file URLs keep working;
//! - `owner.key`: restored so the owner is not locked out (only its hash is in the journal).
//!
//! The hook secrets (`whsec_`) are in the journal anyway, so a backup file is exactly as secret
//! as the data dir: the CLI writes it with mode 0600.
//!
//! [`snapshot`] writes the file (daemon side), [`restore`] fills an empty data dir from it.

pub mod restore;
pub mod snapshot;
pub mod tables;

use redb::TableDefinition;

/// `key → value` describing the backup: `format`, `journal_head`, `created_at_ms`.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("backup_meta");
/// `file name → bytes`: the data dir's key files.
pub const FILES: TableDefinition<&str, &[u8]> = TableDefinition::new("backup_files");
/// The backup format this build writes and reads.
pub const FORMAT: &str = "rev23-webhooks-backup-1";
/// Data-dir files carried in a backup.
pub const CARRIED_FILES: [&str; 2] = [
    crate::sender::signing::KEY_FILE_NAME,
    crate::daemon::OWNER_KEY_FILE,
];
/// A carried file larger than this is not ours (key files are a few hundred bytes).
pub const MAX_CARRIED_FILE_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("storage: {0}")]
    Storage(String),
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("table {0:?} is not known to the backup: this build cannot back it up")]
    UnknownTable(String),
    #[error("not a rev23-webhooks backup: {0}")]
    NotABackup(String),
    #[error("refusing to restore: {0}")]
    Refused(String),
}

impl BackupError {
    pub fn io(path: &std::path::Path, source: std::io::Error) -> BackupError {
        BackupError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl From<redb::Error> for BackupError {
    fn from(e: redb::Error) -> Self {
        BackupError::Storage(e.to_string())
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for BackupError {
            fn from(e: $t) -> Self {
                BackupError::from(redb::Error::from(e))
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);
