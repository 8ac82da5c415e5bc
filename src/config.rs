//! The daemon's configuration: a TOML file (`--config`), every key optional with the default
//! documented here and in the README, and CLI flags (`--listen`, `--data-dir`) on top.
//! Unknown keys are an error, so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port (the chosen address is printed).
    pub listen: String,
    pub data_dir: PathBuf,
    /// When a request sends `X-Tenant-Name`, it must equal this (unset: any such header is refused).
    pub tenant: Option<String>,
    pub public_base_url: String,
    pub limits: Limits,
    pub storage: Storage,
    pub log: Log,
    pub delivery: Delivery,
    pub policy: Policy,
    pub loops: Loops,
    pub files: Files,
    pub ifttt: Ifttt,
    pub retention: Retention,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_body_bytes: usize,
    /// Body limit for `POST /v1/events` carrying a release-form file.
    pub max_file_body_bytes: usize,
    pub max_batch_events: usize,
    /// Requests per minute per key.
    pub rate_limit_per_minute: u32,
    /// Requests per minute per key holding `ingest:event`.
    pub ingest_rate_limit_per_minute: u32,
    pub header_read_timeout_ms: u64,
    pub body_read_timeout_ms: u64,
    /// Open connections at most; further ones wait in the kernel's accept queue.
    pub max_connections: usize,
    pub max_hooks: usize,
    pub max_events_per_hook: usize,
    pub max_target_url_bytes: usize,
    pub max_keys_per_user: usize,
    pub max_users: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    /// redb page cache. Bounds the daemon's memory, whatever the journal's size.
    pub cache_size_bytes: usize,
    /// `/readyz` fails while a projector is more than this many entries behind the head.
    pub ready_max_lag_entries: u64,
    /// Ingest answers 503 while the data directory has less free space than this, so the
    /// journal never runs into a full disk mid-commit (0: no reserve).
    pub min_free_bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter, e.g. `info` or `rev23_webhooks=debug` (`RUST_LOG` overrides it).
    pub level: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Delivery {
    pub retry_schedule_ms: Vec<u64>,
    pub connect_timeout_ms: u64,
    pub timeout_ms: u64,
    pub max_in_flight: usize,
    pub disable_after_ms: u64,
    pub secret_overlap_ms: u64,
}

/// The initial destination policy (SPEC §11); once `PUT /v1/policy` journaled one, that wins.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub allowed_destinations: Vec<String>,
    pub require_approval: bool,
    pub https_only: bool,
    pub allow_private_networks: Vec<String>,
}

impl Policy {
    pub fn record(&self) -> crate::domain::policy::PolicyRecord {
        crate::domain::policy::PolicyRecord {
            allowed_destinations: self.allowed_destinations.clone(),
            require_approval: self.require_approval,
            https_only: self.https_only,
            allow_private_networks: self.allow_private_networks.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Loops {
    pub window_ms: u64,
    pub threshold: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Files {
    pub url_ttl_ms: u64,
}

/// Journal retention (see `crate::retention`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Public entries younger than this are kept; 0 keeps everything forever (retention off).
    pub min_age_ms: u64,
    /// A hook that is not active holds its backlog this long after its last change; 0: forever.
    pub max_hold_ms: u64,
    pub check_interval_ms: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            min_age_ms: 0,
            max_hold_ms: 0,
            check_interval_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ifttt {
    pub service_key: String,
    pub realtime_url: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8023".into(),
            data_dir: PathBuf::from("./rev23-data"),
            tenant: None,
            public_base_url: "http://127.0.0.1:8023".into(),
            limits: Limits::default(),
            storage: Storage::default(),
            log: Log::default(),
            delivery: Delivery::default(),
            policy: Policy::default(),
            loops: Loops::default(),
            files: Files::default(),
            ifttt: Ifttt::default(),
            retention: Retention::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_file_body_bytes: 10 * 1024 * 1024,
            max_batch_events: 1000,
            rate_limit_per_minute: 200,
            ingest_rate_limit_per_minute: 600_000,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            max_connections: 1024,
            max_hooks: 10_000,
            max_events_per_hook: 64,
            max_target_url_bytes: 2048,
            max_keys_per_user: 100,
            max_users: 10_000,
        }
    }
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            cache_size_bytes: 16 * 1024 * 1024,
            ready_max_lag_entries: 10_000,
            min_free_bytes: 32 * 1024 * 1024,
        }
    }
}

impl Default for Log {
    fn default() -> Self {
        Log {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            retry_schedule_ms: vec![
                0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000,
            ],
            connect_timeout_ms: 5_000,
            timeout_ms: 15_000,
            max_in_flight: 16,
            disable_after_ms: 432_000_000,
            secret_overlap_ms: 86_400_000,
        }
    }
}

impl Default for Loops {
    fn default() -> Self {
        Loops {
            window_ms: 600_000,
            threshold: 3,
        }
    }
}

impl Default for Files {
    fn default() -> Self {
        Files {
            url_ttl_ms: 86_400_000,
        }
    }
}

impl Default for Ifttt {
    fn default() -> Self {
        Ifttt {
            service_key: String::new(),
            realtime_url: "https://realtime.ifttt.com/v1/notifications".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads `path` if given (defaults otherwise), then applies the CLI overrides.
    pub fn load(
        path: Option<&Path>,
        listen: Option<String>,
        data_dir: Option<PathBuf>,
    ) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                Config::parse(&text).map_err(|message| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message,
                })?
            }
            None => Config::default(),
        };
        if let Some(listen) = listen {
            config.listen = listen;
        }
        if let Some(dir) = data_dir {
            config.data_dir = dir;
        }
        config.validate()?;
        Ok(config)
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Rejects values that would make a limit meaningless.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        let checks: [(bool, &str); 10] = [
            (
                self.loops.threshold >= 1,
                "loops.threshold must be at least 1",
            ),
            (
                self.loops.window_ms >= 1,
                "loops.window_ms must be at least 1",
            ),
            (
                l.max_body_bytes >= 1024,
                "limits.max_body_bytes must be at least 1024",
            ),
            (
                l.max_file_body_bytes >= l.max_body_bytes,
                "limits.max_file_body_bytes must be at least limits.max_body_bytes",
            ),
            (
                (1..=100_000).contains(&l.max_batch_events),
                "limits.max_batch_events must be 1..=100000",
            ),
            (
                l.rate_limit_per_minute >= 1,
                "limits.rate_limit_per_minute must be at least 1",
            ),
            (
                l.ingest_rate_limit_per_minute >= 1,
                "limits.ingest_rate_limit_per_minute must be at least 1",
            ),
            (
                l.header_read_timeout_ms >= 1,
                "limits.header_read_timeout_ms must be at least 1",
            ),
            (
                l.max_connections >= 1,
                "limits.max_connections must be at least 1",
            ),
            (
                self.storage.cache_size_bytes >= 1024 * 1024,
                "storage.cache_size_bytes must be at least 1 MiB",
            ),
        ];
        for (ok, message) in checks {
            if !ok {
                return Err(ConfigError::Invalid(message.to_string()));
            }
        }
        if self.delivery.retry_schedule_ms.is_empty() || self.delivery.retry_schedule_ms.len() > 32
        {
            return Err(ConfigError::Invalid(
                "delivery.retry_schedule_ms must have 1..=32 entries".into(),
            ));
        }
        crate::domain::policy::Policy::new(self.policy.record())
            .map_err(|m| ConfigError::Invalid(format!("policy.{m}")))?;
        if self.retention.check_interval_ms < 10 {
            return Err(ConfigError::Invalid(
                "retention.check_interval_ms must be at least 10".into(),
            ));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(ConfigError::Invalid(
                "log.format must be \"text\" or \"json\"".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_parses() {
        let text = r#"
listen = "127.0.0.1:8023"
data_dir = "./rev23-data"
tenant = "mystudio"
public_base_url = "http://127.0.0.1:8023"
[limits]
max_body_bytes = 1048576
rate_limit_per_minute = 200
ingest_rate_limit_per_minute = 600000
[delivery]
retry_schedule_ms = [0, 5000, 300000, 1800000, 7200000, 18000000, 36000000, 36000000]
connect_timeout_ms = 5000
timeout_ms = 15000
max_in_flight = 16
disable_after_ms = 432000000
secret_overlap_ms = 86400000
[policy]
allowed_destinations = []
require_approval = false
https_only = false
allow_private_networks = []
[loops]
window_ms = 600000
threshold = 3
[files]
url_ttl_ms = 86400000
[ifttt]
service_key = ""
realtime_url = "https://realtime.ifttt.com/v1/notifications"
"#;
        let c = Config::parse(text).unwrap();
        assert_eq!(c.tenant.as_deref(), Some("mystudio"));
        assert_eq!(c.limits.max_body_bytes, 1_048_576);
        c.validate().unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(Config::parse("listn = \"x\"").is_err());
        assert!(Config::parse("[limits]\nmax_body = 5").is_err());
        let c = Config::parse("[limits]\nmax_body_bytes = 10").unwrap();
        assert!(c.validate().is_err());
    }
}
