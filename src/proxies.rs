//! Who a request really comes from when it passes through a reverse proxy (`TRUSTED_PROXIES`).
//!
//! Per-address limits (connections, signups, logins) and logs key on the client's address.
//! Behind a proxy every peer is the proxy, so the proxy's `X-Forwarded-For` (or RFC 7239
//! `Forwarded`) is the only place the client appears — but any client can send those headers
//! too. So they are read only when the peer is a configured proxy, and then from the right:
//! the rightmost address that is not itself a trusted proxy is the one the nearest trusted
//! proxy saw connect, which a client cannot forge. Without `TRUSTED_PROXIES` the headers are
//! never read.

use std::net::IpAddr;

use axum::http::HeaderMap;

/// An address range: an address and how many leading bits must match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    bits: u8,
}

impl Cidr {
    /// Whether `ip` is inside. An IPv4 address matches an IPv4 range also when it arrives as
    /// an IPv4-mapped IPv6 address (dual-stack sockets).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.bits),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), self.bits),
            _ => false,
        }
    }
}

/// As it is written in `TRUSTED_PROXIES` (`10.0.0.0/8`), for the admin's settings view.
impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.bits)
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    /// `10.0.0.1`, `10.0.0.0/8`, `::1`, `fd00::/8`.
    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an address or CIDR range"))?;
        let addr = canonical(addr);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            None => max,
            Some(b) => b
                .parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { addr, bits })
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    let rest = bits % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

/// Parses `TRUSTED_PROXIES`: comma-separated addresses or CIDR ranges.
///
/// # Errors
/// The first entry that is neither, named.
pub fn parse(list: &str) -> Result<Vec<Cidr>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect()
}

/// The client's address: `peer`, unless `peer` is a trusted proxy, in which case the
/// rightmost untrusted address of `X-Forwarded-For` (or, without it, of `Forwarded`'s `for=`).
/// A header that does not parse is ignored: the proxy's own address is then used, which
/// limits the proxy rather than trusting garbage.
pub fn client_ip(trusted: &[Cidr], peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    let trusts = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !trusts(peer) {
        return peer;
    }
    let chain = forwarded_for(headers);
    let Some(chain) = chain else { return peer };
    // Walking from the nearest hop outwards: every trusted hop vouches for the one before it.
    let mut client = peer;
    for hop in chain.iter().rev() {
        client = *hop;
        if !trusts(*hop) {
            break;
        }
    }
    canonical(client)
}

/// The hops a request passed, nearest last; `None` when there are none or any fails to parse.
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<IpAddr>> {
    let xff: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let hops: Vec<String> = if xff.is_empty() {
        headers
            .get_all("forwarded")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split([',', ';']))
            .filter_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| value.trim().trim_matches('"').to_owned())
            })
            .collect()
    } else {
        xff.into_iter().map(str::to_owned).collect()
    };
    if hops.is_empty() {
        return None;
    }
    hops.iter().map(|h| parse_hop(h)).collect()
}

/// `1.2.3.4`, `1.2.3.4:5678`, `[::1]`, `[::1]:5678`, `::1`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_match_by_prefix() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped");
        let odd: Cidr = "192.168.0.0/23".parse().unwrap();
        assert!(odd.contains(ip("192.168.1.255")));
        assert!(!odd.contains(ip("192.168.2.0")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")));
        assert!(!v6.contains(ip("fe80::1")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("proxy.local".parse::<Cidr>().is_err());
        assert_eq!(parse(" 127.0.0.1, ::1 ,").unwrap().len(), 2);
    }

    #[test]
    fn headers_count_only_from_a_trusted_peer() {
        let trusted = parse("127.0.0.1,10.0.0.0/8").unwrap();
        let h = headers(&[("x-forwarded-for", "203.0.113.7")]);
        assert_eq!(client_ip(&[], ip("127.0.0.1"), &h), ip("127.0.0.1"));
        assert_eq!(
            client_ip(&trusted, ip("198.51.100.1"), &h),
            ip("198.51.100.1")
        );
        assert_eq!(client_ip(&trusted, ip("127.0.0.1"), &h), ip("203.0.113.7"));
    }

    #[test]
    fn a_forged_leftmost_hop_is_not_believed() {
        let trusted = parse("127.0.0.1,10.0.0.0/8").unwrap();
        // The client sent "1.1.1.1" itself; the outer proxy (10.0.0.5) saw 203.0.113.7.
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.7, 10.0.0.5")]);
        assert_eq!(client_ip(&trusted, ip("127.0.0.1"), &h), ip("203.0.113.7"));
        let h = headers(&[(
            "forwarded",
            r#"for=1.1.1.1, for="[2001:db8::7]:443";proto=https"#,
        )]);
        assert_eq!(client_ip(&trusted, ip("127.0.0.1"), &h), ip("2001:db8::7"));
        let h = headers(&[("x-forwarded-for", "not-an-address")]);
        assert_eq!(client_ip(&trusted, ip("127.0.0.1"), &h), ip("127.0.0.1"));
    }
}
