//! Writing a backup file from the live database: one read transaction (so the copy is one
//! consistent point of the journal, whatever the writer does meanwhile), every table into a
//! new redb file beside it, the key files, then the meta row; written as `*.partial` and renamed
//! when complete, so a half-written backup is never mistaken for one.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::journal::Db;
use redb::{Database, Durability, ReadableTable};
use sha2::{Digest, Sha256};

use super::{tables, BackupError, CARRIED_FILES, FILES, FORMAT, MAX_CARRIED_FILE_BYTES, META};
use crate::clock;
use crate::journal::schema::JOURNAL;

/// What was written.
#[derive(Debug, Clone)]
pub struct SnapshotInfo {
    pub path: PathBuf,
    pub size_bytes: u64,
    pub sha256_hex: String,
    pub journal_head: u64,
    pub created_at_ms: i64,
    /// Key files carried (see the module docs of [`super`]).
    pub files: Vec<String>,
}

/// Writes a backup of `db` (whose data dir is `data_dir`) to `out`, which must not exist.
/// `cache_size_bytes` bounds the new file's page cache.
pub fn write(
    db: &Db,
    data_dir: &Path,
    out: &Path,
    cache_size_bytes: usize,
) -> Result<SnapshotInfo, BackupError> {
    let partial = out.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let result = write_partial(db, data_dir, &partial, cache_size_bytes);
    let (journal_head, created_at_ms, files) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, out).map_err(|e| BackupError::io(out, e))?;
    if let Some(dir) = out.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| BackupError::io(dir, e))?;
    }
    let (size_bytes, sha256_hex) = digest(out)?;
    Ok(SnapshotInfo {
        path: out.to_path_buf(),
        size_bytes,
        sha256_hex,
        journal_head,
        created_at_ms,
        files,
    })
}

fn write_partial(
    db: &Db,
    data_dir: &Path,
    partial: &Path,
    cache_size_bytes: usize,
) -> Result<(u64, i64, Vec<String>), BackupError> {
    let dst = Database::builder()
        .set_cache_size(cache_size_bytes)
        .create(partial)?;
    let src = db.begin_read()?;
    let journal_head = src
        .open_table(JOURNAL)?
        .last()?
        .map(|(k, _)| k.value())
        .unwrap_or(0);
    let copied = tables::copy_all(&src, &dst)?;
    drop(src);
    let mut carried = Vec::new();
    for name in CARRIED_FILES {
        let path = data_dir.join(name);
        match std::fs::metadata(&path) {
            Ok(m) if m.len() > MAX_CARRIED_FILE_BYTES => {
                return Err(BackupError::Storage(format!(
                    "{} is larger than {MAX_CARRIED_FILE_BYTES} bytes",
                    path.display()
                )))
            }
            Ok(_) => {
                let bytes = std::fs::read(&path).map_err(|e| BackupError::io(&path, e))?;
                carried.push((name.to_string(), bytes));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(BackupError::io(&path, e)),
        }
    }
    let created_at_ms = clock::now_ms();
    let mut txn = dst.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    {
        let mut files = txn.open_table(FILES)?;
        for (name, bytes) in &carried {
            files.insert(name.as_str(), bytes.as_slice())?;
        }
        let mut meta = txn.open_table(META)?;
        let rows = serde_json::to_vec(&copied).expect("table counts serialise");
        meta.insert("format", FORMAT.as_bytes())?;
        meta.insert("journal_head", journal_head.to_string().as_bytes())?;
        meta.insert("created_at_ms", created_at_ms.to_string().as_bytes())?;
        meta.insert("table_rows", rows.as_slice())?;
    }
    txn.commit()?;
    Ok((
        journal_head,
        created_at_ms,
        carried.into_iter().map(|(n, _)| n).collect(),
    ))
}

/// Size and SHA-256 (hex) of a file, read in bounded chunks.
pub fn digest(path: &Path) -> Result<(u64, String), BackupError> {
    let mut file = std::fs::File::open(path).map_err(|e| BackupError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| BackupError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((size, hex))
}
