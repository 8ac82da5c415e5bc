//! The daemon starts on an ephemeral port, answers health checks, and stops cleanly on SIGTERM.

mod common;

#[test]
fn starts_serves_and_stops_on_sigterm() {
    let mut d = common::start();
    assert_eq!(d.call("GET", "/healthz", None, None).status, 200);
    let ready = d.call("GET", "/readyz", None, None);
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(ready.json["status"], "ready");
    let me = d.owner("GET", "/v1/me", None);
    assert_eq!(me.status, 200);
    assert_eq!(me.json["user"]["owner"], true);
    let mode = std::fs::metadata(d.data_dir.join("owner.key")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    assert_eq!(d.stop(), Some(0));
}
