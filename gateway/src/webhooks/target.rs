//! Where a webhook may point. Only `http` and `https`, and never a
//! link-local or cloud-metadata address: a gateway that could be told to
//! POST to 169.254.169.254 would hand its cloud credentials to whoever may
//! create webhooks. Loopback and private addresses are allowed, because
//! that is where backends live.
//!
//! Checked twice: at `PUT` (the literal address, or what the name resolves
//! to then) and at every connection, through [`GuardedResolver`], so a
//! name that later resolves somewhere else (DNS rebinding) is refused too.

use super::config::MAX_URL_LEN;
use eventwire_protocol::{ErrorCode, ProtocolError};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// AWS's IPv6 instance-metadata address, outside fe80::/10.
const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);

/// True for the addresses a webhook is never sent to: 169.254.0.0/16,
/// fe80::/10, their IPv4-mapped forms, and fd00:ec2::254.
pub fn refused(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => {
            (a.segments()[0] & 0xffc0) == 0xfe80
                || a == AWS_METADATA_V6
                || a.to_ipv4_mapped().is_some_and(|v4| v4.is_link_local())
        }
    }
}

fn refusal(host: &str, ip: IpAddr) -> ProtocolError {
    let named = if host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() {
        format!("{ip} is")
    } else {
        format!("{host} resolves to {ip},")
    };
    ProtocolError::new(
        ErrorCode::TargetRefused,
        format!("{named} a link-local or cloud-metadata address; webhooks are never sent there"),
    )
}

/// Parses a target URL: `http` or `https`, a host, no credentials.
pub fn parse(text: &str) -> Result<reqwest::Url, ProtocolError> {
    let invalid = |m: &str| ProtocolError::new(ErrorCode::InvalidWebhook, m.to_owned());
    if text.len() > MAX_URL_LEN {
        return Err(invalid("`url` is longer than 2048 bytes"));
    }
    let url = reqwest::Url::parse(text)
        .map_err(|e| invalid(&format!("`url` is not an absolute URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("`url` must be http:// or https://"));
    }
    if url.host().is_none() {
        return Err(invalid("`url` has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "`url` must not carry credentials (they would be shown by GET); receivers check the signature instead",
        ));
    }
    if let Some(ip) = literal(&url)
        && refused(ip)
    {
        return Err(refusal(url.host_str().unwrap_or_default(), ip));
    }
    Ok(url)
}

/// The target's address when the URL names one rather than a host name
/// (such URLs never reach the resolver, so they are checked here).
pub fn literal(url: &reqwest::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(a) => Some(IpAddr::V4(a)),
        url::Host::Ipv6(a) => Some(IpAddr::V6(a)),
        url::Host::Domain(_) => None,
    }
}

/// At `PUT`: a host name that resolves to a refused address now is
/// refused now, with a clear error. A name that does not resolve yet is
/// accepted; the resolver checks again at every connection.
pub async fn check_at_put(url: &reqwest::Url) -> Result<(), ProtocolError> {
    if literal(url).is_some() {
        return Ok(()); // checked by `parse`
    }
    let host = url.host_str().unwrap_or_default();
    if let Ok(addrs) = tokio::net::lookup_host((host, 0)).await {
        for a in addrs {
            if refused(a.ip()) {
                return Err(refusal(host, a.ip()));
            }
        }
    }
    Ok(())
}

/// The resolver every webhook request goes through: it drops refused
/// addresses, and fails when nothing else is left.
pub struct GuardedResolver;

#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} resolves only to link-local or cloud-metadata addresses; refused",
            self.0
        )
    }
}

impl std::error::Error for Refused {}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let allowed: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !refused(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(Refused(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_and_link_local_are_refused_loopback_and_private_are_not() {
        for bad in [
            "169.254.169.254",
            "169.254.0.1",
            "fe80::1",
            "febf::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
        ] {
            assert!(refused(bad.parse().unwrap()), "{bad}");
        }
        for good in [
            "127.0.0.1",
            "10.0.0.1",
            "192.168.1.1",
            "172.16.0.1",
            "::1",
            "fc00::1",
            "fec0::1",
        ] {
            assert!(!refused(good.parse().unwrap()), "{good}");
        }
        assert_eq!(
            parse("http://169.254.169.254/latest/meta-data")
                .unwrap_err()
                .code,
            ErrorCode::TargetRefused
        );
        assert_eq!(
            parse("http://[fe80::1]:8080/").unwrap_err().code,
            ErrorCode::TargetRefused
        );
        assert!(parse("http://127.0.0.1:3000/hooks").is_ok());
    }

    /// The connect-time check: names are resolved through the guard, which
    /// fails when only refused addresses are left.
    #[tokio::test]
    async fn the_resolver_refuses_names_that_resolve_to_metadata_addresses() {
        use std::str::FromStr;
        let refused = GuardedResolver
            .resolve(Name::from_str("169.254.169.254").unwrap())
            .await;
        let Err(e) = refused else {
            panic!("a metadata address must not resolve")
        };
        assert!(e.to_string().contains("refused"), "{e}");
        let ok: Vec<SocketAddr> = GuardedResolver
            .resolve(Name::from_str("127.0.0.1").unwrap())
            .await
            .unwrap()
            .collect();
        assert_eq!(ok, ["127.0.0.1:0".parse().unwrap()]);
    }
}
