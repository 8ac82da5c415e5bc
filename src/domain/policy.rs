//! The destination policy (SPEC §11): which targets hooks may send data to. The config file's
//! `[policy]` is the initial value; `PUT /v1/policy` journals a new one (`internal.policy_set`),
//! so changes survive restarts and are auditable. [`Policy`] is the validated form every check
//! uses — at hook creation, on policy change, and at connect time in the sender's resolver —
//! and [`PolicyHandle`] shares the current one between the API and the sender.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::address;

/// Host patterns and private networks a policy may list, at most each.
pub const MAX_POLICY_ENTRIES: usize = 256;
/// Longest host pattern (a DNS name is at most 253 bytes, plus `*.`).
const MAX_PATTERN_BYTES: usize = 255;

/// The policy as configured and as journaled.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct PolicyRecord {
    /// Host patterns (`hooks.zapier.com`, `*.example.com`); empty: any public host.
    #[serde(default)]
    pub allowed_destinations: Vec<String>,
    /// New hooks of non-owners start `pending_approval`.
    #[serde(default)]
    pub require_approval: bool,
    #[serde(default)]
    pub https_only: bool,
    /// CIDRs that may be reached although not public (LAN devices).
    #[serde(default)]
    pub allow_private_networks: Vec<String>,
}

/// Why a destination is refused. The API answers each with 403 `destination_not_allowed`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("the policy allows only https targets")]
    HttpsOnly,
    #[error("host {host:?} is not in the policy's allowed_destinations")]
    HostNotAllowed { host: String },
    #[error("{ip} is a {} address and is not inside allow_private_networks", .class.name())]
    RestrictedAddress {
        ip: IpAddr,
        class: address::Restricted,
    },
}

/// A [`PolicyRecord`] that passed validation, with its networks parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    record: PolicyRecord,
    networks: Vec<IpNet>,
}

impl Policy {
    /// Validates `record`: patterns are host names (optionally `*.`-prefixed) or IP literals,
    /// networks are CIDRs (a bare address means just it). Errors name the bad entry.
    pub fn new(mut record: PolicyRecord) -> Result<Policy, String> {
        if record.allowed_destinations.len() > MAX_POLICY_ENTRIES
            || record.allow_private_networks.len() > MAX_POLICY_ENTRIES
        {
            return Err(format!(
                "allowed_destinations and allow_private_networks hold at most {MAX_POLICY_ENTRIES} entries each"
            ));
        }
        for pattern in &mut record.allowed_destinations {
            *pattern = pattern.trim().to_ascii_lowercase();
            validate_pattern(pattern)?;
        }
        let mut networks = Vec::with_capacity(record.allow_private_networks.len());
        for text in &record.allow_private_networks {
            let net = text
                .trim()
                .parse::<IpNet>()
                .or_else(|_| text.trim().parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!(
                        "allow_private_networks: {text:?} is not a CIDR such as \"192.168.1.0/24\""
                    )
                })?;
            networks.push(net.trunc());
        }
        Ok(Policy { record, networks })
    }

    pub fn record(&self) -> &PolicyRecord {
        &self.record
    }

    /// The checks that need no DNS: scheme and host pattern (and the address, for IP literals).
    pub fn check_url(&self, url: &url::Url) -> Result<(), Violation> {
        if self.record.https_only && url.scheme() != "https" {
            return Err(Violation::HttpsOnly);
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.trim_end_matches('.').to_ascii_lowercase(),
            Some(url::Host::Ipv4(ip)) => {
                self.check_ip(IpAddr::V4(ip))?;
                ip.to_string()
            }
            Some(url::Host::Ipv6(ip)) => {
                self.check_ip(IpAddr::V6(ip))?;
                ip.to_string()
            }
            None => String::new(),
        };
        if self.host_allowed(&host) {
            Ok(())
        } else {
            Err(Violation::HostNotAllowed { host })
        }
    }

    /// An address may be reached if it is public or inside `allow_private_networks`.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Violation> {
        let Some(class) = address::classify(ip) else {
            return Ok(());
        };
        let canonical = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        if self
            .networks
            .iter()
            .any(|n| n.contains(&ip) || n.contains(&canonical))
        {
            Ok(())
        } else {
            Err(Violation::RestrictedAddress { ip, class })
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        let patterns = &self.record.allowed_destinations;
        patterns.is_empty()
            || patterns.iter().any(|p| match p.strip_prefix("*.") {
                Some(suffix) => host
                    .strip_suffix(suffix)
                    .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
                None => p == host,
            })
    }
}

fn validate_pattern(pattern: &str) -> Result<(), String> {
    let name = pattern.strip_prefix("*.").unwrap_or(pattern);
    let ok = !name.is_empty()
        && pattern.len() <= MAX_PATTERN_BYTES
        && (name.parse::<IpAddr>().is_ok()
            || name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "allowed_destinations: {pattern:?} is not a host name, an IP address or \"*.\" followed by a domain"
        ))
    }
}

/// The current policy, shared by the API and the sender; replaced whole on change.
pub struct PolicyHandle(RwLock<Arc<Policy>>);

impl PolicyHandle {
    pub fn new(policy: Policy) -> PolicyHandle {
        PolicyHandle(RwLock::new(Arc::new(policy)))
    }

    pub fn current(&self) -> Arc<Policy> {
        self.0.read().expect("policy lock").clone()
    }

    pub fn set(&self, policy: Policy) {
        *self.0.write().expect("policy lock") = Arc::new(policy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(destinations: &[&str], private: &[&str], https_only: bool) -> Policy {
        Policy::new(PolicyRecord {
            allowed_destinations: destinations.iter().map(|s| s.to_string()).collect(),
            require_approval: false,
            https_only,
            allow_private_networks: private.iter().map(|s| s.to_string()).collect(),
        })
        .unwrap()
    }

    fn url(text: &str) -> url::Url {
        url::Url::parse(text).unwrap()
    }

    #[test]
    fn host_patterns() {
        let p = policy(&["hooks.zapier.com", "*.Example.com"], &[], false);
        assert!(p.check_url(&url("https://hooks.zapier.com/x")).is_ok());
        assert!(p.check_url(&url("https://HOOKS.zapier.com./x")).is_ok());
        assert!(p.check_url(&url("https://a.example.com/x")).is_ok());
        assert!(p.check_url(&url("https://a.b.example.com/x")).is_ok());
        for bad in [
            "https://example.com/x",
            "https://badexample.com/x",
            "https://zapier.com/x",
            "https://hooks.zapier.com.evil.net/x",
        ] {
            assert!(
                matches!(
                    p.check_url(&url(bad)),
                    Err(Violation::HostNotAllowed { .. })
                ),
                "{bad}"
            );
        }
        assert!(policy(&[], &[], false)
            .check_url(&url("https://anything.net/"))
            .is_ok());
    }

    #[test]
    fn https_only_and_literal_addresses() {
        let p = policy(&[], &[], true);
        assert_eq!(
            p.check_url(&url("http://8.8.8.8/")),
            Err(Violation::HttpsOnly)
        );
        assert!(p.check_url(&url("https://8.8.8.8/")).is_ok());
        let p = policy(&[], &[], false);
        for bad in [
            "http://127.0.0.1:9/",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::ffff:127.0.0.1]/",
            "http://10.0.0.5/",
            "http://0.0.0.0/",
        ] {
            assert!(
                matches!(
                    p.check_url(&url(bad)),
                    Err(Violation::RestrictedAddress { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn private_networks_allow_their_range_only() {
        let p = policy(&[], &["127.0.0.0/8", "192.168.1.7"], false);
        assert!(p.check_ip("127.0.0.1".parse().unwrap()).is_ok());
        assert!(p.check_ip("::ffff:127.0.0.1".parse().unwrap()).is_ok());
        assert!(p.check_ip("192.168.1.7".parse().unwrap()).is_ok());
        assert!(p.check_ip("192.168.1.8".parse().unwrap()).is_err());
        assert!(p.check_ip("::1".parse().unwrap()).is_err());
        assert!(p.check_ip("169.254.169.254".parse().unwrap()).is_err());
    }

    #[test]
    fn invalid_entries_are_named() {
        let bad = PolicyRecord {
            allow_private_networks: vec!["10.0.0.0/33".into()],
            ..Default::default()
        };
        assert!(Policy::new(bad).unwrap_err().contains("10.0.0.0/33"));
        let bad = PolicyRecord {
            allowed_destinations: vec!["bad host/".into()],
            ..Default::default()
        };
        assert!(Policy::new(bad).unwrap_err().contains("bad host/"));
    }
}
