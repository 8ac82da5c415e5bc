//! `rev23-webhooks verify`: checks one delivery's Standard Webhooks signature from its three
//! headers, its exact body bytes and the hook's secret and/or the daemon's public key (say, a
//! capture from a receiver's log). Prints which signature versions verified; fails when none did.

use std::io::Read;
use std::path::PathBuf;

use crate::sender::signing::{self, DeliveryHeaders, Verified, Verifier};

#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The hook's HMAC secret, `whsec_...` (checks `v1` entries).
    #[arg(long, env = "REV23_WEBHOOK_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// The daemon's ed25519 public key, `whpk_...` from GET /v1/signing-keys (checks `v1a`).
    #[arg(long)]
    pub public_key: Option<String>,
    /// The `webhook-id` header.
    #[arg(long)]
    pub id: String,
    /// The `webhook-timestamp` header (unix seconds).
    #[arg(long)]
    pub timestamp: String,
    /// The `webhook-signature` header (space-separated `v1,...` / `v1a,...` entries).
    #[arg(long, allow_hyphen_values = true)]
    pub signature: String,
    /// File with the exact body bytes as received, or `-` for stdin.
    #[arg(long)]
    pub body: PathBuf,
    /// Allowed clock difference, both ways; 0 = do not check (to verify old captures).
    #[arg(long, default_value_t = signing::DEFAULT_TOLERANCE_SECS)]
    pub tolerance_secs: u64,
}

fn read_body(path: &std::path::Path) -> Result<Vec<u8>, String> {
    if path.as_os_str() == "-" {
        let mut body = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut body)
            .map_err(|e| format!("cannot read the body from stdin: {e}"))?;
        Ok(body)
    } else {
        std::fs::read(path)
            .map_err(|e| format!("cannot read the body from {}: {e}", path.display()))
    }
}

pub fn run(args: VerifyArgs) -> Result<(), String> {
    let body = read_body(&args.body)?;
    let report = check(&args, &body, signing::now_secs())?;
    print!("{report}");
    Ok(())
}

/// The verdict as printed (`Ok`), or why nothing verified (`Err`).
fn check(args: &VerifyArgs, body: &[u8], now_secs: i64) -> Result<String, String> {
    let tolerance = (args.tolerance_secs > 0).then_some(args.tolerance_secs);
    let verifier = Verifier::from_strings(args.secret.as_deref(), args.public_key.as_deref())
        .map_err(|e| e.to_string())?
        .with_tolerance(tolerance);
    let headers = DeliveryHeaders {
        id: Some(&args.id),
        timestamp: Some(&args.timestamp),
        signature: Some(&args.signature),
    };
    let verified = verifier
        .verify(&headers, body, now_secs)
        .map_err(|e| format!("not verified: {e}"))?;
    Ok(describe(&verifier, &verified))
}

fn describe(verifier: &Verifier, verified: &Verified) -> String {
    let mut out = String::new();
    let ts = verified.timestamp_secs;
    let when = crate::clock::format_ms(ts.saturating_mul(1000));
    match verifier.tolerance_secs {
        Some(t) => out.push_str(&format!("timestamp {ts} ({when}): within {t} s\n")),
        None => out.push_str(&format!("timestamp {ts} ({when}): not checked\n")),
    }
    let verdict = |ok: bool| {
        if ok {
            "verified"
        } else {
            "no matching signature"
        }
    };
    if verifier.secret.is_some() {
        out.push_str(&format!(
            "v1  HMAC-SHA256 secret: {}\n",
            verdict(verified.v1)
        ));
    }
    if let Some(key) = &verifier.public_key {
        out.push_str(&format!(
            "v1a ed25519 key {}: {}\n",
            key.key_id(),
            verdict(verified.v1a)
        ));
    }
    out.push_str(&format!(
        "OK: verified {}\n",
        verified.versions().join(", ")
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(signature: &str, tolerance_secs: u64) -> VerifyArgs {
        VerifyArgs {
            secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
            public_key: None,
            id: "msg_p5jXN8AQM9LWM0D4loKWxJek".into(),
            timestamp: "1614265330".into(),
            signature: signature.into(),
            body: PathBuf::from("-"),
            tolerance_secs,
        }
    }

    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn reports_what_verified() {
        let report = check(&args(SIG, 0), BODY, 0).unwrap();
        assert!(report.contains("not checked"), "{report}");
        assert!(
            report.contains("v1  HMAC-SHA256 secret: verified"),
            "{report}"
        );
        assert!(report.ends_with("OK: verified v1\n"), "{report}");
    }

    #[test]
    fn failures_say_why() {
        let old = check(&args(SIG, 300), BODY, 1614265330 + 301).unwrap_err();
        assert!(old.contains("too old"), "{old}");
        let wrong = check(&args(SIG, 0), b"{}", 0).unwrap_err();
        assert_eq!(wrong, "not verified: no matching signature found");
        let mut no_keys = args(SIG, 0);
        no_keys.secret = None;
        assert!(check(&no_keys, BODY, 0)
            .unwrap_err()
            .contains("no secret or public key"));
    }
}
