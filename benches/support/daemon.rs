//! The daemon process: the real binary, `serve --config FILE`, on 127.0.0.1 with a temp data dir.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::http::ApiTarget;

pub const BIN: &str = env!("CARGO_BIN_EXE_rev23-webhooks");

/// Longest the daemon may take to print its listening line.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest the daemon may take to exit after SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// What a bench changes in the daemon's configuration (everything else is the default, with
/// `listen = "127.0.0.1:0"`, log level warn and `ingest_rate_limit_per_minute` raised).
#[derive(Clone, Copy, Default)]
pub struct DaemonOptions {
    /// Raises `[limits] rate_limit_per_minute` too, so the API never answers 429.
    pub raise_api_rate_limit: bool,
    /// `[policy] allow_private_networks = ["127.0.0.0/8"]`, so hooks may deliver to loopback.
    pub allow_loopback_hooks: bool,
}

impl DaemonOptions {
    /// For benches that deliver to a local receiver: both of the above.
    pub fn delivering() -> DaemonOptions {
        DaemonOptions {
            raise_api_rate_limit: true,
            allow_loopback_hooks: true,
        }
    }

    fn config(&self, data_dir: &Path) -> String {
        let mut config = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n\n[limits]\n",
            data_dir.display().to_string()
        );
        if self.raise_api_rate_limit {
            config.push_str("rate_limit_per_minute = 1000000000\n");
        }
        config.push_str("ingest_rate_limit_per_minute = 1000000000\n\n[log]\nlevel = \"warn\"\n");
        if self.allow_loopback_hooks {
            config.push_str("\n[policy]\nallow_private_networks = [\"127.0.0.0/8\"]\n");
        }
        config
    }
}

pub struct Daemon {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub owner_key: String,
}

impl Daemon {
    /// Starts the daemon with its config and data dir under `root` (created if missing); panics
    /// if it does not come up.
    pub fn start(root: &Path, options: DaemonOptions) -> Daemon {
        std::fs::create_dir_all(root).expect("daemon root dir");
        let data_dir = root.join("daemon-data");
        let config_path = root.join("bench-config.toml");
        std::fs::write(&config_path, options.config(&data_dir)).expect("write bench config");
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the daemon");
        let stdout = child.stdout.take().expect("daemon stdout");
        let (tx, rx) = mpsc::channel();
        // Keeps draining stdout so the daemon never blocks on a full pipe. The owner key line
        // is not echoed (it holds a secret).
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("rev23-webhooks listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let mut daemon = Daemon {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.clone(),
            owner_key: String::new(),
        };
        let url = rx
            .recv_timeout(START_TIMEOUT)
            .expect("the daemon did not print its listening line in time (or exited)");
        let addr: SocketAddr = url
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected listening address {url:?}"));
        assert!(
            addr.ip().is_loopback(),
            "the daemon must listen on 127.0.0.1, got {addr}"
        );
        daemon.addr = SocketAddr::from(([127, 0, 0, 1], addr.port()));
        daemon.owner_key = std::fs::read_to_string(data_dir.join("owner.key"))
            .expect("read owner.key")
            .trim()
            .to_string();
        daemon
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Its API address with the owner key.
    pub fn api(&self) -> ApiTarget {
        ApiTarget::new(self.addr, self.owner_key.clone())
    }

    /// SIGTERM, then waits (bounded); kills it if it does not exit in time.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: plain kill(2) on the child we spawned and have not reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.code(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    eprintln!("daemon did not exit within {STOP_TIMEOUT:?} of SIGTERM; killing it");
                    let _ = child.kill();
                    let _ = child.wait();
                    return None;
                }
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
