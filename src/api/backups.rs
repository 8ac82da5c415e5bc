//! `/v1/backups` (SPEC §13, owners and `admin:webhook`): `POST` writes a consistent snapshot of
//! the live database into `<data-dir>/backups/` and describes it (size, SHA-256, journal head);
//! `GET /v1/backups/{id}?offset=N` returns the next chunk of it (responses are built whole in
//! memory, so the file is fetched in chunks of at most 8 MiB, not in one body); `DELETE` removes
//! it. The CLI's `backup --to FILE` does all three. At most two backups are held, each for an
//! hour at most, and one is written at a time.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{HeaderMap, StatusCode};
use serde_json::json;

use super::auth::{authenticate, Access};
use super::error::ApiError;
use super::request::Query;
use super::response::{json_response, no_content, Response};
use super::AppState;
use crate::backup::snapshot::{self, SnapshotInfo};
use crate::backup::BackupError;
use crate::{clock, ids};

/// Under the data dir: where snapshots wait to be fetched.
pub const BACKUP_DIR: &str = "backups";
const BACKUP_PREFIX: &str = "bak_";
/// Backups held at once at most (each is as large as the database).
const MAX_HELD: usize = 2;
/// A backup not deleted is removed this long after it was written.
const TTL_MS: i64 = 3_600_000;
/// Bytes per `GET` at most.
pub const MAX_CHUNK_BYTES: u64 = 8 * 1024 * 1024;

/// The backups this daemon holds.
#[derive(Default)]
pub struct Backups {
    held: Mutex<BTreeMap<String, Held>>,
    /// One snapshot is written at a time; the writing task holds it (even if the client left).
    writing: Arc<tokio::sync::Mutex<()>>,
}

struct Held {
    info: SnapshotInfo,
    expires_at_ms: i64,
}

fn view(id: &str, held: &Held) -> serde_json::Value {
    json!({
        "id": id,
        "size_bytes": held.info.size_bytes,
        "sha256": held.info.sha256_hex,
        "journal_head": held.info.journal_head,
        "files": held.info.files,
        "created_at": clock::format_ms(held.info.created_at_ms),
        "expires_at": clock::format_ms(held.expires_at_ms),
        "max_chunk_bytes": MAX_CHUNK_BYTES,
    })
}

/// `POST /v1/backups`.
pub async fn create(state: &Arc<AppState>, headers: &HeaderMap) -> Result<Response, ApiError> {
    authenticate(state, headers)?.require_admin()?;
    let Ok(writing) = state.backups.writing.clone().try_lock_owned() else {
        return Err(ApiError::conflict(
            "a backup is being written; try again when it is done",
        ));
    };
    let dir = state.config.data_dir.join(BACKUP_DIR);
    {
        let mut held = state.backups.held.lock().expect("backups lock");
        forget_expired(&mut held);
        if held.len() >= MAX_HELD {
            return Err(ApiError::conflict(format!(
                "{MAX_HELD} backups are held already: DELETE /v1/backups/{{id}} one, or wait \
                 for it to expire"
            )));
        }
        // Files no held backup names are leftovers of an earlier run or a failed write.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| ApiError::internal(format!("backup dir: {e}")))?;
        remove_strays(&dir, &held);
    }
    let id = ids::new_id(BACKUP_PREFIX);
    let out = dir.join(format!("{id}.redb"));
    let (db, data_dir, cache) = (
        state.db.clone(),
        state.config.data_dir.clone(),
        state.config.storage.cache_size_bytes,
    );
    let info = tokio::task::spawn_blocking(move || {
        let _writing = writing;
        snapshot::write(&db, &data_dir, &out, cache)
    })
    .await
    .map_err(|e| ApiError::internal(format!("backup task: {e}")))?
    .map_err(|e| backup_failed(&e))?;
    tracing::info!(backup = %id, size_bytes = info.size_bytes, journal_head = info.journal_head, "backup written");
    let held = Held {
        expires_at_ms: info.created_at_ms + TTL_MS,
        info,
    };
    let body = view(&id, &held);
    state
        .backups
        .held
        .lock()
        .expect("backups lock")
        .insert(id, held);
    Ok(json_response(StatusCode::CREATED, &body))
}

/// `GET /v1/backups/{id}?offset=N[&length=M]`: bytes `offset..offset+length` of the file.
pub async fn chunk(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    query: Option<&str>,
    id: &str,
) -> Result<Response, ApiError> {
    authenticate(state, headers)?.require_admin()?;
    let query = Query::parse(query);
    let offset = query.u64("offset")?.unwrap_or(0);
    let length = query.u64("length")?.unwrap_or(MAX_CHUNK_BYTES);
    if length == 0 || length > MAX_CHUNK_BYTES {
        return Err(ApiError::validation(format!(
            "length must be 1..={MAX_CHUNK_BYTES}"
        )));
    }
    let (path, size) = {
        let mut held = state.backups.held.lock().expect("backups lock");
        forget_expired(&mut held);
        let h = held
            .get(id)
            .ok_or_else(|| ApiError::not_found("no such backup (expired or deleted?)"))?;
        (h.info.path.clone(), h.info.size_bytes)
    };
    if offset > size {
        return Err(ApiError::validation(format!(
            "offset {offset} is beyond the backup's {size} bytes"
        )));
    }
    let take = length.min(size - offset);
    let bytes = tokio::task::spawn_blocking(move || read_range(&path, offset, take))
        .await
        .map_err(|e| ApiError::internal(format!("backup read task: {e}")))?
        .map_err(|e| ApiError::internal(format!("reading the backup: {e}")))?;
    let mut response = hyper::Response::new(Full::new(Bytes::from(bytes)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
        .headers_mut()
        .insert("rev23-backup-size", HeaderValue::from(size));
    Ok(response)
}

/// `DELETE /v1/backups/{id}`.
pub fn delete(state: &AppState, headers: &HeaderMap, id: &str) -> Result<Response, ApiError> {
    authenticate(state, headers)?.require_admin()?;
    let removed = state
        .backups
        .held
        .lock()
        .expect("backups lock")
        .remove(id)
        .ok_or_else(|| ApiError::not_found("no such backup (expired or deleted?)"))?;
    let _ = std::fs::remove_file(&removed.info.path);
    Ok(no_content())
}

fn backup_failed(e: &BackupError) -> ApiError {
    tracing::error!(error = %e, "backup failed");
    match e {
        BackupError::UnknownTable(_) => ApiError::internal(e.to_string()),
        _ => ApiError::unavailable(format!("the backup could not be written: {e}"), 60),
    }
}

fn forget_expired(held: &mut BTreeMap<String, Held>) {
    let now = clock::now_ms();
    held.retain(|_, h| {
        let keep = h.expires_at_ms > now;
        if !keep {
            let _ = std::fs::remove_file(&h.info.path);
        }
        keep
    });
}

fn remove_strays(dir: &std::path::Path, held: &BTreeMap<String, Held>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let keep: Vec<&PathBuf> = held.values().map(|h| &h.info.path).collect();
    for entry in entries.flatten().take(1000) {
        let path = entry.path();
        if !keep.contains(&&path) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

fn read_range(path: &std::path::Path, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut out = Vec::with_capacity(len as usize);
    file.take(len).read_to_end(&mut out)?;
    if out.len() as u64 != len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the backup file is shorter than recorded",
        ));
    }
    Ok(out)
}
