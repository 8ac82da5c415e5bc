//! Which IP addresses a delivery must never reach (SPEC §11): loopback, RFC 1918 private,
//! link-local (the cloud metadata address 169.254.169.254 among them), CGNAT, ULA, multicast,
//! unspecified and a few more that are never a public receiver. Pure classification, so the API
//! (at hook creation) and the sender's resolver (at connect time) apply one rule. An IPv6 address
//! that embeds an IPv4 one (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64
//! `64:ff9b::/96`) is judged by the embedded address, so it cannot smuggle `::ffff:127.0.0.1`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not public.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restricted {
    Unspecified,
    Loopback,
    Private,
    LinkLocal,
    Cgnat,
    UniqueLocal,
    Multicast,
    Broadcast,
    /// 0.0.0.0/8, 192.0.0.0/24, 198.18.0.0/15, 240.0.0.0/4, documentation ranges...
    Reserved,
}

impl Restricted {
    pub fn name(self) -> &'static str {
        match self {
            Restricted::Unspecified => "unspecified",
            Restricted::Loopback => "loopback",
            Restricted::Private => "private (RFC 1918)",
            Restricted::LinkLocal => "link-local",
            Restricted::Cgnat => "carrier-grade NAT (100.64.0.0/10)",
            Restricted::UniqueLocal => "unique local (fc00::/7)",
            Restricted::Multicast => "multicast",
            Restricted::Broadcast => "broadcast",
            Restricted::Reserved => "reserved",
        }
    }
}

/// `None` for a public address; otherwise the range it falls in.
pub fn classify(ip: IpAddr) -> Option<Restricted> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Restricted> {
    let [a, b, c, _] = ip.octets();
    if ip.is_unspecified() {
        return Some(Restricted::Unspecified);
    }
    if ip.is_broadcast() {
        return Some(Restricted::Broadcast);
    }
    let class = match (a, b, c) {
        (127, _, _) => Restricted::Loopback,
        (10, _, _) | (192, 168, _) => Restricted::Private,
        (172, 16..=31, _) => Restricted::Private,
        (169, 254, _) => Restricted::LinkLocal,
        (100, 64..=127, _) => Restricted::Cgnat,
        (224..=239, _, _) => Restricted::Multicast,
        (0, _, _) | (240..=255, _, _) => Restricted::Reserved,
        (192, 0, 0) | (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Restricted::Reserved,
        (198, 18..=19, _) => Restricted::Reserved,
        _ => return None,
    };
    Some(class)
}

fn classify_v6(ip: Ipv6Addr) -> Option<Restricted> {
    let first = ip.segments()[0];
    if ip.is_unspecified() {
        Some(Restricted::Unspecified)
    } else if ip.is_loopback() {
        Some(Restricted::Loopback)
    } else if first & 0xfe00 == 0xfc00 {
        Some(Restricted::UniqueLocal)
    } else if first & 0xffc0 == 0xfe80 {
        Some(Restricted::LinkLocal)
    } else if first & 0xff00 == 0xff00 {
        Some(Restricted::Multicast)
    } else if first & 0xffc0 == 0xfec0 || first == 0x2001 && ip.segments()[1] == 0x0db8 {
        // Deprecated site-local, and the documentation prefix 2001:db8::/32.
        Some(Restricted::Reserved)
    } else {
        None
    }
}

/// The IPv4 address inside a mapped, compatible or NAT64 IPv6 address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let compatible = s[..6].iter().all(|&x| x == 0) && !ip.is_loopback() && !ip.is_unspecified();
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|&x| x == 0);
    (compatible || nat64).then_some(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_forbidden_range_is_classified() {
        let table: &[(&str, Restricted)] = &[
            ("0.0.0.0", Restricted::Unspecified),
            ("127.0.0.1", Restricted::Loopback),
            ("127.255.0.9", Restricted::Loopback),
            ("10.0.0.1", Restricted::Private),
            ("172.16.0.1", Restricted::Private),
            ("172.31.255.254", Restricted::Private),
            ("192.168.1.10", Restricted::Private),
            ("169.254.169.254", Restricted::LinkLocal),
            ("169.254.0.1", Restricted::LinkLocal),
            ("100.64.0.1", Restricted::Cgnat),
            ("100.127.255.255", Restricted::Cgnat),
            ("224.0.0.1", Restricted::Multicast),
            ("239.255.255.250", Restricted::Multicast),
            ("255.255.255.255", Restricted::Broadcast),
            ("0.1.2.3", Restricted::Reserved),
            ("240.0.0.1", Restricted::Reserved),
            ("::", Restricted::Unspecified),
            ("::1", Restricted::Loopback),
            ("fc00::1", Restricted::UniqueLocal),
            ("fd12:3456::1", Restricted::UniqueLocal),
            ("fe80::1", Restricted::LinkLocal),
            ("ff02::1", Restricted::Multicast),
            ("::ffff:127.0.0.1", Restricted::Loopback),
            ("::ffff:169.254.169.254", Restricted::LinkLocal),
            ("::ffff:10.1.2.3", Restricted::Private),
            ("::10.1.2.3", Restricted::Private),
            ("64:ff9b::192.168.0.1", Restricted::Private),
            ("2001:db8::1", Restricted::Reserved),
        ];
        for (text, want) in table {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(classify(ip), Some(*want), "{text}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for text in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "172.15.255.255",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.1.1",
            "192.169.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
        ] {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(classify(ip), None, "{text}");
        }
    }
}
