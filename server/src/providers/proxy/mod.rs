//! Outbound HTTP proxies for the upstream client: which proxy an origin
//! uses (explicit, or `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` minus
//! `NO_PROXY`), and the `CONNECT` handshake that opens a tunnel through it
//! (`tunnel.rs`).
//!
//! Resolution happens once per client (its origin is fixed); the
//! environment is read into a [`ProxyEnv`] so the rules are testable
//! without touching the process environment.

mod tunnel;

use std::net::IpAddr;

use http::HeaderValue;

pub(crate) use tunnel::connect_tunnel;

/// Which proxy, if any, a [`Client`](super::client::Client) goes through.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum ProxyChoice {
    /// Connect to the upstream directly.
    #[default]
    Direct,
    /// Take the proxy from the environment when the client is built:
    /// `https_proxy`/`HTTPS_PROXY` for `https` upstreams,
    /// `http_proxy`/`HTTP_PROXY` for `http` ones, else
    /// `all_proxy`/`ALL_PROXY` (lowercase wins when both are set; an
    /// empty value counts as unset), unless `no_proxy`/`NO_PROXY` lists
    /// the upstream. See [`ProxyEnv::proxy_for`].
    Environment,
    /// Always use this proxy, `http://[user:pass@]host[:port]` (port 80
    /// by default; user and password percent-encoded). `NO_PROXY` does
    /// not apply.
    Url(String),
}

/// Never prints credentials: `Url` shows only the proxy's host and port.
impl std::fmt::Debug for ProxyChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyChoice::Direct => f.write_str("Direct"),
            ProxyChoice::Environment => f.write_str("Environment"),
            ProxyChoice::Url(url) => match ProxyUrl::parse(url) {
                Ok(p) => write!(f, "Url(http://{})", p.authority()),
                Err(_) => f.write_str("Url(<invalid>)"),
            },
        }
    }
}

/// The proxy variables of an environment (`None`: unset or empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyEnv {
    /// `https_proxy`, else `HTTPS_PROXY`.
    pub https_proxy: Option<String>,
    /// `http_proxy`, else `HTTP_PROXY`.
    pub http_proxy: Option<String>,
    /// `all_proxy`, else `ALL_PROXY`.
    pub all_proxy: Option<String>,
    /// `no_proxy`, else `NO_PROXY`.
    pub no_proxy: Option<String>,
}

/// A proxy taken from the environment, with the variable it came from
/// (for error messages: the value may hold credentials).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnvProxy<'a> {
    /// `HTTPS_PROXY`, `HTTP_PROXY` or `ALL_PROXY` (either case).
    pub variable: &'static str,
    /// The proxy URL.
    pub url: &'a str,
}

impl ProxyEnv {
    /// Reads the variables through `get` (e.g. `std::env::var`).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> ProxyEnv {
        let var = |name: &str| {
            [name.to_ascii_lowercase(), name.to_string()]
                .iter()
                .filter_map(|n| get(n))
                .find(|v| !v.trim().is_empty())
        };
        ProxyEnv {
            https_proxy: var("HTTPS_PROXY"),
            http_proxy: var("HTTP_PROXY"),
            all_proxy: var("ALL_PROXY"),
            no_proxy: var("NO_PROXY"),
        }
    }

    /// Reads the process environment.
    pub fn from_process() -> ProxyEnv {
        ProxyEnv::from_vars(|name| std::env::var(name).ok())
    }

    /// The proxy for an upstream at `host:port` (`https` or not), or
    /// `None` to connect directly.
    ///
    /// `NO_PROXY` is a comma-separated list of `*` (everything), host
    /// names (which also cover their subdomains, with or without a
    /// leading `.` or `*.`), IP addresses, CIDR blocks (`10.0.0.0/8`),
    /// each optionally with `:port` (`[v6]:port` for IPv6). Nothing is
    /// exempt unless listed: not even `localhost`.
    pub fn proxy_for(
        &self,
        https: bool,
        host: &str,
        port: u16,
    ) -> Option<EnvProxy<'_>> {
        if let Some(list) = &self.no_proxy
            && no_proxy_matches(list, host, port)
        {
            return None;
        }
        let (variable, own) = if https {
            ("HTTPS_PROXY", &self.https_proxy)
        } else {
            ("HTTP_PROXY", &self.http_proxy)
        };
        match (own, &self.all_proxy) {
            (Some(url), _) => Some(EnvProxy { variable, url: url.trim() }),
            (None, Some(url)) => {
                Some(EnvProxy { variable: "ALL_PROXY", url: url.trim() })
            }
            (None, None) => None,
        }
    }
}

/// Whether the `NO_PROXY` list `list` exempts `host:port`.
pub fn no_proxy_matches(list: &str, host: &str, port: u16) -> bool {
    let host = normalize_host(host);
    let host_ip = host.parse::<IpAddr>().ok();
    list.split(',').map(str::trim).filter(|e| !e.is_empty()).any(|entry| {
        if entry == "*" {
            return true;
        }
        let (name, entry_port) = split_entry(entry);
        if entry_port.is_some_and(|p| p != port) {
            return false;
        }
        let name = normalize_host(name);
        if let Some(ip) = host_ip {
            return match name.split_once('/') {
                Some((net, bits)) => in_cidr(ip, net, bits),
                None => name.parse::<IpAddr>().is_ok_and(|n| n == ip),
            };
        }
        let name = name.trim_start_matches("*.").trim_start_matches('.');
        !name.is_empty()
            && (host == name
                || host.strip_suffix(name).is_some_and(|h| h.ends_with('.')))
    })
}

/// Lowercase, without IPv6 brackets or a trailing root dot.
fn normalize_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// `name[:port]`, where a bare IPv6 address has no port and a bracketed
/// one may.
fn split_entry(entry: &str) -> (&str, Option<u16>) {
    if let Some(rest) = entry.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((addr, tail)) => {
                (addr, tail.strip_prefix(':').and_then(|p| p.parse().ok()))
            }
            None => (entry, None),
        };
    }
    match entry.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => match port.parse() {
            Ok(p) => (name, Some(p)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    }
}

fn in_cidr(ip: IpAddr, net: &str, bits: &str) -> bool {
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>())
    else {
        return false;
    };
    let prefix = |width: u32, a: u128, b: u128| {
        bits <= width && (bits == 0 || (a ^ b) >> (width - bits) == 0)
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            prefix(32, u32::from(a).into(), u32::from(b).into())
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            prefix(128, u128::from(a), u128::from(b))
        }
        _ => false,
    }
}

/// A parsed `http://[user:pass@]host[:port]` proxy URL.
#[derive(Clone)]
pub(crate) struct ProxyUrl {
    /// Without IPv6 brackets, for connecting.
    pub host: String,
    pub port: u16,
    /// `Basic …`, marked sensitive.
    pub authorization: Option<HeaderValue>,
}

/// What a proxy URL must look like; never echoes the URL (it may hold a
/// password).
const PROXY_URL_SHAPE: &str = "it must look like http://[user:pass@]host:port";

impl ProxyUrl {
    pub fn parse(url: &str) -> Result<ProxyUrl, String> {
        let url = url.trim();
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some(_) => {
                return Err(format!(
                    "only http:// proxies are supported ({PROXY_URL_SHAPE})"
                ));
            }
            None => url,
        };
        // The last `@` ends the user info, so a password may hold `/`,
        // `?` or `#` unencoded; the host ends at the first of them.
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let hostport =
            hostport.split(['/', '?', '#']).next().unwrap_or_default();
        let (host, port) = match split_entry(hostport) {
            (h, Some(p)) => (h, p),
            (h, None) if !h.contains(':') || hostport.starts_with('[') => {
                (h, 80)
            }
            _ => return Err(format!("invalid proxy port ({PROXY_URL_SHAPE})")),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let valid = |c: char| c.is_ascii_alphanumeric() || "-._:".contains(c);
        if host.is_empty() || !host.chars().all(valid) || port == 0 {
            return Err(format!("invalid proxy host ({PROXY_URL_SHAPE})"));
        }
        let authorization = match userinfo {
            None => None,
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                let mut creds = decode(user);
                creds.push(b':');
                creds.extend(decode(pass));
                let mut v =
                    HeaderValue::try_from(format!("Basic {}", base64(&creds)))
                        .map_err(|_| {
                            format!(
                                "invalid proxy credentials ({PROXY_URL_SHAPE})"
                            )
                        })?;
                v.set_sensitive(true);
                Some(v)
            }
        };
        Ok(ProxyUrl { host: host.to_string(), port, authorization })
    }

    /// `host:port` (IPv6 bracketed): safe to log.
    pub fn authority(&self) -> String {
        authority(&self.host, self.port)
    }
}

/// `host:port`, with an IPv6 host bracketed.
pub(crate) fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn decode(s: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(s).collect()
}

/// Standard base64 with padding (RFC 4648), for `Basic` credentials.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_matching() {
        // (list, host, port, exempt)
        let table: &[(&str, &str, u16, bool)] = &[
            ("*", "api.openai.com", 443, true),
            ("example.com", "example.com", 443, true),
            ("example.com", "api.example.com", 443, true),
            ("example.com", "notexample.com", 443, false),
            (".example.com", "example.com", 443, true),
            (".example.com", "api.example.com", 443, true),
            ("*.example.com", "a.b.example.com", 443, true),
            ("EXAMPLE.com", "Api.Example.COM.", 443, true),
            ("foo, example.com ,bar", "x.example.com", 80, true),
            ("example.com:8443", "example.com", 8443, true),
            ("example.com:8443", "example.com", 443, false),
            ("10.1.2.3", "10.1.2.3", 443, true),
            ("10.1.2.3", "10.1.2.4", 443, false),
            ("10.1.2.3:80", "10.1.2.3", 80, true),
            ("10.1.2.3:80", "10.1.2.3", 443, false),
            ("10.0.0.0/8", "10.200.3.4", 443, true),
            ("10.0.0.0/8", "11.0.0.1", 443, false),
            ("0.0.0.0/0", "192.168.1.1", 443, true),
            ("::1", "::1", 443, true),
            ("::1", "[::1]", 443, true),
            ("[::1]:8080", "::1", 8080, true),
            ("[::1]:8080", "::1", 8081, false),
            ("fd00::/8", "fd12::1", 443, true),
            ("fd00::/8", "fe80::1", 443, false),
            ("10.0.0.0/8", "example.com", 443, false),
            ("localhost", "localhost", 443, true),
            ("", "localhost", 443, false),
            ("example.com", "localhost", 443, false),
            ("example.com", "127.0.0.1", 443, false),
            ("127.0.0.1", "localhost", 443, false),
            (".", "example.com", 443, false),
        ];
        let wrong: Vec<_> = table
            .iter()
            .filter(|(list, host, port, want)| {
                no_proxy_matches(list, host, *port) != *want
            })
            .collect();
        assert!(wrong.is_empty(), "(list, host, port, exempt): {wrong:#?}");
    }

    fn env(vars: &[(&str, &str)]) -> ProxyEnv {
        ProxyEnv::from_vars(|name| {
            vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn environment_picks_the_variable_for_the_scheme() {
        let e = env(&[
            ("HTTPS_PROXY", "http://secure:3128"),
            ("http_proxy", "http://plain:3128"),
            ("ALL_PROXY", "http://all:3128"),
        ]);
        let https = e.proxy_for(true, "api.example.com", 443);
        assert_eq!(
            https,
            Some(EnvProxy {
                variable: "HTTPS_PROXY",
                url: "http://secure:3128"
            })
        );
        let http = e.proxy_for(false, "api.example.com", 80);
        assert_eq!(http.map(|p| p.url), Some("http://plain:3128"));

        let only_all = env(&[("all_proxy", "http://all:3128")]);
        let p = only_all.proxy_for(true, "h", 443);
        assert_eq!(
            p,
            Some(EnvProxy { variable: "ALL_PROXY", url: "http://all:3128" })
        );
        assert_eq!(env(&[]).proxy_for(true, "h", 443), None);
        let http_only = env(&[("HTTP_PROXY", "http://plain:3128")]);
        assert_eq!(http_only.proxy_for(true, "h", 443), None);
    }

    #[test]
    fn lowercase_wins_and_empty_counts_as_unset() {
        let e = env(&[
            ("https_proxy", "http://lower:1"),
            ("HTTPS_PROXY", "http://upper:1"),
            ("http_proxy", " "),
            ("HTTP_PROXY", "http://upper:2"),
        ]);
        assert_eq!(e.https_proxy.as_deref(), Some("http://lower:1"));
        assert_eq!(e.http_proxy.as_deref(), Some("http://upper:2"));
    }

    #[test]
    fn no_proxy_exempts_listed_hosts_only() {
        let e = env(&[
            ("HTTPS_PROXY", "http://p:3128"),
            ("no_proxy", "internal.corp,10.0.0.0/8"),
        ]);
        assert_eq!(e.proxy_for(true, "llm.internal.corp", 443), None);
        assert_eq!(e.proxy_for(true, "10.2.3.4", 443), None);
        assert!(e.proxy_for(true, "api.openai.com", 443).is_some());
        // Not implicitly exempt.
        assert!(e.proxy_for(true, "localhost", 443).is_some());
        assert!(e.proxy_for(true, "127.0.0.1", 443).is_some());
    }

    #[test]
    fn proxy_urls_parse_with_and_without_credentials() {
        let p = ProxyUrl::parse("http://proxy.corp:3128").expect("parses");
        assert_eq!((p.host.as_str(), p.port), ("proxy.corp", 3128));
        assert!(p.authorization.is_none());

        let p = ProxyUrl::parse("proxy.corp").expect("schemeless");
        assert_eq!((p.host.as_str(), p.port), ("proxy.corp", 80));

        let p = ProxyUrl::parse("HTTP://[::1]:8080/").expect("ipv6");
        assert_eq!((p.host.as_str(), p.port), ("::1", 8080));
        assert_eq!(p.authority(), "[::1]:8080");

        let p = ProxyUrl::parse("http://Aladdin:open%20sesame@p:1")
            .expect("credentials");
        let auth = p.authorization.expect("authorization");
        assert!(auth.is_sensitive());
        assert_eq!(auth, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");

        // The last `@` ends the user info.
        let p = ProxyUrl::parse("http://u:p@ss/w#rd@p:1").expect("parses");
        assert_eq!(p.host, "p");
        assert_eq!(
            p.authorization.expect("authorization"),
            format!("Basic {}", base64(b"u:p@ss/w#rd"))
        );
    }

    #[test]
    fn invalid_proxy_urls_are_refused_without_echoing_them() {
        for url in [
            "https://user:hunter2@p:3128",
            "socks5://user:hunter2@p:1080",
            "http://user:hunter2@:3128",
            "http://user:hunter2@p:notaport",
            "http://user:hunter2@p:0",
            "http://user:hunter2@p q:1",
        ] {
            let e = ProxyUrl::parse(url).err().unwrap_or_else(|| {
                panic!("{url} should be refused");
            });
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn debug_of_a_proxy_choice_hides_credentials() {
        let c = ProxyChoice::Url("http://user:hunter2@proxy:3128".into());
        assert_eq!(format!("{c:?}"), "Url(http://proxy:3128)");
        let c = ProxyChoice::Url("ftp://user:hunter2@proxy".into());
        assert_eq!(format!("{c:?}"), "Url(<invalid>)");
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, want) in vectors {
            assert_eq!(base64(input.as_bytes()), want, "{input:?}");
        }
    }
}
