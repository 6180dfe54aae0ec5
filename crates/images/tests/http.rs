//! The HTTP client against real sockets: proxies from the environment's settings,
//! NO_PROXY, ranged GETs, and https attempted (not refused).

use crate::support;

use std::io::Read;
use std::time::Duration;

use banger_images::http::{HttpClient, HttpError, ProxyEnv};
use support::http::Server;

fn client(proxies: ProxyEnv) -> HttpClient {
    HttpClient::with_proxies(Duration::from_secs(5), Duration::from_secs(5), proxies)
}

fn body(mut r: banger_images::http::Response) -> Vec<u8> {
    let mut v = Vec::new();
    r.body.read_to_end(&mut v).unwrap();
    v
}

#[test]
fn http_urls_go_through_the_proxy_unless_no_proxy_says_otherwise() {
    // The "proxy" is our file server: a proxied GET arrives with the absolute URL as
    // its target, which is how we know it went through it.
    let proxy = Server::start();
    proxy.put("http://mirror.invalid/debian/file", "via proxy");
    let env = ProxyEnv {
        http: Some(proxy.url()),
        https: None,
        no_proxy: vec!["localhost".into()],
    };
    let got = body(
        client(env.clone())
            .get("http://mirror.invalid/debian/file")
            .unwrap(),
    );
    assert_eq!(got, b"via proxy");
    assert_eq!(proxy.hits("http://mirror.invalid/debian/file"), 1);

    // NO_PROXY: straight to the origin, the proxy sees nothing.
    let origin = Server::start();
    origin.put("/x", "direct");
    let mut env = env;
    env.no_proxy = vec!["127.0.0.1".into()];
    let got = body(client(env).get(&format!("{}/x", origin.url())).unwrap());
    assert_eq!(got, b"direct");
    assert_eq!(proxy.total_hits(), 1);
}

#[test]
fn a_dead_proxy_is_named_in_the_error() {
    let env = ProxyEnv {
        http: Some("http://127.0.0.1:9".into()),
        https: None,
        no_proxy: Vec::new(),
    };
    let err = client(env).get("http://mirror.invalid/x").unwrap_err();
    assert!(matches!(err, HttpError::Transport { .. }), "{err:?}");
    assert!(
        err.to_string().contains("through proxy http://127.0.0.1:9"),
        "{err}"
    );
}

#[test]
fn ranged_gets_resume_and_statuses_are_errors() {
    let s = Server::start();
    s.put("/blob", "0123456789");
    let c = client(ProxyEnv::default());
    let r = c.get_from(&format!("{}/blob", s.url()), 4).unwrap();
    assert_eq!((r.status, r.range_start, r.length), (206, Some(4), Some(6)));
    assert_eq!(body(r), b"456789");
    let r = c.get_from(&format!("{}/blob", s.url()), 0).unwrap();
    assert_eq!((r.status, r.range_start), (200, None));
    let err = c.get(&format!("{}/missing", s.url())).err().unwrap();
    assert!(err.is_not_found(), "{err}");
    let err = c.get("ftp://host/x").err().unwrap();
    assert!(matches!(err, HttpError::UnsupportedUrl { .. }), "{err}");
}

#[test]
fn https_is_spoken_not_refused() {
    // A plain-HTTP server answering a TLS handshake: the client must try TLS and fail
    // in the handshake, which proves https URLs are accepted.
    let s = Server::start();
    let url = s.url().replace("http://", "https://") + "/x";
    let err = client(ProxyEnv::default()).get(&url).err().unwrap();
    assert!(matches!(err, HttpError::Transport { .. }), "{err:?}");
}
