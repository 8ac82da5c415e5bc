//! Every redb table the daemon keeps, copied row by row from a read transaction into another
//! database. A table added to the daemon must be added here: [`copy_all`] fails on a table it
//! does not know (the backup test catches it), so a backup is never silently incomplete.

use std::borrow::Borrow;

use redb::{
    Database, Durability, Key, MultimapTableHandle, ReadTransaction, ReadableTable,
    TableDefinition, TableHandle, Value,
};

use super::BackupError;
use crate::journal::schema;
use crate::projectors::{customers, hooks, registry};
use crate::sender::progress;

/// Rows per transaction in the destination: bounds the memory of a large copy.
const ROWS_PER_COMMIT: u64 = 10_000;

/// Copies every known table of `src` into `dst`; returns `(table, rows)` per copied table.
/// Fails if `src` holds a table not known here.
pub fn copy_all(src: &ReadTransaction, dst: &Database) -> Result<Vec<(String, u64)>, BackupError> {
    let mut copied = Vec::new();
    copy(src, dst, schema::JOURNAL, &mut copied)?;
    copy(src, dst, schema::EVENT_IDS, &mut copied)?;
    copy(src, dst, schema::EVENTS_BY_TYPE, &mut copied)?;
    copy(src, dst, schema::BLOBS, &mut copied)?;
    copy(src, dst, schema::CHECKPOINTS, &mut copied)?;
    copy(src, dst, registry::USERS, &mut copied)?;
    copy(src, dst, registry::KEYS, &mut copied)?;
    copy(src, dst, hooks::HOOKS, &mut copied)?;
    copy(src, dst, hooks::HOOK_USERS, &mut copied)?;
    copy(src, dst, hooks::HOOK_REPLAYS, &mut copied)?;
    copy(src, dst, hooks::HOOK_ENTRIES, &mut copied)?;
    copy(src, dst, progress::HOOK_PROGRESS, &mut copied)?;
    copy(src, dst, progress::HOOK_DELIVERIES, &mut copied)?;
    copy(src, dst, customers::CUSTOMERS, &mut copied)?;
    copy(src, dst, customers::BY_EMAIL, &mut copied)?;
    copy(src, dst, customers::BY_PHONE, &mut copied)?;
    copy(src, dst, customers::BY_EXTERNAL, &mut copied)?;
    for table in src.list_tables()? {
        if !copied.iter().any(|(name, _)| name == table.name()) {
            return Err(BackupError::UnknownTable(table.name().to_string()));
        }
    }
    if let Some(table) = src.list_multimap_tables()?.next() {
        return Err(BackupError::UnknownTable(table.name().to_string()));
    }
    Ok(copied)
}

/// Copies one table (absent in `src`: nothing to copy, not an error).
fn copy<K: Key + 'static, V: Value + 'static>(
    src: &ReadTransaction,
    dst: &Database,
    definition: TableDefinition<K, V>,
    copied: &mut Vec<(String, u64)>,
) -> Result<(), BackupError>
where
    for<'a> K::SelfType<'a>: Borrow<K::SelfType<'a>>,
    for<'a> V::SelfType<'a>: Borrow<V::SelfType<'a>>,
{
    let table = match src.open_table(definition) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let mut rows = table.iter()?;
    let mut total = 0u64;
    loop {
        let mut txn = dst.begin_write()?;
        txn.set_durability(Durability::None)?;
        let mut in_txn = 0u64;
        let mut exhausted = false;
        {
            let mut out = txn.open_table(definition)?;
            while in_txn < ROWS_PER_COMMIT {
                let Some(row) = rows.next() else {
                    exhausted = true;
                    break;
                };
                let (k, v) = row?;
                out.insert(k.value(), v.value())?;
                in_txn += 1;
            }
        }
        txn.commit()?;
        total += in_txn;
        if exhausted {
            break;
        }
    }
    copied.push((definition.name().to_string(), total));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::schema;
    use redb::{ReadableDatabase, ReadableTableMetadata};

    #[test]
    fn copies_every_row_across_commits_and_refuses_unknown_tables() {
        let dir = tempfile::tempdir().unwrap();
        let src = schema::open(dir.path(), 1 << 20).unwrap();
        let rows = ROWS_PER_COMMIT * 2 + 7;
        let txn = src.begin_write().unwrap();
        {
            let mut journal = txn.open_table(schema::JOURNAL).unwrap();
            for offset in 1..=rows {
                journal
                    .insert(offset, offset.to_le_bytes().as_slice())
                    .unwrap();
            }
            txn.open_table(progress::HOOK_DELIVERIES)
                .unwrap()
                .insert(("hook_1", 1), b"{}".as_slice())
                .unwrap();
        }
        txn.commit().unwrap();

        let dst = Database::create(dir.path().join("copy.redb")).unwrap();
        let copied = copy_all(&src.begin_read().unwrap(), &dst).unwrap();
        assert!(copied.contains(&("journal".to_string(), rows)));
        assert!(copied.contains(&("hook_deliveries".to_string(), 1)));
        let read = dst.begin_read().unwrap();
        let journal = read.open_table(schema::JOURNAL).unwrap();
        assert_eq!(journal.len().unwrap(), rows);
        assert_eq!(
            journal.get(rows).unwrap().unwrap().value(),
            rows.to_le_bytes().as_slice()
        );

        // A table this file does not list fails the backup instead of being left out.
        const STRAY: TableDefinition<u64, u64> = TableDefinition::new("someone_elses_table");
        let txn = src.begin_write().unwrap();
        txn.open_table(STRAY).unwrap().insert(1, 1).unwrap();
        txn.commit().unwrap();
        let dst2 = Database::create(dir.path().join("copy2.redb")).unwrap();
        match copy_all(&src.begin_read().unwrap(), &dst2) {
            Err(BackupError::UnknownTable(name)) => assert_eq!(name, "someone_elses_table"),
            other => panic!("expected UnknownTable, got {other:?}"),
        }
    }
}
