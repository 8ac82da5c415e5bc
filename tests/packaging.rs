//! The packaging pieces agree with each other and with the daemon: the default config in
//! `packaging/config.toml` parses (unknown keys are errors) and puts the data in the unit's
//! StateDirectory; the unit is `Type=notify` with a watchdog and starts the binary the .deb
//! installs with the config the .deb installs (`[package.metadata.deb]` in Cargo.toml).
//! `systemd-analyze verify` of the unit runs in .ci/run (packaging/verify-unit.sh).

use rev23_webhooks::config::Config;

const UNIT: &str = include_str!("../packaging/rev23-webhooks.service");
const CONFIG: &str = include_str!("../packaging/config.toml");
const CARGO_TOML: &str = include_str!("../Cargo.toml");

/// The value of `key=` in the unit (the last one wins, as in systemd).
fn directive<'a>(key: &str) -> Option<&'a str> {
    UNIT.lines()
        .rev()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn the_packaged_config_parses_and_uses_the_state_directory() {
    let config = Config::parse(CONFIG).expect("packaging/config.toml parses");
    assert_eq!(
        config.data_dir,
        std::path::Path::new("/var/lib/rev23-webhooks")
    );
    assert_eq!(directive("StateDirectory"), Some("rev23-webhooks"));
    assert_eq!(directive("ConfigurationDirectory"), Some("rev23-webhooks"));
    assert!(
        config.listen.starts_with("127.0.0.1:"),
        "loopback by default"
    );
}

#[test]
fn the_unit_runs_the_installed_binary_as_a_notify_service() {
    assert_eq!(directive("Type"), Some("notify"));
    assert!(directive("WatchdogSec").is_some());
    assert_eq!(directive("Restart"), Some("on-failure"));
    assert_eq!(
        directive("ExecStart"),
        Some("/usr/bin/rev23-webhooks serve --config /etc/rev23-webhooks/config.toml")
    );
    for hardening in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "DynamicUser=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    ] {
        assert!(UNIT.lines().any(|l| l == hardening), "{hardening}");
    }
    // The .deb puts the binary and the config where ExecStart looks, and keeps the config.
    assert!(CARGO_TOML.contains(r#"["target/release/rev23-webhooks", "usr/bin/", "755"]"#));
    assert!(CARGO_TOML
        .contains(r#"["packaging/config.toml", "etc/rev23-webhooks/config.toml", "644"]"#));
    assert!(CARGO_TOML.contains(r#"conf-files = ["/etc/rev23-webhooks/config.toml"]"#));
    assert!(CARGO_TOML.contains(r#"unit-name = "rev23-webhooks", unit-scripts = "packaging/""#));
}
