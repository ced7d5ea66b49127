//! Where a webhook may post: http(s) URLs whose host resolves only to public addresses,
//! unless the operator allows private ones (`WEBHOOK_ALLOW_PRIVATE`). Checked when a webhook
//! is registered and again before every delivery, which then connects to the very address
//! that was checked, so a name that resolves differently the second time (DNS rebinding)
//! cannot turn a delivery toward the server's own network.

use std::net::{IpAddr, SocketAddr};

/// Why a URL is refused, for the owner.
pub type Refusal = String;

/// The URL, parsed, and the one address a delivery connects to.
pub struct Target {
    pub url: reqwest::Url,
    pub host: String,
    pub addr: SocketAddr,
}

/// Checks `url` and resolves its host.
///
/// # Errors
/// Why it may not be used.
pub async fn resolve(url: &str, allow_private: bool) -> Result<Target, Refusal> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("only http and https URLs".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("no credentials in the URL: the signature proves the sender".into());
    }
    let host = parsed
        .host_str()
        .ok_or("the URL has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = parsed
        .port_or_known_default()
        .ok_or("the URL has no port")?;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("{host} does not resolve: {e}"))?
        .collect();
    let first = *addrs
        .first()
        .ok_or_else(|| format!("{host} has no address"))?;
    if !allow_private && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
        return Err(format!(
            "{host} resolves to {}, which is not a public address (WEBHOOK_ALLOW_PRIVATE allows it)",
            bad.ip()
        ));
    }
    Ok(Target {
        url: parsed,
        host,
        addr: first,
    })
}

/// Not loopback, private, link-local (cloud metadata lives there), shared, unspecified,
/// multicast, documentation or otherwise reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
                || (a == 192 && b == 0) // IETF protocol assignments
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn refuses_what_is_not_a_public_http_url() {
        for (url, why) in [
            ("ftp://example.com/", "only http"),
            ("http://127.0.0.1:9/", "not a public address"),
            (
                "http://169.254.169.254/latest/meta-data",
                "not a public address",
            ),
            ("http://user:pw@example.com/", "no credentials"),
            ("not a url", "not a URL"),
        ] {
            match resolve(url, false).await {
                Err(e) => assert!(e.contains(why), "{url}: {e}"),
                Ok(_) => panic!("{url} accepted"),
            }
        }
        assert!(resolve("http://127.0.0.1:9/hook", true).await.is_ok());
    }
}
