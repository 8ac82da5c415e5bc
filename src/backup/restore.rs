//! Filling an empty data dir from a backup file (offline: no daemon runs on that dir). The file
//! is copied in as `journal.redb.partial`, checked (its format), stripped of the backup's own
//! tables, its key files written back (0600), and only then renamed to `journal.redb` — so a
//! restore that stopped halfway leaves no database a daemon would start on.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableDatabase, ReadableTable};

use super::{BackupError, CARRIED_FILES, FILES, FORMAT, MAX_CARRIED_FILE_BYTES, META};
use crate::journal::schema::DB_FILE_NAME;

/// What a restore put in place.
#[derive(Debug, Clone)]
pub struct Restored {
    pub journal_head: u64,
    pub created_at_ms: i64,
    pub files: Vec<String>,
}

/// Restores `from` into `data_dir`, which must be missing or empty.
pub fn restore(from: &Path, data_dir: &Path) -> Result<Restored, BackupError> {
    if !from.is_file() {
        return Err(BackupError::Refused(format!(
            "{} is not a file",
            from.display()
        )));
    }
    match std::fs::read_dir(data_dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BackupError::Refused(format!(
                    "{} is not empty (restore only fills an empty or new data dir)",
                    data_dir.display()
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(data_dir)
                .map_err(|e| BackupError::io(data_dir, e))?;
        }
        Err(e) => return Err(BackupError::io(data_dir, e)),
    }
    let mut written: Vec<PathBuf> = Vec::new();
    let result = restore_into(from, data_dir, &mut written);
    if result.is_err() {
        for path in written {
            let _ = std::fs::remove_file(path);
        }
    }
    result
}

fn restore_into(
    from: &Path,
    data_dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<Restored, BackupError> {
    let partial = data_dir.join(format!("{DB_FILE_NAME}.partial"));
    written.push(partial.clone());
    std::fs::copy(from, &partial).map_err(|e| BackupError::io(&partial, e))?;
    let (journal_head, created_at_ms, files) = {
        let db = Database::open(&partial)
            .map_err(|e| BackupError::NotABackup(format!("{}: {e}", from.display())))?;
        let (meta, files) = read_backup_tables(&db, from)?;
        let format = meta_text(&meta, "format")?;
        if format != FORMAT {
            return Err(BackupError::NotABackup(format!(
                "format {format:?}; this build reads {FORMAT:?}"
            )));
        }
        let journal_head = meta_text(&meta, "journal_head")?
            .parse()
            .map_err(|_| BackupError::NotABackup("journal_head is not a number".into()))?;
        let created_at_ms = meta_text(&meta, "created_at_ms")?
            .parse()
            .map_err(|_| BackupError::NotABackup("created_at_ms is not a number".into()))?;
        // The daemon's database has no backup tables.
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.delete_table(META)?;
        txn.delete_table(FILES)?;
        txn.commit()?;
        (journal_head, created_at_ms, files)
    };
    let mut names = Vec::new();
    for (name, bytes) in &files {
        let path = data_dir.join(name);
        written.push(path.clone());
        write_secret_file(&path, bytes).map_err(|e| BackupError::io(&path, e))?;
        names.push(name.clone());
    }
    let db_path = data_dir.join(DB_FILE_NAME);
    std::fs::rename(&partial, &db_path).map_err(|e| BackupError::io(&db_path, e))?;
    written.push(db_path);
    std::fs::File::open(data_dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| BackupError::io(data_dir, e))?;
    Ok(Restored {
        journal_head,
        created_at_ms,
        files: names,
    })
}

type Rows = Vec<(String, Vec<u8>)>;

/// The backup's meta rows and carried files; only known file names, each within the limit.
fn read_backup_tables(db: &Database, from: &Path) -> Result<(Rows, Rows), BackupError> {
    let txn = db.begin_read()?;
    let not_backup =
        |what: &str| BackupError::NotABackup(format!("{}: no {what} table", from.display()));
    let meta = txn
        .open_table(META)
        .map_err(|_| not_backup("backup_meta"))?;
    let files = txn
        .open_table(FILES)
        .map_err(|_| not_backup("backup_files"))?;
    let mut meta_rows = Vec::new();
    for row in meta.iter()? {
        let (k, v) = row?;
        meta_rows.push((k.value().to_string(), v.value().to_vec()));
    }
    let mut file_rows = Vec::new();
    for row in files.iter()? {
        let (k, v) = row?;
        let name = k.value();
        if !CARRIED_FILES.contains(&name) {
            return Err(BackupError::NotABackup(format!(
                "unexpected carried file {name:?}"
            )));
        }
        if v.value().len() as u64 > MAX_CARRIED_FILE_BYTES {
            return Err(BackupError::NotABackup(format!("{name} is too large")));
        }
        file_rows.push((name.to_string(), v.value().to_vec()));
    }
    Ok((meta_rows, file_rows))
}

fn meta_text<'a>(meta: &'a Rows, key: &str) -> Result<&'a str, BackupError> {
    let (_, bytes) = meta
        .iter()
        .find(|(k, _)| k == key)
        .ok_or_else(|| BackupError::NotABackup(format!("no {key} in backup_meta")))?;
    std::str::from_utf8(bytes).map_err(|_| BackupError::NotABackup(format!("{key} is not text")))
}

/// Mode 0600, fsynced; the name must not exist yet (the dir was empty).
fn write_secret_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
