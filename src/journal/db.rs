//! A reopenable handle on the redb database. After an I/O error (a full disk, most often) redb
//! refuses every later operation with "previous I/O error" until the `Database` is closed and
//! opened again; everything in the daemon shares one [`Db`], so the journal writer can do that
//! swap once space returns, without a restart. Readers that begin a transaction during the swap
//! get a storage error (HTTP 503) and retry later.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use redb::WriteTransaction;
use redb::{Database, ReadTransaction, ReadableDatabase, StorageError, TransactionError};

pub struct Db {
    path: PathBuf,
    cache_size_bytes: usize,
    current: RwLock<Option<Arc<Database>>>,
    /// Bumped by every reopen: state derived from relaxed (non-fsynced) commits of an earlier
    /// generation may have been rolled back, so projectors reload when it changes.
    generation: AtomicU64,
}

impl Db {
    pub(crate) fn new(database: Database, path: PathBuf, cache_size_bytes: usize) -> Db {
        Db {
            path,
            cache_size_bytes,
            current: RwLock::new(Some(Arc::new(database))),
            generation: AtomicU64::new(0),
        }
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory holding the database file.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn current(&self) -> Result<Arc<Database>, StorageError> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or(StorageError::DatabaseClosed)
    }

    pub fn begin_read(&self) -> Result<ReadTransaction, TransactionError> {
        self.current()?.begin_read()
    }

    pub fn begin_write(&self) -> Result<WriteTransaction, TransactionError> {
        self.current()?.begin_write()
    }

    /// Closes the database and opens it again (redb recovers the file to its last durable
    /// commit). Only the journal writer calls this, between transactions. Fails, leaving the
    /// handle closed, when the file cannot be opened yet (still no space, say): call it again.
    pub(crate) fn reopen(&self) -> Result<(), String> {
        let old = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(old) = old {
            match Arc::try_unwrap(old) {
                Ok(database) => {
                    if let Err(e) = database.close() {
                        tracing::debug!(error = %e, "closing the failed database");
                    }
                }
                Err(shared) => {
                    // Someone is between cloning the handle and beginning a transaction; put it
                    // back and try again later.
                    *self
                        .current
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(shared);
                    return Err("the database is still in use".into());
                }
            }
        }
        let database = super::schema::open_database(&self.path, self.cache_size_bytes)
            .map_err(|e| e.to_string())?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(database));
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use redb::ReadableTable;

    use super::super::schema::{self, JOURNAL};

    #[test]
    fn reopen_keeps_committed_data_and_bumps_the_generation() {
        let dir = tempfile::tempdir().unwrap();
        let db = schema::open(dir.path(), 1 << 20).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(JOURNAL)
            .unwrap()
            .insert(1, &b"x"[..])
            .unwrap();
        txn.commit().unwrap();
        assert_eq!(db.generation(), 0);
        db.reopen().unwrap();
        assert_eq!(db.generation(), 1);
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(JOURNAL).unwrap();
        assert_eq!(table.get(1).unwrap().unwrap().value(), b"x");
        assert_eq!(db.dir(), dir.path());
    }

    #[test]
    fn reopen_waits_while_the_handle_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let db = schema::open(dir.path(), 1 << 20).unwrap();
        let held = db.current().unwrap();
        assert!(db.reopen().is_err(), "still shared");
        assert!(db.begin_read().is_ok(), "put back after the refusal");
        drop(held);
        db.reopen().unwrap();
    }
}
