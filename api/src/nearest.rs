//! Choosing the node nearest to a client: great-circle distance between the client's
//! location (from the configured IP-prefix table) and each node's (lat, lon); when
//! the client cannot be located, the node with the lowest measured RTT.

use std::net::IpAddr;

use ferry_shared::config::ClientLocation;

/// A node that can serve the download.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub public_url: String,
    pub lat: f64,
    pub lon: f64,
    pub rtt_ms: Option<f64>,
}

/// Great-circle distance in kilometres (haversine).
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lon1) = (a.0.to_radians(), a.1.to_radians());
    let (lat2, lon2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().min(1.0).asin()
}

/// The location of the longest matching prefix, if any.
pub fn locate(ip: IpAddr, table: &[ClientLocation]) -> Option<(f64, f64)> {
    table
        .iter()
        .filter_map(|entry| prefix_len_if_match(ip, &entry.prefix).map(|len| (len, entry)))
        .max_by_key(|(len, _)| *len)
        .map(|(_, entry)| (entry.lat, entry.lon))
}

fn prefix_len_if_match(ip: IpAddr, prefix: &str) -> Option<u8> {
    let (net, len) = prefix.split_once('/').unwrap_or((prefix, ""));
    let net: IpAddr = net.trim().parse().ok()?;
    let ip = match (ip, net) {
        (IpAddr::V6(v6), IpAddr::V4(_)) => IpAddr::V4(v6.to_ipv4_mapped()?),
        _ => ip,
    };
    let (bits, ip, net): (u8, u128, u128) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (32, u32::from(a).into(), u32::from(b).into()),
        (IpAddr::V6(a), IpAddr::V6(b)) => (128, a.into(), b.into()),
        _ => return None,
    };
    let len: u8 = if len.is_empty() { bits } else { len.trim().parse().ok()? };
    if len > bits {
        return None;
    }
    let shift = u32::from(bits - len);
    let matches = len == 0 || (ip >> shift) == (net >> shift);
    matches.then_some(len)
}

/// The nearest candidate to `client`, else the one with the lowest RTT.
pub fn choose(candidates: &[Candidate], client: Option<(f64, f64)>) -> Option<&Candidate> {
    match client {
        Some(at) => {
            candidates.iter().min_by(|a, b| distance_km(at, (a.lat, a.lon)).total_cmp(&distance_km(at, (b.lat, b.lon))))
        }
        None => candidates.iter().min_by(|a, b| a.rtt_ms.unwrap_or(f64::MAX).total_cmp(&b.rtt_ms.unwrap_or(f64::MAX))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(prefix: &str, lat: f64, lon: f64) -> ClientLocation {
        ClientLocation { prefix: prefix.into(), lat, lon }
    }

    #[test]
    fn paris_to_london_is_about_344_km() {
        let d = distance_km((48.8566, 2.3522), (51.5074, -0.1278));
        assert!((d - 343.5).abs() < 2.0, "{d}");
    }

    #[test]
    fn longest_prefix_wins() {
        let table = vec![loc("10.0.0.0/8", 1.0, 1.0), loc("10.1.0.0/16", 2.0, 2.0), loc("::1/128", 3.0, 3.0)];
        assert_eq!(locate("10.1.2.3".parse().expect("ip"), &table), Some((2.0, 2.0)));
        assert_eq!(locate("10.9.2.3".parse().expect("ip"), &table), Some((1.0, 1.0)));
        assert_eq!(locate("::1".parse().expect("ip"), &table), Some((3.0, 3.0)));
        assert_eq!(locate("192.168.0.1".parse().expect("ip"), &table), None);
    }

    #[test]
    fn nearest_then_rtt_fallback() {
        let c = |url: &str, lat, lon, rtt| Candidate { public_url: url.into(), lat, lon, rtt_ms: Some(rtt) };
        let nodes = vec![c("paris", 48.85, 2.35, 9.0), c("tokyo", 35.68, 139.69, 1.0)];
        assert_eq!(choose(&nodes, Some((51.5, -0.12))).map(|n| n.public_url.as_str()), Some("paris"));
        assert_eq!(choose(&nodes, None).map(|n| n.public_url.as_str()), Some("tokyo"));
        assert!(choose(&[], None).is_none());
    }
}
