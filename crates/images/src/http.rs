//! HTTP(S) GETs for everything the images crate downloads (the Debian archive, catalog
//! files), with timeouts, TLS through rustls (with the Mozilla root store built in, so
//! it works on hosts without a CA bundle) and the proxy environment curl and apt users
//! already set: `HTTPS_PROXY`/`https_proxy` for https URLs, `HTTP_PROXY`/`http_proxy` for
//! http URLs, `ALL_PROXY`/`all_proxy` for both, and `NO_PROXY`/`no_proxy` to go direct.
//!
//! Integrity never rests on the transport: every caller checks what it fetched against
//! a digest it already trusts.

use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

/// Why a GET produced no body.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot fetch {url}: only http:// and https:// URLs are supported")]
    UnsupportedUrl { url: String },
    #[error("cannot fetch {url}: the proxy {proxy:?} from the environment is not usable: {reason}")]
    BadProxy {
        url: String,
        proxy: String,
        reason: String,
    },
    /// Connecting or reading failed.
    #[error("cannot fetch {url}{via}: {reason}")]
    Transport {
        url: String,
        /// ` through proxy …`, or empty.
        via: String,
        reason: String,
    },
    /// The server answered with an error status.
    #[error("cannot fetch {url}: the server answered {status} {reason}")]
    Status {
        url: String,
        status: u16,
        reason: String,
    },
}

impl HttpError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, HttpError::Status { status: 404, .. })
    }
}

/// A response being streamed.
pub struct Response {
    pub status: u16,
    /// `Content-Length`, when the server sent one.
    pub length: Option<u64>,
    /// For a 206: the first byte offset of the body.
    pub range_start: Option<u64>,
    pub body: Box<dyn Read + Send + Sync>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("length", &self.length)
            .field("range_start", &self.range_start)
            .finish_non_exhaustive()
    }
}

/// The proxy settings of the environment, read once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyEnv {
    pub http: Option<String>,
    pub https: Option<String>,
    pub no_proxy: Vec<String>,
}

impl ProxyEnv {
    /// Read the variables; lowercase ones win over uppercase, as in curl.
    pub fn from_env() -> Self {
        let var = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
        };
        let all = var(&["all_proxy", "ALL_PROXY"]);
        Self {
            http: var(&["http_proxy", "HTTP_PROXY"]).or_else(|| all.clone()),
            https: var(&["https_proxy", "HTTPS_PROXY"]).or(all),
            no_proxy: var(&["no_proxy", "NO_PROXY"])
                .map(|v| parse_no_proxy(&v))
                .unwrap_or_default(),
        }
    }

    /// The proxy to use for `url`, or `None` to connect directly.
    pub fn proxy_for(&self, url: &str) -> Option<&str> {
        let (scheme, host) = scheme_and_host(url)?;
        let proxy = match scheme {
            "https" => self.https.as_deref(),
            _ => self.http.as_deref(),
        }?;
        (!bypass(&self.no_proxy, &host)).then_some(proxy)
    }
}

fn parse_no_proxy(value: &str) -> Vec<String> {
    value
        .split([',', ' '])
        .map(|e| e.trim().trim_start_matches('.').to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .collect()
}

/// curl's rules: `*` matches everything; a name matches itself and its subdomains; an
/// IP address matches itself; `ADDR/BITS` matches a network.
fn bypass(no_proxy: &[String], host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    let host_ip: Option<IpAddr> = host.parse().ok();
    no_proxy.iter().any(|entry| {
        if entry == "*" {
            return true;
        }
        if let (Some(ip), Some((net, bits))) = (host_ip, entry.split_once('/')) {
            return in_network(ip, net, bits);
        }
        // A port in the entry (`host:8080`) is not compared, like curl before 7.86.
        let name = entry
            .strip_prefix('[')
            .and_then(|e| e.split_once(']').map(|(h, _)| h))
            .unwrap_or_else(|| match entry.rsplit_once(':') {
                Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.contains(':') => {
                    h
                }
                _ => entry,
            });
        host == name
            || (host_ip.is_none()
                && host.len() > name.len()
                && host.ends_with(name)
                && host.as_bytes()[host.len() - name.len() - 1] == b'.')
    })
}

fn in_network(ip: IpAddr, net: &str, bits: &str) -> bool {
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// `("https", "deb.debian.org")` from a URL; IPv6 hosts without their brackets.
fn scheme_and_host(url: &str) -> Option<(&str, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split_once(']')?.0
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    (!host.is_empty()).then(|| (scheme, host.to_string()))
}

/// An HTTP client: one connection pool per proxy.
pub struct HttpClient {
    connect_timeout: Duration,
    read_timeout: Duration,
    proxies: ProxyEnv,
    /// Keyed by proxy URL; `""` is direct.
    agents: Mutex<HashMap<String, ureq::Agent>>,
}

impl HttpClient {
    /// A client with the environment's proxy settings.
    pub fn new(connect_timeout: Duration, read_timeout: Duration) -> Self {
        Self::with_proxies(connect_timeout, read_timeout, ProxyEnv::from_env())
    }

    pub fn with_proxies(
        connect_timeout: Duration,
        read_timeout: Duration,
        proxies: ProxyEnv,
    ) -> Self {
        Self {
            connect_timeout,
            read_timeout,
            proxies,
            agents: Mutex::new(HashMap::new()),
        }
    }

    fn agent(&self, url: &str) -> Result<(ureq::Agent, String), HttpError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(HttpError::UnsupportedUrl {
                url: url.to_string(),
            });
        }
        let proxy = self.proxies.proxy_for(url).unwrap_or("").to_string();
        let mut agents = self
            .agents
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(agent) = agents.get(&proxy) {
            return Ok((agent.clone(), proxy));
        }
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(self.connect_timeout)
            .timeout_read(self.read_timeout)
            .user_agent(concat!("banger/", env!("CARGO_PKG_VERSION")));
        if !proxy.is_empty() {
            let parsed = ureq::Proxy::new(&proxy).map_err(|e| HttpError::BadProxy {
                url: url.to_string(),
                proxy: proxy.clone(),
                reason: e.to_string(),
            })?;
            builder = builder.proxy(parsed);
        }
        let agent = builder.build();
        agents.insert(proxy.clone(), agent.clone());
        Ok((agent, proxy))
    }

    /// Start a GET; the body is streamed.
    pub fn get(&self, url: &str) -> Result<Response, HttpError> {
        self.get_from(url, 0)
    }

    /// A GET of the bytes from `offset` on. A server that ignores the range answers 200
    /// with the whole body (`range_start` is then `None`): the caller starts over.
    pub fn get_from(&self, url: &str, offset: u64) -> Result<Response, HttpError> {
        let (agent, proxy) = self.agent(url)?;
        let mut request = agent.get(url);
        if offset > 0 {
            request = request.set("Range", &format!("bytes={offset}-"));
        }
        match request.call() {
            Ok(response) => {
                let status = response.status();
                let length = response
                    .header("Content-Length")
                    .and_then(|v| v.trim().parse().ok());
                let range_start = (status == 206)
                    .then(|| {
                        response
                            .header("Content-Range")
                            .and_then(content_range_start)
                    })
                    .flatten();
                Ok(Response {
                    status,
                    length,
                    range_start,
                    body: response.into_reader(),
                })
            }
            Err(ureq::Error::Status(status, response)) => Err(HttpError::Status {
                url: url.to_string(),
                status,
                reason: response.status_text().to_string(),
            }),
            Err(ureq::Error::Transport(transport)) => Err(HttpError::Transport {
                url: url.to_string(),
                via: if proxy.is_empty() {
                    String::new()
                } else {
                    format!(" through proxy {proxy}")
                },
                reason: transport.to_string(),
            }),
        }
    }
}

/// `bytes 100-199/200` → 100.
fn content_range_start(value: &str) -> Option<u64> {
    value
        .trim()
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(http: Option<&str>, https: Option<&str>, no_proxy: &str) -> ProxyEnv {
        ProxyEnv {
            http: http.map(str::to_string),
            https: https.map(str::to_string),
            no_proxy: parse_no_proxy(no_proxy),
        }
    }

    #[test]
    fn the_scheme_picks_the_proxy() {
        let e = env(Some("http://p:3128"), Some("http://sp:3128"), "");
        assert_eq!(
            e.proxy_for("http://deb.debian.org/x"),
            Some("http://p:3128")
        );
        assert_eq!(
            e.proxy_for("https://deb.debian.org/x"),
            Some("http://sp:3128")
        );
        let e = env(Some("http://p:3128"), None, "");
        assert_eq!(e.proxy_for("https://deb.debian.org/x"), None);
    }

    #[test]
    fn no_proxy_follows_curl() {
        let e = env(
            Some("http://p"),
            None,
            ".example.com, localhost,10.0.0.0/8 ,[::1],mirror:8080",
        );
        for direct in [
            "http://example.com/",
            "http://a.b.example.com:81/x",
            "http://LOCALHOST/",
            "http://10.1.2.3/",
            "http://[::1]:5000/v2/",
            "http://mirror/debian",
            "http://user:pw@example.com/",
        ] {
            assert_eq!(e.proxy_for(direct), None, "{direct}");
        }
        for proxied in [
            "http://notexample.com/",
            "http://example.com.evil/",
            "http://11.0.0.1/",
            "http://127.0.0.1/",
            "http://[::2]/",
        ] {
            assert_eq!(e.proxy_for(proxied), Some("http://p"), "{proxied}");
        }
        let all = env(Some("http://p"), None, "*");
        assert_eq!(all.proxy_for("http://anything/"), None);
    }

    #[test]
    fn hosts_are_parsed_from_urls() {
        assert_eq!(
            scheme_and_host("https://u:p@[fe80::1]:443/a?b"),
            Some(("https", "fe80::1".to_string()))
        );
        assert_eq!(
            scheme_and_host("http://h:80#frag"),
            Some(("http", "h".to_string()))
        );
        assert_eq!(scheme_and_host("http:///path"), None);
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
    }
}
