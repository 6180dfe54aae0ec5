//! Choosing the bridge's subnet so it does not collide with the host's networks.

use std::net::Ipv4Addr;

use banger_helper_proto::Subnet;

use crate::netlink::Route;

/// Where the default subnets are taken from: `10.213.0.0/24`, then `10.213.1.0/24`, ….
const AUTO_BASE: [u8; 2] = [10, 213];
const AUTO_PREFIX: u8 = 24;

/// Routes that would make `subnet` ambiguous: those overlapping it, other than the
/// default route and routes through the bridge itself (`own_bridge`, its ifindex).
pub fn conflicts<'a>(
    subnet: &Subnet,
    routes: &'a [Route],
    own_bridge: Option<u32>,
) -> Vec<&'a Route> {
    routes
        .iter()
        .filter(|r| r.prefix > 0)
        .filter(|r| own_bridge.is_none() || r.oif != own_bridge)
        .filter(|r| subnet.overlaps(r.destination, r.prefix))
        .collect()
}

/// The first `10.213.N.0/24` that overlaps none of `routes`; `None` if all 256 do.
pub fn choose_default(routes: &[Route], own_bridge: Option<u32>) -> Option<Subnet> {
    (0..=255u8).find_map(|n| {
        let subnet =
            Subnet::new(Ipv4Addr::new(AUTO_BASE[0], AUTO_BASE[1], n, 0), AUTO_PREFIX).ok()?;
        conflicts(&subnet, routes, own_bridge)
            .is_empty()
            .then_some(subnet)
    })
}

#[cfg(test)]
mod tests {
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
    fn default_skips_taken_ranges() {
        assert_eq!(
            choose_default(&[], None).unwrap().to_string(),
            "10.213.0.0/24"
        );
        let routes = [
            route([0, 0, 0, 0], 0, 2),
            route([10, 213, 0, 0], 24, 3),
            route([10, 213, 1, 128], 25, 4),
        ];
        assert_eq!(
            choose_default(&routes, None).unwrap().to_string(),
            "10.213.2.0/24"
        );
        // The bridge's own route does not count against it.
        assert_eq!(
            choose_default(&routes, Some(3)).unwrap().to_string(),
            "10.213.0.0/24"
        );
        assert!(choose_default(&[route([10, 0, 0, 0], 8, 5)], None).is_none());
    }

    #[test]
    fn conflicts_name_the_overlapping_routes() {
        let subnet: Subnet = "192.168.1.0/24".parse().unwrap();
        let routes = [
            route([192, 168, 0, 0], 16, 2),
            route([192, 168, 2, 0], 24, 2),
        ];
        let found = conflicts(&subnet, &routes, None);
        assert_eq!(found, vec![&routes[0]]);
    }
}
