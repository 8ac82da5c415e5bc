//! `rev23-webhooks backup --to FILE` asks a running daemon for a consistent snapshot
//! (`POST /v1/backups`), fetches it in chunks, checks its size and SHA-256, and writes FILE
//! (mode 0600: it holds hook secrets and the daemon's keys). `restore --from FILE --data-dir DIR`
//! fills an empty data dir from it, offline. See [`crate::backup`] for what a backup holds.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde_json::Value;

use super::client::DaemonArgs;
use crate::backup::{restore, snapshot};

/// How long the daemon may take to write the snapshot (about the time to copy the database).
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(3600);
/// Chunks fetched at most (8 MiB each: 8 TiB), so a misbehaving daemon cannot loop us forever.
const MAX_CHUNKS: u64 = 1 << 20;

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// The backup file to write (must not exist).
    #[arg(long)]
    pub to: PathBuf,
    #[command(flatten)]
    pub daemon: DaemonArgs,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// A file written by `rev23-webhooks backup`.
    #[arg(long)]
    pub from: PathBuf,
    /// The data dir to fill: missing or empty. Start the daemon on it afterwards.
    #[arg(long)]
    pub data_dir: PathBuf,
}

pub fn backup(args: BackupArgs) -> Result<(), String> {
    if args.to.exists() {
        return Err(format!(
            "{} exists; refusing to overwrite it",
            args.to.display()
        ));
    }
    let (status, bytes) =
        args.daemon
            .request_within("POST", "/v1/backups", None, SNAPSHOT_TIMEOUT)?;
    let text = String::from_utf8_lossy(&bytes);
    if status != 201 {
        return Err(format!("the daemon answered {status}: {text}"));
    }
    let info: Value =
        serde_json::from_str(&text).map_err(|e| format!("unexpected answer {text}: {e}"))?;
    let id = info["id"]
        .as_str()
        .ok_or("the answer has no id")?
        .to_string();
    let fetched = fetch(&args, &id, &info);
    // The daemon's copy is no longer needed either way.
    match args
        .daemon
        .request("DELETE", &format!("/v1/backups/{id}"), None)
    {
        Ok((204, _)) => {}
        Ok((status, text)) => eprintln!("warning: deleting {id} on the daemon: {status} {text}"),
        Err(e) => eprintln!("warning: deleting {id} on the daemon: {e}"),
    }
    fetched?;
    println!(
        "backup {id} written to {}: {} bytes, journal head {}, sha256 {}, key files {}",
        args.to.display(),
        info["size_bytes"],
        info["journal_head"],
        info["sha256"].as_str().unwrap_or(""),
        info["files"]
    );
    Ok(())
}

/// Downloads backup `id` into `<to>.partial`, checks it, renames it to `to`.
fn fetch(args: &BackupArgs, id: &str, info: &Value) -> Result<(), String> {
    let size = info["size_bytes"].as_u64().ok_or("no size_bytes")?;
    let sha256 = info["sha256"].as_str().ok_or("no sha256")?;
    let partial = args.to.with_extension("partial");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| format!("{}: {e}", partial.display()))?;
    let result = (|| {
        let mut offset = 0u64;
        for _ in 0..MAX_CHUNKS {
            if offset >= size {
                break;
            }
            let (status, bytes) = args.daemon.request_bytes(
                "GET",
                &format!("/v1/backups/{id}?offset={offset}"),
                None,
            )?;
            if status != 200 {
                return Err(format!(
                    "the daemon answered {status}: {}",
                    String::from_utf8_lossy(&bytes)
                ));
            }
            if bytes.is_empty() {
                return Err(format!("empty chunk at offset {offset} of {size}"));
            }
            file.write_all(&bytes)
                .map_err(|e| format!("{}: {e}", partial.display()))?;
            offset += bytes.len() as u64;
        }
        file.sync_all()
            .map_err(|e| format!("{}: {e}", partial.display()))?;
        check(&partial, size, sha256)?;
        std::fs::rename(&partial, &args.to).map_err(|e| format!("{}: {e}", args.to.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

fn check(path: &Path, size: u64, sha256: &str) -> Result<(), String> {
    let (got_size, got_sha) = snapshot::digest(path).map_err(|e| e.to_string())?;
    if got_size != size || got_sha != sha256 {
        return Err(format!(
            "the download does not match the backup: {got_size} bytes sha256 {got_sha}, \
             expected {size} bytes sha256 {sha256}"
        ));
    }
    Ok(())
}

pub fn restore(args: RestoreArgs) -> Result<(), String> {
    let restored = restore::restore(&args.from, &args.data_dir).map_err(|e| e.to_string())?;
    println!(
        "restored {} into {}: journal head {}, backed up at {}, key files {:?}; start the daemon \
         with --data-dir {}",
        args.from.display(),
        args.data_dir.display(),
        restored.journal_head,
        crate::clock::format_ms(restored.created_at_ms),
        restored.files,
        args.data_dir.display()
    );
    Ok(())
}
