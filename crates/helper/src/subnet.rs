//! The owner's bridge subnet, with its provenance — one place for doctor and the daemon.

use banger_config::{Config, Provenance, Resolved};
use banger_helper_proto::Subnet;
use banger_net::netlink::Route;
use banger_net::subnet::{choose_default, conflicts};

/// When nothing else decides (the host's routes could not be read).
pub const BUILTIN_SUBNET: &str = "10.213.0.0/24";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubnetError {
    #[error(
        "every 10.213.N.0/24 overlaps a route of this host; set network.subnet in config.toml to a free private subnet"
    )]
    NoneFree,
}

/// The subnet the owner's bridge uses or will use:
/// * the bridge's own, when it exists (`auto`; a configured one takes effect when the
///   bridge is next created — `configured_differs` says so);
/// * `network.subnet` (`config`);
/// * the first `10.213.N.0/24` no host route overlaps (`auto`), or [`BUILTIN_SUBNET`]
///   when the routes are unknown (`builtin`).
pub fn resolve_subnet(
    config: &Config,
    bridge: Option<Subnet>,
    routes: Option<&[Route]>,
    own_bridge: Option<u32>,
) -> Result<Resolved<Subnet>, SubnetError> {
    if let Some(subnet) = bridge {
        let source = match config.network.subnet {
            Some(configured) if configured == subnet => Provenance::Config,
            _ => Provenance::Auto,
        };
        return Ok(Resolved::new(subnet, source));
    }
    if let Some(subnet) = config.network.subnet {
        return Ok(Resolved::new(subnet, Provenance::Config));
    }
    match routes {
        Some(routes) => choose_default(routes, own_bridge)
            .map(|s| Resolved::new(s, Provenance::Auto))
            .ok_or(SubnetError::NoneFree),
        None => Ok(Resolved::new(builtin(), Provenance::Builtin)),
    }
}

fn builtin() -> Subnet {
    // A constant that parses: checked by the tests below.
    BUILTIN_SUBNET
        .parse()
        .unwrap_or_else(|_| unreachable!("BUILTIN_SUBNET is a valid subnet"))
}

/// The host routes `subnet` overlaps, as `DEST/PREFIX`, other than the bridge's own.
pub fn clashes(subnet: &Subnet, routes: &[Route], own_bridge: Option<u32>) -> Vec<String> {
    conflicts(subnet, routes, own_bridge)
        .iter()
        .map(|r| format!("{}/{}", r.destination, r.prefix))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn route(dest: [u8; 4], prefix: u8, oif: u32) -> Route {
        Route {
            destination: Ipv4Addr::from(dest),
            prefix,
            oif: Some(oif),
            table: 254,
        }
    }

    #[test]
    fn provenance_in_every_case() {
        let none = Config::default();
        let mut configured = Config::default();
        configured.network.subnet = Some("192.168.50.0/24".parse().unwrap());
        let taken = [route([10, 213, 0, 0], 24, 3)];

        let r = resolve_subnet(&none, None, Some(&taken), None).unwrap();
        assert_eq!(
            (r.value.to_string(), r.source),
            ("10.213.1.0/24".into(), Provenance::Auto)
        );
        let r = resolve_subnet(&none, None, None, None).unwrap();
        assert_eq!(
            (r.value.to_string(), r.source),
            (BUILTIN_SUBNET.into(), Provenance::Builtin)
        );
        let r = resolve_subnet(&configured, None, Some(&taken), None).unwrap();
        assert_eq!(r.source, Provenance::Config);
        // An existing bridge wins: that is what guests are on.
        let on: Subnet = "10.213.7.0/24".parse().unwrap();
        let r = resolve_subnet(&configured, Some(on), None, None).unwrap();
        assert_eq!((r.value, r.source), (on, Provenance::Auto));
        let r = resolve_subnet(&none, Some(on), None, None).unwrap();
        assert_eq!(r.source, Provenance::Auto);

        let everything = [route([10, 0, 0, 0], 8, 2)];
        assert_eq!(
            resolve_subnet(&none, None, Some(&everything), None),
            Err(SubnetError::NoneFree)
        );
        assert_eq!(
            clashes(&"10.5.0.0/16".parse().unwrap(), &everything, None),
            ["10.0.0.0/8"]
        );
    }
}
