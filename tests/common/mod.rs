//! Test harness: starts the real `rev23-webhooks` binary on 127.0.0.1 with an ephemeral port and
//! a temp data dir, and talks to it over real HTTP. Every wait is bounded in time.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod receiver;

pub const BIN: &str = env!("CARGO_BIN_EXE_rev23-webhooks");
/// Longest a daemon may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Daemon {
    pub child: Option<Child>,
    pub base_url: String,
    pub data_dir: PathBuf,
    pub owner_key: String,
    /// Keeps the temp dir alive for the test's duration (None when the caller owns the dir).
    _temp: Option<tempfile::TempDir>,
    pub stdout_lines: mpsc::Receiver<String>,
}

/// A response: status, headers (lower-case names) and the body parsed as JSON (Null if empty
/// or not JSON; `text` keeps the raw body).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub json: Value,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `error.code` of an error body.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
}

/// Extra TOML appended to the test config (e.g. `[limits]\nrate_limit_per_minute = 5`).
pub fn start_with(extra_toml: &str) -> Daemon {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().to_path_buf();
    let mut d = start_in(&dir, extra_toml);
    d._temp = Some(temp);
    d
}

pub fn start() -> Daemon {
    start_with("")
}

/// The destination policy tests get unless they write their own `[policy]`: the receivers live
/// on 127.0.0.1, which SPEC §11 refuses unless allowed.
pub const LOOPBACK_POLICY: &str = "[policy]\nallow_private_networks = [\"127.0.0.0/8\"]\n";

/// Starts a daemon on an existing data dir (for restart tests); the caller keeps the dir alive.
/// Unless `extra_toml` has its own `[policy]` table, [`LOOPBACK_POLICY`] is added after it.
pub fn start_in(data_dir: &Path, extra_toml: &str) -> Daemon {
    start_in_env(data_dir, extra_toml, &[])
}

/// [`start_in`] with extra environment variables for the daemon (e.g. `NOTIFY_SOCKET`).
pub fn start_in_env(data_dir: &Path, extra_toml: &str, env: &[(&str, &str)]) -> Daemon {
    let config_path = data_dir.join("test-config.toml");
    let policy = if extra_toml.contains("[policy]") {
        ""
    } else {
        LOOPBACK_POLICY
    };
    let config = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\ntenant = \"teststudio\"\n{extra_toml}\n{policy}",
        data_dir.join("data").display().to_string()
    );
    std::fs::write(&config_path, config).expect("write config");
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .env(
            "RUST_LOG",
            std::env::var("TEST_DAEMON_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn daemon");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + START_TIMEOUT;
    let base_url = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "daemon did not start within {START_TIMEOUT:?}"
        );
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(url) = line.strip_prefix("rev23-webhooks listening on ") {
                    break url.trim().to_string();
                }
            }
            Err(_) => panic!("daemon exited or did not print its address in time"),
        }
    };
    let data = data_dir.join("data");
    let owner_key = std::fs::read_to_string(data.join("owner.key"))
        .expect("owner.key")
        .trim()
        .to_string();
    Daemon {
        child: Some(child),
        base_url,
        data_dir: data,
        owner_key,
        _temp: None,
        stdout_lines: rx,
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .max_idle_connections_per_host(64)
        .build()
        .into()
}

impl Daemon {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// `method path` with `key` (X-Api-Key) and an optional JSON body.
    pub fn call(&self, method: &str, path: &str, key: Option<&str>, body: Option<&Value>) -> Reply {
        let headers: Vec<(&str, &str)> = key.map(|k| vec![("x-api-key", k)]).unwrap_or_default();
        let body_text = body.map(|b| b.to_string());
        self.raw(method, path, &headers, body_text.as_deref())
    }

    /// Full control: explicit headers, raw body text (content-type JSON added when a body is sent
    /// and no content-type header is given).
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Reply {
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path));
        let has_ct = headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
        for (n, v) in headers {
            builder = builder.header(*n, *v);
        }
        if body.is_some() && !has_ct {
            builder = builder.header("content-type", "application/json");
        }
        let request = builder
            .body(body.unwrap_or("").to_string())
            .expect("request");
        let mut response = agent().run(request).expect("HTTP request to the daemon");
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            json,
            text,
        }
    }

    pub fn owner(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        self.call(method, path, Some(&self.owner_key), body)
    }

    /// Creates a user with `permissions` and a key for it; returns (user id, key secret).
    pub fn user_with_key(&self, name: &str, permissions: &[&str]) -> (String, String) {
        let r = self.owner(
            "POST",
            "/v1/users",
            Some(&serde_json::json!({"name": name, "permissions": permissions})),
        );
        assert_eq!(r.status, 201, "create user: {}", r.text);
        let id = r.json["id"].as_str().unwrap().to_string();
        let r = self.owner(
            "POST",
            &format!("/v1/users/{id}/keys"),
            Some(&serde_json::json!({"name": "test"})),
        );
        assert_eq!(r.status, 201, "create key: {}", r.text);
        (id, r.json["key"].as_str().unwrap().to_string())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGTERM and wait (bounded); returns the exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        wait_bounded(&mut child, Duration::from_secs(15))
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("daemon did not exit within {timeout:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `f` every 20 ms until it returns Some, at most `timeout`.
pub fn wait_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a command with a time bound (killed and a panic past it); returns (success, stdout,
/// stderr), or None if it cannot be started at all.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Option<(bool, String, String)> {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    // Read both pipes while waiting, so a chatty child never blocks on a full pipe.
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Some((
        status.success(),
        out_t.join().unwrap_or_default(),
        err_t.join().unwrap_or_default(),
    ))
}

/// `rev23-webhooks rebuild-projections --data-dir <data_dir>` on a stopped daemon's data dir;
/// panics with its output if it fails.
pub fn rebuild_projections(data_dir: &Path) {
    let (ok, out, err) = run_bounded(
        Command::new(BIN)
            .arg("rebuild-projections")
            .arg("--data-dir")
            .arg(data_dir),
        Duration::from_secs(120),
    )
    .expect("run rebuild-projections");
    assert!(ok, "rebuild-projections failed: {out}{err}");
}
