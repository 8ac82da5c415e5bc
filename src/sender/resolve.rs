//! Where a target may be reached (SPEC §11), decided twice with one rule: when a hook is created,
//! changed, approved or re-checked ([`Destinations::vet`]: every address the host resolves to must
//! be allowed), and again at connect time ([`GuardedResolver`], the hyper connector's resolver:
//! forbidden addresses are dropped before any connect, and a host left with none is refused), so
//! a host that re-binds its DNS to an internal address after creation still reaches nothing.
//! IP-literal targets skip hyper's resolver; the client checks those with
//! [`Destinations::check_literal`]. The lookup itself is injectable ([`Lookup`]) for tests.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::dns::Name;

use crate::domain::policy::{Policy, PolicyHandle, Violation};

/// Longest a name lookup may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Addresses of one name considered at most.
const MAX_ADDRESSES: usize = 32;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A name → addresses lookup.
pub trait Lookup: Send + Sync + 'static {
    fn lookup(&self, host: String) -> BoxFuture<std::io::Result<Vec<IpAddr>>>;
}

/// The system resolver (getaddrinfo on tokio's blocking pool).
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: String) -> BoxFuture<std::io::Result<Vec<IpAddr>>> {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).take(MAX_ADDRESSES).collect())
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("destination not allowed: {0}")]
    Refused(Violation),
    #[error("host {host:?} does not resolve: {message}")]
    Unresolvable { host: String, message: String },
}

/// The policy plus a resolver: everything that decides whether an address may be reached.
#[derive(Clone)]
pub struct Destinations {
    pub policy: Arc<PolicyHandle>,
    lookup: Arc<dyn Lookup>,
}

impl Destinations {
    pub fn new(policy: Arc<PolicyHandle>, lookup: Arc<dyn Lookup>) -> Destinations {
        Destinations { policy, lookup }
    }

    /// The full check of a target URL under `policy`: scheme and host pattern, then every
    /// address the host resolves to (one forbidden address refuses the whole target).
    pub async fn vet(&self, policy: &Policy, url: &url::Url) -> Result<(), DestinationError> {
        policy.check_url(url).map_err(DestinationError::Refused)?;
        let Some(url::Host::Domain(host)) = url.host() else {
            // IP literals were judged by check_url.
            return Ok(());
        };
        for ip in self.resolve(host).await? {
            policy.check_ip(ip).map_err(DestinationError::Refused)?;
        }
        Ok(())
    }

    /// An IP-literal host (`127.0.0.1`, `[::1]`) under the current policy; names pass here
    /// (the resolver judges them).
    pub fn check_literal(&self, host: &str) -> Result<(), Violation> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) => self.policy.current().check_ip(ip),
            Err(_) => Ok(()),
        }
    }

    async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, DestinationError> {
        let unresolvable = |message: String| DestinationError::Unresolvable {
            host: host.to_string(),
            message,
        };
        let found = tokio::time::timeout(LOOKUP_TIMEOUT, self.lookup.lookup(host.to_string()))
            .await
            .map_err(|_| unresolvable(format!("no answer within {LOOKUP_TIMEOUT:?}")))?
            .map_err(|e| unresolvable(e.to_string()))?;
        if found.is_empty() {
            return Err(unresolvable("no addresses".into()));
        }
        Ok(found)
    }

    /// Connect time: the host's addresses that the current policy allows, or the reason none is.
    async fn allowed_addresses(&self, host: String) -> Result<Vec<IpAddr>, DestinationError> {
        let policy = self.policy.current();
        let mut refusal = None;
        let mut allowed = Vec::new();
        for ip in self.resolve(&host).await? {
            match policy.check_ip(ip) {
                Ok(()) => allowed.push(ip),
                Err(v) => refusal = Some(v),
            }
        }
        match (allowed.is_empty(), refusal) {
            (true, Some(v)) => Err(DestinationError::Refused(v)),
            _ => Ok(allowed),
        }
    }
}

/// The hyper connector's resolver: resolves, then keeps only addresses the policy allows.
#[derive(Clone)]
pub struct GuardedResolver(pub Destinations);

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = DestinationError;
    type Future = BoxFuture<Result<Self::Response, DestinationError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let destinations = self.0.clone();
        Box::pin(async move {
            let ips = destinations
                .allowed_addresses(name.as_str().to_string())
                .await?;
            // Port 0: the connector sets the URL's port.
            let addrs: Vec<SocketAddr> = ips.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect();
            Ok(addrs.into_iter())
        })
    }
}

/// True when `error` (or any of its sources) is a policy refusal of the destination.
pub fn is_refusal(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if matches!(
            e.downcast_ref::<DestinationError>(),
            Some(DestinationError::Refused(_))
        ) {
            return true;
        }
        current = e.source();
    }
    false
}

/// A fixed name → addresses table, for tests (DNS re-binding without a DNS server).
pub struct StaticLookup(pub std::collections::HashMap<String, Vec<IpAddr>>);

impl Lookup for StaticLookup {
    fn lookup(&self, host: String) -> BoxFuture<std::io::Result<Vec<IpAddr>>> {
        let found = self.0.get(&host).cloned();
        Box::pin(async move {
            found.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "unknown host"))
        })
    }
}
