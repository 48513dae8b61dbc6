//! Where sync's connections may go. Both provider clients (octocrab over a
//! hyper connector for GitHub, reqwest for GitLab) resolve host names
//! through [`Guard`], which keeps only public addresses (the webhook rule,
//! `delivery::ssrf::is_public`) on every connect unless
//! `TASKHARBOR_ALLOW_PRIVATE_WEBHOOKS=true`. The link check runs at link
//! time; this one runs whenever a connection is made, so a repository
//! host whose DNS turns private after linking gets a clear error and no
//! request. The lookup behind it is replaceable, so tests drive it
//! without real DNS.

use super::provider::ProviderError;
use crate::delivery::ssrf::is_public;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Turns a host name into addresses (the system resolver, or a test's).
pub trait Lookup: Send + Sync + 'static {
    fn lookup(&self, host: &str) -> BoxFuture<io::Result<Vec<IpAddr>>>;
}

/// The operating system's resolver.
#[derive(Debug, Clone, Copy)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: &str) -> BoxFuture<io::Result<Vec<IpAddr>>> {
        let host = host.to_owned();
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

/// A repository host that resolves only to addresses sync may not reach.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{host} resolves to a private, loopback or link-local address ({ip}); sync refuses to connect \
     (TASKHARBOR_ALLOW_PRIVATE_WEBHOOKS=true allows it)"
)]
pub struct PrivateTarget {
    pub host: String,
    pub ip: IpAddr,
}

/// The resolver both provider clients connect through.
#[derive(Clone)]
pub struct Guard {
    lookup: Arc<dyn Lookup>,
    allow_private: bool,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("allow_private", &self.allow_private)
            .finish()
    }
}

impl Guard {
    pub fn new(lookup: Arc<dyn Lookup>, allow_private: bool) -> Self {
        Self {
            lookup,
            allow_private,
        }
    }

    /// The addresses `host` may be reached at: its public ones (all of
    /// them when private targets are allowed); an error if none remain.
    pub async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, BoxError> {
        let addrs = self.lookup.lookup(host).await?;
        if self.allow_private {
            return Ok(addrs);
        }
        let public: Vec<IpAddr> = addrs.iter().copied().filter(|ip| is_public(*ip)).collect();
        if public.is_empty() {
            return Err(match addrs.first() {
                Some(ip) => Box::new(PrivateTarget {
                    host: host.to_owned(),
                    ip: *ip,
                }),
                None => Box::new(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{host} does not resolve"),
                )),
            });
        }
        Ok(public)
    }

    /// An IP-literal host reaches no resolver: it is checked here instead.
    pub fn check_literal(&self, url: &url::Url) -> Result<(), PrivateTarget> {
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            _ => return Ok(()),
        };
        if self.allow_private || is_public(ip) {
            Ok(())
        } else {
            Err(PrivateTarget {
                host: url.host_str().unwrap_or_default().to_owned(),
                ip,
            })
        }
    }

    /// Checks a link's `api_url` when it is linked, as strictly as a
    /// webhook target: the literal address, or every address its name
    /// resolves to now (one private answer refuses it; connections later
    /// just skip such answers).
    pub async fn check_url(&self, url: &url::Url) -> Result<(), String> {
        self.check_literal(url).map_err(|e| e.to_string())?;
        let Some(url::Host::Domain(name)) = url.host() else {
            return Ok(());
        };
        if self.allow_private {
            return Ok(());
        }
        let addrs = self
            .lookup
            .lookup(name)
            .await
            .map_err(|_| format!("host {name} does not resolve"))?;
        match addrs.iter().find(|ip| !is_public(**ip)) {
            Some(ip) => Err(PrivateTarget {
                host: name.to_owned(),
                ip: *ip,
            }
            .to_string()),
            None if addrs.is_empty() => Err(format!("host {name} does not resolve")),
            None => Ok(()),
        }
    }

    fn socket_addrs(&self, host: String) -> BoxFuture<Result<Vec<SocketAddr>, BoxError>> {
        let guard = self.clone();
        Box::pin(async move {
            Ok(guard
                .resolve(&host)
                .await?
                .into_iter()
                // The client sets the URL's port.
                .map(|ip| SocketAddr::new(ip, 0))
                .collect())
        })
    }
}

/// For reqwest (GitLab).
impl reqwest::dns::Resolve for Guard {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let addrs = self.socket_addrs(name.as_str().to_owned());
        Box::pin(async move { Ok(Box::new(addrs.await?.into_iter()) as reqwest::dns::Addrs) })
    }
}

/// For hyper's connector under octocrab (GitHub).
impl tower::Service<hyper_util::client::legacy::connect::dns::Name> for Guard {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let addrs = self.socket_addrs(name.as_str().to_owned());
        Box::pin(async move { Ok(addrs.await?.into_iter()) })
    }
}

/// A failed send, in words that name the cause: a refused address is
/// [`ProviderError::PrivateAddress`] (certainly nothing was sent), any
/// other transport failure an unknown outcome.
pub fn transport_error(error: &(dyn std::error::Error + 'static)) -> ProviderError {
    let mut chain = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<PrivateTarget>() {
            return ProviderError::PrivateAddress(refused.to_string());
        }
        let text = cause.to_string();
        if !chain.iter().any(|c| c.contains(&text)) {
            chain.push(text);
        }
        source = cause.source();
    }
    if let Some(refused) = error.downcast_ref::<PrivateTarget>() {
        return ProviderError::PrivateAddress(refused.to_string());
    }
    ProviderError::Unknown(format!("transport: {}", chain.join(": ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<IpAddr>);

    impl Lookup for Fixed {
        fn lookup(&self, _host: &str) -> BoxFuture<io::Result<Vec<IpAddr>>> {
            let addrs = self.0.clone();
            Box::pin(async move { Ok(addrs) })
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[tokio::test]
    async fn only_public_addresses_are_kept_unless_private_ones_are_allowed() {
        let mixed = Arc::new(Fixed(vec![ip("10.0.0.1"), ip("1.1.1.1")]));
        let private = Arc::new(Fixed(vec![ip("169.254.169.254")]));
        let guard = Guard::new(mixed.clone(), false);
        assert_eq!(guard.resolve("h").await.ok(), Some(vec![ip("1.1.1.1")]));
        let refused = Guard::new(private.clone(), false).resolve("meta").await;
        let refused = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused.contains("meta resolves to a private"), "{refused}");
        assert_eq!(
            Guard::new(private, true).resolve("meta").await.ok(),
            Some(vec![ip("169.254.169.254")])
        );
        let url = url::Url::parse("http://127.0.0.1:9/api").unwrap_or_else(|_| unreachable!());
        assert!(
            Guard::new(mixed.clone(), false)
                .check_literal(&url)
                .is_err()
        );
        assert!(Guard::new(mixed.clone(), true).check_literal(&url).is_ok());
        // Linking is stricter than connecting: one private answer refuses.
        let named = url::Url::parse("https://ghe.example/api").unwrap_or_else(|_| unreachable!());
        assert!(
            Guard::new(mixed.clone(), false)
                .check_url(&named)
                .await
                .is_err()
        );
        assert!(Guard::new(mixed, true).check_url(&named).await.is_ok());
        let public = Arc::new(Fixed(vec![ip("1.1.1.1")]));
        assert!(Guard::new(public, false).check_url(&named).await.is_ok());
    }

    #[test]
    fn a_refusal_deep_in_the_cause_chain_is_named() {
        #[derive(Debug, thiserror::Error)]
        #[error("client error (Connect)")]
        struct Outer(#[source] PrivateTarget);
        let e = Outer(PrivateTarget {
            host: "ghe.example".into(),
            ip: ip("10.1.2.3"),
        });
        assert!(matches!(
            transport_error(&e),
            ProviderError::PrivateAddress(m) if m.contains("ghe.example")
        ));
        let io = io::Error::new(io::ErrorKind::ConnectionReset, "reset");
        assert!(matches!(transport_error(&io), ProviderError::Unknown(m) if m.contains("reset")));
    }
}
