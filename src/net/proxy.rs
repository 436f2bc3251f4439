//! Which proxy a connection takes, decided as Go's `net/http` (and so kubectl)
//! decides it: a kubeconfig cluster's `proxy-url` for every request to that
//! cluster; otherwise `HTTPS_PROXY`/`https_proxy` for `https` servers and
//! `HTTP_PROXY`/`http_proxy` for `http` ones, unless `NO_PROXY`/`no_proxy`
//! names the server. `localhost` and loopback addresses never take an
//! environment proxy.

use std::net::IpAddr;

/// One `NO_PROXY` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Exempt {
    /// `*`: no server takes the proxy.
    All,
    /// An address, optionally with a port.
    Ip(IpAddr, Option<u16>),
    /// An address range (`10.0.0.0/8`).
    Cidr(IpAddr, u8),
    /// `example.com` (the name and its subdomains) or `.example.com`
    /// (subdomains only), optionally with a port.
    Domain {
        name: String,
        subdomains_only: bool,
        port: Option<u16>,
    },
}

/// The proxy settings of the environment.
#[derive(Debug, Clone, Default)]
pub struct ProxyEnv {
    https: Option<String>,
    http: Option<String>,
    exempt: Vec<Exempt>,
}

fn first_set(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
}

impl ProxyEnv {
    /// The process environment's settings.
    pub fn from_env() -> ProxyEnv {
        ProxyEnv::new(
            first_set(&["HTTPS_PROXY", "https_proxy"]),
            first_set(&["HTTP_PROXY", "http_proxy"]),
            first_set(&["NO_PROXY", "no_proxy"]).as_deref(),
        )
    }

    /// Settings from explicit values (`no_proxy` comma-separated).
    pub fn new(https: Option<String>, http: Option<String>, no_proxy: Option<&str>) -> ProxyEnv {
        let exempt = no_proxy
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(parse_exempt)
            .collect();
        ProxyEnv {
            https,
            http,
            exempt,
        }
    }

    /// The proxy (as written in the environment) for a server; `None` for a
    /// direct connection.
    pub fn for_server(&self, server: &http::Uri) -> Option<&str> {
        let host = server.host()?.trim_matches(['[', ']']).to_ascii_lowercase();
        let https = server.scheme() == Some(&http::uri::Scheme::HTTPS);
        let port = server.port_u16().unwrap_or(if https { 443 } else { 80 });
        let proxy = if https { &self.https } else { &self.http };
        let proxy = proxy.as_deref()?;
        if is_loopback(&host) || self.exempt.iter().any(|e| exempts(e, &host, port)) {
            return None;
        }
        Some(proxy)
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

fn split_port(entry: &str) -> (&str, Option<u16>) {
    // `[::1]:80`, `host:80`; a bare IPv6 address has several colons.
    if let Some(rest) = entry.strip_prefix('[')
        && let Some((host, port)) = rest.split_once(']')
    {
        return (host, port.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match entry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, port.parse().ok()),
        _ => (entry, None),
    }
}

fn parse_exempt(entry: &str) -> Exempt {
    if entry == "*" {
        return Exempt::All;
    }
    if let Some((ip, bits)) = entry.split_once('/')
        && let (Ok(ip), Ok(bits)) = (ip.parse::<IpAddr>(), bits.parse::<u8>())
    {
        return Exempt::Cidr(ip, bits);
    }
    let (host, port) = split_port(entry);
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Exempt::Ip(ip, port);
    }
    let host = host.to_ascii_lowercase();
    let (name, subdomains_only) = match host.strip_prefix("*.") {
        Some(rest) => (rest.to_owned(), true),
        None => match host.strip_prefix('.') {
            Some(rest) => (rest.to_owned(), true),
            None => (host, false),
        },
    };
    Exempt::Domain {
        name,
        subdomains_only,
        port,
    }
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

fn exempts(entry: &Exempt, host: &str, port: u16) -> bool {
    let port_matches = |p: &Option<u16>| p.is_none_or(|p| p == port);
    match entry {
        Exempt::All => true,
        Exempt::Ip(ip, p) => host.parse::<IpAddr>().is_ok_and(|h| h == *ip) && port_matches(p),
        Exempt::Cidr(net, bits) => host
            .parse::<IpAddr>()
            .is_ok_and(|h| in_cidr(h, *net, *bits)),
        Exempt::Domain {
            name,
            subdomains_only,
            port: p,
        } => {
            let sub = host
                .strip_suffix(name.as_str())
                .is_some_and(|rest| rest.ends_with('.'));
            (sub || (!subdomains_only && host == name)) && port_matches(p)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(no_proxy: &str) -> ProxyEnv {
        ProxyEnv::new(
            Some("http://proxy.corp:3128".into()),
            Some("http://plain.corp:3128".into()),
            Some(no_proxy),
        )
    }

    fn proxied(env: &ProxyEnv, server: &str) -> Option<String> {
        env.for_server(&server.parse().unwrap()).map(str::to_owned)
    }

    #[test]
    fn https_servers_take_https_proxy_and_http_servers_http_proxy() {
        let e = env("");
        assert_eq!(
            proxied(&e, "https://api.eks.example:443").as_deref(),
            Some("http://proxy.corp:3128")
        );
        assert_eq!(
            proxied(&e, "http://api.eks.example").as_deref(),
            Some("http://plain.corp:3128")
        );
        let none = ProxyEnv::new(None, None, None);
        assert_eq!(proxied(&none, "https://api.eks.example"), None);
    }

    #[test]
    fn loopback_and_localhost_never_take_an_environment_proxy() {
        let e = env("");
        for server in [
            "https://127.0.0.1:6443",
            "https://127.9.9.9:6443",
            "https://localhost:6443",
            "https://[::1]:6443",
        ] {
            assert_eq!(proxied(&e, server), None, "{server}");
        }
    }

    #[test]
    fn no_proxy_names_domains_addresses_ranges_and_ports_as_go_does() {
        let e = env(" .svc, example.com,10.0.0.0/8, 192.168.1.5:6443 ,fd00::/8,api.other:8443");
        let direct = [
            "https://kubernetes.default.svc",
            "https://example.com",
            "https://eks.example.com:443",
            "https://10.100.0.1",
            "https://192.168.1.5:6443",
            "https://[fd00::1]:6443",
            "https://api.other:8443",
        ];
        let via_proxy = [
            // `.svc` matches subdomains only.
            "https://svc",
            // A suffix that is not a label boundary.
            "https://notexample.com",
            "https://11.0.0.1",
            // The entry names another port.
            "https://192.168.1.5:443",
            "https://api.other:6443",
            "https://[fe80::1]:6443",
        ];
        for server in direct {
            assert_eq!(proxied(&e, server), None, "{server} is exempt");
        }
        for server in via_proxy {
            assert!(proxied(&e, server).is_some(), "{server} takes the proxy");
        }
        assert_eq!(proxied(&env("*"), "https://anything.example"), None);
        assert_eq!(
            proxied(&env("*.EXAMPLE.com"), "https://a.example.com"),
            None,
            "case-insensitive, `*.` as a leading dot"
        );
    }
}
