//! Refuses outbound targets inside private networks (SSRF): a URL given by a partner, such as a
//! webhook subscriber's, must not make the gateway call its own host, its network or the cloud
//! metadata service.
//!
//! The host is resolved and every address checked, since one public and one private answer
//! would let a connection land on either. The addresses are returned so that the caller can
//! connect to exactly those, and a DNS answer that changes in between (rebinding) changes
//! nothing. `outbound.allow_private_targets` turns the check off (tests, closed networks).
//! Source-system connections do not use this guard: SIS systems often live on district networks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

use crate::config::OutboundSettings;

/// Resolves host names through the guard for a reqwest client (`dns_resolver`): only vetted
/// addresses are returned, so the address checked is the address connected to.
pub struct GuardedResolver(pub TargetGuard);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.0;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let url = Url::parse(&format!("http://{host}/"))?;
            let vetted = guard.check(&url).await?;
            // Port 0: reqwest puts the URL's port (or the scheme's) in its place.
            let addrs: Addrs = Box::new(
                vetted
                    .into_iter()
                    .map(|a| SocketAddr::new(a.ip(), 0))
                    .collect::<Vec<_>>()
                    .into_iter(),
            );
            Ok(addrs)
        })
    }
}

/// Why an outbound target is refused. Only the refused address is named, never the other
/// answers of the lookup.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{url_scheme}: only http and https targets are allowed")]
    Scheme { url_scheme: String },
    #[error("the URL has no host")]
    NoHost,
    #[error("cannot resolve {host}: {source}")]
    Unresolvable {
        host: String,
        source: std::io::Error,
    },
    #[error("{host} resolves to no address")]
    NoAddress { host: String },
    #[error("{host} is refused as a target: {address} is {why}")]
    Refused {
        host: String,
        address: IpAddr,
        why: &'static str,
    },
}

/// Checks outbound targets against [`refusal`], unless private targets are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetGuard {
    allow_private: bool,
}

impl TargetGuard {
    pub fn new(allow_private_targets: bool) -> TargetGuard {
        TargetGuard {
            allow_private: allow_private_targets,
        }
    }

    pub fn from_settings(settings: &OutboundSettings) -> TargetGuard {
        TargetGuard::new(settings.allow_private_targets)
    }

    /// Resolves the URL's host and returns its addresses (with the URL's port) when every one
    /// may be called.
    pub async fn check(&self, url: &Url) -> Result<Vec<SocketAddr>, TargetError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(TargetError::Scheme {
                url_scheme: url.scheme().to_string(),
            });
        }
        let host = url.host_str().ok_or(TargetError::NoHost)?;
        let port = url.port_or_known_default().unwrap_or(443);
        // The URL parser has already normalised literal addresses (`0x7f000001`, `[::1]`).
        let literal = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .parse::<IpAddr>();
        let addresses: Vec<SocketAddr> = match literal {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|source| TargetError::Unresolvable {
                    host: host.to_string(),
                    source,
                })?
                .collect(),
        };
        if addresses.is_empty() {
            return Err(TargetError::NoAddress {
                host: host.to_string(),
            });
        }
        if !self.allow_private {
            for address in &addresses {
                if let Some(why) = refusal(address.ip()) {
                    return Err(TargetError::Refused {
                        host: host.to_string(),
                        address: address.ip(),
                        why,
                    });
                }
            }
        }
        Ok(addresses)
    }
}

/// Why the gateway must not call this address, or `None` for a public one.
pub fn refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4),
        IpAddr::V6(v6) => refusal_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn refusal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    // Most specific first: the metadata address is also link-local.
    const RANGES: &[([u8; 4], u32, &str)] = &[
        ([169, 254, 169, 254], 32, "the cloud metadata address"),
        ([255, 255, 255, 255], 32, "the broadcast address"),
        ([0, 0, 0, 0], 8, "unspecified (\"this network\", 0.0.0.0/8)"),
        ([127, 0, 0, 0], 8, "loopback"),
        ([10, 0, 0, 0], 8, "private (RFC 1918)"),
        ([172, 16, 0, 0], 12, "private (RFC 1918)"),
        ([192, 168, 0, 0], 16, "private (RFC 1918)"),
        ([169, 254, 0, 0], 16, "link-local"),
        (
            [100, 64, 0, 0],
            10,
            "shared address space (CGNAT, 100.64.0.0/10)",
        ),
        ([192, 0, 0, 0], 24, "reserved for IETF protocol assignments"),
        ([192, 0, 2, 0], 24, "a documentation range"),
        ([198, 51, 100, 0], 24, "a documentation range"),
        ([203, 0, 113, 0], 24, "a documentation range"),
        ([198, 18, 0, 0], 15, "a benchmarking range"),
        ([224, 0, 0, 0], 4, "multicast"),
        ([240, 0, 0, 0], 4, "reserved (240.0.0.0/4)"),
    ];
    RANGES
        .iter()
        .find(|(net, prefix, _)| in_v4(ip, *net, *prefix))
        .map(|(_, _, why)| *why)
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

fn refusal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // Forms that carry an IPv4 address are judged by it: ::ffff:127.0.0.1 is loopback.
    if let Some(v4) = embedded_v4(ip) {
        return refusal_v4(v4);
    }
    const RANGES: &[(Ipv6Addr, u32, &str)] = &[
        (
            Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
            128,
            "the cloud metadata address",
        ),
        (
            Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
            7,
            "private (unique local, fc00::/7)",
        ),
        (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "link-local"),
        (
            Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),
            10,
            "site-local (deprecated)",
        ),
        (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, "multicast"),
        (
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
            32,
            "a documentation range",
        ),
        (
            Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
            64,
            "a discard-only range",
        ),
        (
            Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0),
            96,
            "reserved (IPv4-compatible, ::/96)",
        ),
    ];
    RANGES
        .iter()
        .find(|(net, prefix, _)| in_v6(ip, *net, *prefix))
        .map(|(_, _, why)| *why)
}

/// The IPv4 address inside IPv4-mapped (`::ffff:a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and
/// 6to4 (`2002:aabb:ccdd::`) addresses.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let bits = u128::from(ip);
    let nat64 = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0);
    if in_v6(ip, nat64, 96) {
        return Some(Ipv4Addr::from(bits as u32));
    }
    let six_to_four = Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0);
    if in_v6(ip, six_to_four, 16) {
        return Some(Ipv4Addr::from((bits >> 80) as u32));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> TargetGuard {
        TargetGuard::new(false)
    }

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn every_non_public_range_is_refused_with_its_reason() {
        let cases: &[(&str, Option<&str>)] = &[
            ("127.0.0.1", Some("loopback")),
            ("127.255.0.9", Some("loopback")),
            ("10.1.2.3", Some("private (RFC 1918)")),
            ("172.16.0.1", Some("private (RFC 1918)")),
            ("172.31.255.255", Some("private (RFC 1918)")),
            ("172.32.0.1", None),
            ("192.168.1.1", Some("private (RFC 1918)")),
            ("169.254.169.254", Some("the cloud metadata address")),
            ("169.254.1.1", Some("link-local")),
            ("0.0.0.0", Some("unspecified (\"this network\", 0.0.0.0/8)")),
            ("255.255.255.255", Some("the broadcast address")),
            ("224.0.0.1", Some("multicast")),
            ("239.255.255.250", Some("multicast")),
            (
                "100.64.0.1",
                Some("shared address space (CGNAT, 100.64.0.0/10)"),
            ),
            (
                "100.127.255.255",
                Some("shared address space (CGNAT, 100.64.0.0/10)"),
            ),
            ("100.128.0.1", None),
            ("192.0.2.10", Some("a documentation range")),
            ("198.51.100.7", Some("a documentation range")),
            ("203.0.113.99", Some("a documentation range")),
            ("198.18.0.1", Some("a benchmarking range")),
            ("240.0.0.1", Some("reserved (240.0.0.0/4)")),
            ("8.8.8.8", None),
            ("93.184.216.34", None),
            ("::1", Some("loopback")),
            ("::", Some("unspecified")),
            ("fc00::1", Some("private (unique local, fc00::/7)")),
            ("fd12:3456::1", Some("private (unique local, fc00::/7)")),
            ("fd00:ec2::254", Some("the cloud metadata address")),
            ("fe80::1", Some("link-local")),
            ("febf::1", Some("link-local")),
            ("ff02::1", Some("multicast")),
            ("2001:db8::1", Some("a documentation range")),
            ("::ffff:127.0.0.1", Some("loopback")),
            ("::ffff:10.0.0.1", Some("private (RFC 1918)")),
            ("::ffff:169.254.169.254", Some("the cloud metadata address")),
            ("::ffff:8.8.8.8", None),
            ("64:ff9b::a9fe:a9fe", Some("the cloud metadata address")),
            ("2002:c0a8:0101::1", Some("private (RFC 1918)")),
            ("::127.0.0.1", Some("reserved (IPv4-compatible, ::/96)")),
            ("2606:4700:4700::1111", None),
            ("2001:4860:4860::8888", None),
        ];
        for (text, want) in cases {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(refusal(ip), *want, "{text}");
        }
    }

    #[tokio::test]
    async fn literal_addresses_in_urls_are_checked_without_a_lookup() {
        let cases = [
            ("http://127.0.0.1:8080/hook", Some("loopback")),
            ("https://[::1]/hook", Some("loopback")),
            (
                "http://169.254.169.254/latest/meta-data/",
                Some("the cloud metadata address"),
            ),
            ("https://[::ffff:192.168.0.1]/", Some("private (RFC 1918)")),
            ("http://0x7f000001/", Some("loopback")),
            ("http://10.0.0.1/", Some("private (RFC 1918)")),
            ("https://8.8.8.8/hook", None),
            ("https://[2606:4700:4700::1111]:8443/hook", None),
        ];
        for (text, want) in cases {
            let result = guard().check(&url(text)).await;
            match (want, result) {
                (None, Ok(addresses)) => assert_eq!(addresses.len(), 1, "{text}"),
                (Some(why), Err(TargetError::Refused { why: got, .. })) => {
                    assert_eq!(got, why, "{text}")
                }
                (want, got) => panic!("{text}: wanted {want:?}, got {got:?}"),
            }
        }
        let addresses = guard()
            .check(&url("https://[2606:4700:4700::1111]:8443/hook"))
            .await
            .unwrap();
        assert_eq!(addresses[0].port(), 8443);
        let addresses = guard().check(&url("http://8.8.8.8/")).await.unwrap();
        assert_eq!(addresses[0].port(), 80);
    }

    #[tokio::test]
    async fn localhost_is_refused_naming_the_host_and_why() {
        let err = guard()
            .check(&url("http://localhost:9000/hook"))
            .await
            .unwrap_err();
        match &err {
            TargetError::Refused { host, why, address } => {
                assert_eq!(host, "localhost");
                assert_eq!(*why, "loopback");
                assert!(address.is_loopback());
            }
            other => panic!("wanted a refusal, got {other:?}"),
        }
        assert!(
            err.to_string()
                .starts_with("localhost is refused as a target: "),
            "{err}"
        );
        assert!(err.to_string().ends_with(" is loopback"), "{err}");
    }

    #[tokio::test]
    async fn allowing_private_targets_lets_them_through() {
        let open = TargetGuard::new(true);
        for text in [
            "http://127.0.0.1:8080/hook",
            "http://localhost:8080/hook",
            "http://169.254.169.254/",
            "http://[fd00::1]/",
        ] {
            let addresses = open.check(&url(text)).await.unwrap();
            assert!(!addresses.is_empty(), "{text}");
        }
    }

    #[tokio::test]
    async fn a_host_that_does_not_resolve_is_its_own_error() {
        for guard in [TargetGuard::new(false), TargetGuard::new(true)] {
            let err = guard
                .check(&url("https://no-such-host.invalid/hook"))
                .await
                .unwrap_err();
            assert!(
                matches!(&err, TargetError::Unresolvable { host, .. } if host == "no-such-host.invalid"),
                "{err:?}"
            );
        }
    }

    #[tokio::test]
    async fn only_http_and_https_urls_are_targets() {
        for text in ["ftp://8.8.8.8/", "file:///etc/passwd", "gopher://8.8.8.8/"] {
            let err = guard().check(&url(text)).await.unwrap_err();
            assert!(matches!(err, TargetError::Scheme { .. }), "{text}: {err:?}");
        }
    }

    #[test]
    fn the_setting_decides() {
        let settings = OutboundSettings {
            allow_private_targets: true,
            ..OutboundSettings::default()
        };
        assert_eq!(
            TargetGuard::from_settings(&settings),
            TargetGuard::new(true)
        );
        assert_eq!(
            TargetGuard::from_settings(&OutboundSettings::default()),
            TargetGuard::new(false)
        );
    }
}
