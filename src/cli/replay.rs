//! `rev23-webhooks replay --hook ID --from-offset N [--to-offset M] [--dry-run]`: asks a running
//! daemon to replay a journal range into a hook, and prints the answer (the replay id and how
//! many events matched). `--watch` follows the replay's progress until it is done.

use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;

use super::client::DaemonArgs;

/// `--watch` gives up after this long.
const WATCH_TIMEOUT: Duration = Duration::from_secs(3600);

#[derive(Args, Debug)]
pub struct ReplayArgs {
    #[arg(long)]
    pub hook: String,
    #[arg(long)]
    pub from_offset: u64,
    #[arg(long)]
    pub to_offset: Option<u64>,
    /// Only count what would be replayed.
    #[arg(long)]
    pub dry_run: bool,
    /// Poll the replay's progress until it is done.
    #[arg(long)]
    pub watch: bool,
    #[command(flatten)]
    pub daemon: DaemonArgs,
}

pub fn run(args: ReplayArgs) -> Result<(), String> {
    let mut body = json!({"from_offset": args.from_offset, "dry_run": args.dry_run});
    if let Some(to) = args.to_offset {
        body["to_offset"] = json!(to);
    }
    let (status, text) = args.daemon.request(
        "POST",
        &format!("/v1/hooks/{}/replay", args.hook),
        Some(&body),
    )?;
    if !(200..300).contains(&status) {
        return Err(format!("the daemon answered {status}: {text}"));
    }
    println!("{text}");
    if !args.watch || args.dry_run {
        return Ok(());
    }
    let replay_id = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["replay_id"].as_str().map(str::to_string))
        .ok_or("the answer has no replay_id")?;
    let deadline = Instant::now() + WATCH_TIMEOUT;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        let (status, text) = args.daemon.request(
            "GET",
            &format!("/v1/hooks/{}/replays/{replay_id}", args.hook),
            None,
        )?;
        println!("{text}");
        if status != 200 {
            return Err(format!("the daemon answered {status}"));
        }
        if text.contains("\"status\":\"done\"") {
            return Ok(());
        }
    }
    Err("the replay did not finish within the watch timeout".into())
}
