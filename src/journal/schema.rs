//! The redb tables the journal owns, and opening the database file.

use std::path::Path;

use redb::{Database, TableDefinition};

use super::db::Db;

/// `offset → encoded Envelope` (see `codec`). Append-only; offsets are gapless from 1.
pub const JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("journal");
/// `event id → offset`: idempotent ingest and `GET /v1/events/{id}`.
pub const EVENT_IDS: TableDefinition<&str, u64> = TableDefinition::new("event_ids");
/// `(event type, offset) → ()` for public events: newest-first reads of one type (polling).
pub const EVENTS_BY_TYPE: TableDefinition<(&str, u64), ()> = TableDefinition::new("events_by_type");
/// `sha256 hex → bytes`: release-form files, stored once, committed with the event naming them.
pub const BLOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("blobs");
/// `projector name → last applied offset`, committed with the projector's state.
pub const CHECKPOINTS: TableDefinition<&str, u64> = TableDefinition::new("projector_checkpoints");

pub const DB_FILE_NAME: &str = "journal.redb";

/// Opens (or creates) the database and makes sure every journal table exists, so readers never
/// see a missing table.
pub fn open(data_dir: &Path, cache_size_bytes: usize) -> Result<Db, redb::Error> {
    let path = data_dir.join(DB_FILE_NAME);
    let db = open_database(&path, cache_size_bytes)?;
    Ok(Db::new(db, path, cache_size_bytes))
}

pub(crate) fn open_database(path: &Path, cache_size_bytes: usize) -> Result<Database, redb::Error> {
    let db = Database::builder()
        .set_cache_size(cache_size_bytes)
        .create(path)?;
    let txn = db.begin_write()?;
    {
        txn.open_table(JOURNAL)?;
        txn.open_table(EVENT_IDS)?;
        txn.open_table(CHECKPOINTS)?;
        txn.open_table(EVENTS_BY_TYPE)?;
        txn.open_table(BLOBS)?;
    }
    txn.commit()?;
    Ok(db)
}
