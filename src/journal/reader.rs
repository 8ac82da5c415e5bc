//! Reading the journal: any thread may open a redb read transaction, concurrently with the
//! writer, so reads never queue behind writes.

use super::db::Db;
use redb::ReadableTable;

use super::codec::{self, Envelope};
use super::schema::{BLOBS, CHECKPOINTS, EVENTS_BY_TYPE, EVENT_IDS, JOURNAL};
use super::JournalError;

/// The highest committed offset (0 for an empty journal).
pub fn head(db: &Db) -> Result<u64, JournalError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(JOURNAL)?;
    let head = table.last()?.map(|(k, _)| k.value()).unwrap_or(0);
    Ok(head)
}

/// Up to `max_entries` entries with offset ≥ `from`, ascending, decoded.
pub fn read_from(db: &Db, from: u64, max_entries: usize) -> Result<Vec<Envelope>, JournalError> {
    let mut out = Vec::new();
    scan_from(db, from, max_entries, |e| {
        out.push(e);
        true
    })?;
    Ok(out)
}

/// Visits entries from `from` ascending, at most `max_entries`, until `visit` returns false.
/// Returns the number of entries visited.
pub fn scan_from(
    db: &Db,
    from: u64,
    max_entries: usize,
    mut visit: impl FnMut(Envelope) -> bool,
) -> Result<usize, JournalError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(JOURNAL)?;
    let mut visited = 0;
    for item in table.range(from.max(1)..)? {
        if visited >= max_entries {
            break;
        }
        let (key, value) = item?;
        let envelope = codec::decode(value.value())?;
        debug_assert_eq!(envelope.offset, key.value(), "entry offset matches its key");
        visited += 1;
        if !visit(envelope) {
            break;
        }
    }
    Ok(visited)
}

pub fn get_by_offset(db: &Db, offset: u64) -> Result<Option<Envelope>, JournalError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(JOURNAL)?;
    let entry = match table.get(offset)? {
        Some(v) => Some(codec::decode(v.value())?),
        None => None,
    };
    Ok(entry)
}

/// The entries at `offsets`, in the same order, read in one transaction; a missing offset is
/// corruption (callers pass offsets the journal handed out).
pub fn get_many(db: &Db, offsets: &[u64]) -> Result<Vec<Envelope>, JournalError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(JOURNAL)?;
    let mut out = Vec::with_capacity(offsets.len());
    for &offset in offsets {
        let entry = match table.get(offset)? {
            Some(v) => codec::decode(v.value())?,
            None => {
                return Err(JournalError::Corrupt(format!(
                    "missing journal offset {offset}"
                )))
            }
        };
        out.push(entry);
    }
    Ok(out)
}

pub fn get_by_id(db: &Db, id: &str) -> Result<Option<Envelope>, JournalError> {
    let txn = db.begin_read()?;
    let ids = txn.open_table(EVENT_IDS)?;
    let Some(offset) = ids.get(id)?.map(|v| v.value()) else {
        return Ok(None);
    };
    let table = txn.open_table(JOURNAL)?;
    let entry = match table.get(offset)? {
        Some(v) => codec::decode(v.value())?,
        None => {
            return Err(JournalError::Corrupt(format!(
                "event id {id} points at missing offset {offset}"
            )))
        }
    };
    Ok(Some(entry))
}

/// A projector's committed checkpoint (0 if it never ran or was wiped).
pub fn checkpoint(db: &Db, name: &str) -> Result<u64, JournalError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(CHECKPOINTS)?;
    let checkpoint = table.get(name)?.map(|v| v.value()).unwrap_or(0);
    Ok(checkpoint)
}

/// The newest indexed entries (public, or see [`internal::is_indexed`](crate::domain::internal::is_indexed)) of `kind` that `keep` accepts, newest first: at most `max` kept,
/// at most `max_scan` examined.
pub fn newest_of_type(
    db: &Db,
    kind: &str,
    max: usize,
    max_scan: usize,
    mut keep: impl FnMut(&Envelope) -> bool,
) -> Result<Vec<Envelope>, JournalError> {
    let txn = db.begin_read()?;
    let index = txn.open_table(EVENTS_BY_TYPE)?;
    let journal = txn.open_table(JOURNAL)?;
    let mut out = Vec::new();
    for (scanned, item) in index.range((kind, 0)..=(kind, u64::MAX))?.rev().enumerate() {
        if out.len() >= max || scanned >= max_scan {
            break;
        }
        let (key, _) = item?;
        let offset = key.value().1;
        let entry = match journal.get(offset)? {
            Some(v) => codec::decode(v.value())?,
            None => {
                return Err(JournalError::Corrupt(format!(
                    "type index names missing offset {offset}"
                )))
            }
        };
        if keep(&entry) {
            out.push(entry);
        }
    }
    Ok(out)
}

/// The first offset appended at or after `time_ms` (head + 1 if none): append times ascend with
/// offsets, so this is a binary search of about log2(head) reads.
pub fn first_offset_at_or_after(db: &Db, time_ms: i64) -> Result<u64, JournalError> {
    let txn = db.begin_read()?;
    let journal = txn.open_table(JOURNAL)?;
    let head = journal.last()?.map(|(k, _)| k.value()).unwrap_or(0);
    let (mut lo, mut hi) = (1u64, head + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let appended = match journal.get(mid)? {
            Some(v) => codec::decode(v.value())?.appended_at_ms,
            None => return Err(JournalError::Corrupt(format!("journal gap at {mid}"))),
        };
        if appended < time_ms {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// A stored file's bytes by SHA-256 hex.
pub fn blob(db: &Db, sha256_hex: &str) -> Result<Option<Vec<u8>>, JournalError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(BLOBS)?;
    let bytes = table.get(sha256_hex)?.map(|v| v.value().to_vec());
    Ok(bytes)
}
