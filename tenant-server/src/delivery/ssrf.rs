//! Which webhook targets we refuse: anything that is not a plain public
//! internet address (loopback, private, link-local and cloud metadata,
//! unique-local, multicast, documentation and reserved ranges), checked
//! when a subscription is made AND on every connection, through a DNS
//! resolver that drops such addresses, so DNS rebinding gains nothing.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Whether `ip` is an ordinary public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            // NAT64 (64:ff9b::/96) carries an IPv4 address: judge that one.
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return is_public_v4(Ipv4Addr::new(a, b, c, d));
            }
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard 100::/64
                || s[0..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible ::/96
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // includes 169.254.169.254, the metadata service
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

/// Why a webhook URL is refused, in words for the `422` details.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    #[error("must be an absolute http or https URL")]
    Malformed,
    #[error("only http and https are allowed, not {0}")]
    Scheme(String),
    #[error("must not carry a user name or password")]
    Credentials,
    #[error(
        "{0} resolves to a private, loopback or link-local address ({1}); webhooks must target the public internet"
    )]
    PrivateAddress(String, IpAddr),
    #[error("host {0} does not resolve")]
    Unresolvable(String),
}

/// Parses and checks a webhook URL; with `allow_private` only its shape.
pub async fn check_url(raw: &str, allow_private: bool) -> Result<reqwest::Url, UrlRefused> {
    let url = reqwest::Url::parse(raw.trim()).map_err(|_| UrlRefused::Malformed)?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(UrlRefused::Scheme(other.to_owned())),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefused::Credentials);
    }
    let host = url.host_str().ok_or(UrlRefused::Malformed)?.to_owned();
    if allow_private {
        return Ok(url);
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<IpAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|_| UrlRefused::Unresolvable(host.clone()))?
            .map(|a| a.ip())
            .collect(),
    };
    if addrs.is_empty() {
        return Err(UrlRefused::Unresolvable(host));
    }
    if let Some(ip) = addrs.into_iter().find(|ip| !is_public(*ip)) {
        return Err(UrlRefused::PrivateAddress(host, ip));
    }
    Ok(url)
}

/// A DNS resolver for the delivery client that only ever yields public
/// addresses (connect-time check; a hostname that turned private fails).
#[derive(Debug, Clone, Copy)]
pub struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{} has no public address", name.as_str()).into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// IP-literal URLs never reach a resolver: check them before sending.
pub fn literal_host_allowed(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => is_public(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => is_public(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => true,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_ranges_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fc00::2",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
            "fd00:ec2::254",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} must be refused");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[tokio::test]
    async fn urls_are_checked_for_scheme_credentials_and_address() {
        assert_eq!(
            check_url("file:///etc/passwd", false).await,
            Err(UrlRefused::Scheme("file".into()))
        );
        assert_eq!(
            check_url("ftp://example.com/x", false).await,
            Err(UrlRefused::Scheme("ftp".into()))
        );
        assert_eq!(
            check_url("not a url", false).await,
            Err(UrlRefused::Malformed)
        );
        assert_eq!(
            check_url("https://u:p@example.com/", false).await,
            Err(UrlRefused::Credentials)
        );
        assert!(matches!(
            check_url("http://127.0.0.1:9/hook", false).await,
            Err(UrlRefused::PrivateAddress(..))
        ));
        assert!(matches!(
            check_url("http://[::1]/hook", false).await,
            Err(UrlRefused::PrivateAddress(..))
        ));
        assert!(matches!(
            check_url("http://localhost:8080/hook", false).await,
            Err(UrlRefused::PrivateAddress(..))
        ));
        assert!(check_url("http://127.0.0.1:9/hook", true).await.is_ok());
    }
}
