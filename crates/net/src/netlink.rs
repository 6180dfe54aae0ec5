//! Links, addresses and routes over rtnetlink.
//!
//! [`Netlink`] is blocking: it owns a current-thread tokio runtime and drives rtnetlink's
//! futures to completion, so the helper's plain threads can use it. (Inside an async
//! program, call it from `spawn_blocking`.) Every request goes to the network namespace
//! of the thread that opened it.

use std::net::{IpAddr, Ipv4Addr};

use futures_util::TryStreamExt;
use rtnetlink::packet_core::Nla;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteType};
use rtnetlink::{Handle, LinkBridge, LinkUnspec, RouteMessageBuilder};

use crate::NetError;

/// `IFLA_TUN_OWNER` and `IFLA_TUN_TYPE` inside a tun link's `IFLA_INFO_DATA`.
const IFLA_TUN_OWNER: u16 = 1;
const IFLA_TUN_TYPE: u16 = 3;
const IFF_TAP: u8 = 2;
/// The kernel's "no owner" uid.
const NO_OWNER: u32 = u32::MAX;

/// What a link is, as far as banger cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKind {
    Bridge,
    /// A TAP device and its owner uid (`None`: no owner set).
    Tap {
        owner: Option<u32>,
    },
    Other(String),
}

impl LinkKind {
    pub fn describe(&self) -> String {
        match self {
            LinkKind::Bridge => "a bridge".into(),
            LinkKind::Tap { owner: Some(uid) } => format!("a TAP device owned by uid {uid}"),
            LinkKind::Tap { owner: None } => "a TAP device with no owner".into(),
            LinkKind::Other(kind) => format!("a {kind} device"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub kind: LinkKind,
    /// Index of the bridge it is attached to.
    pub controller: Option<u32>,
    pub up: bool,
}

/// An IPv4 route: destination prefix and output interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub destination: Ipv4Addr,
    pub prefix: u8,
    pub oif: Option<u32>,
    pub table: u32,
}

pub struct Netlink {
    rt: tokio::runtime::Runtime,
    handle: Handle,
}

fn failed(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetError {
    let what = what.into();
    move |e| {
        let source = match &e {
            rtnetlink::Error::NetlinkError(msg) => msg.to_io(),
            other => std::io::Error::other(other.to_string()),
        };
        NetError::Netlink { what, source }
    }
}

/// Whether a netlink error is "no such device".
fn is_enodev(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(msg) if msg.raw_code() == -libc::ENODEV)
}

impl Netlink {
    pub fn open() -> Result<Netlink, NetError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(NetError::NetlinkSocket)?;
        let (connection, handle, _) = {
            let _guard = rt.enter();
            rtnetlink::new_connection().map_err(NetError::NetlinkSocket)?
        };
        rt.spawn(connection);
        Ok(Netlink { rt, handle })
    }

    /// The link called `name`, if there is one.
    pub fn link(&self, name: &str) -> Result<Option<Link>, NetError> {
        let mut req = Box::pin(
            self.handle
                .link()
                .get()
                .match_name(name.to_string())
                .execute(),
        );
        match self.rt.block_on(req.try_next()) {
            Ok(Some(msg)) => Ok(Some(to_link(msg))),
            Ok(None) => Ok(None),
            Err(e) if is_enodev(&e) => Ok(None),
            Err(e) => Err(failed(format!("looking up {name}"))(e)),
        }
    }

    /// Every link.
    pub fn links(&self) -> Result<Vec<Link>, NetError> {
        let req = self.handle.link().get().execute();
        let msgs: Vec<LinkMessage> = self
            .rt
            .block_on(req.try_collect())
            .map_err(failed("listing links"))?;
        Ok(msgs.into_iter().map(to_link).collect())
    }

    /// Create the bridge `name` (up).
    pub fn create_bridge(&self, name: &str) -> Result<(), NetError> {
        let req = self
            .handle
            .link()
            .add(LinkBridge::new(name).build())
            .execute();
        self.rt
            .block_on(req)
            .map_err(failed(format!("creating bridge {name}")))
    }

    pub fn delete_link(&self, link: &Link) -> Result<(), NetError> {
        let req = self.handle.link().del(link.index).execute();
        match self.rt.block_on(req) {
            Err(e) if is_enodev(&e) => Ok(()),
            other => other.map_err(failed(format!("deleting {}", link.name))),
        }
    }

    /// Attach `link` to `bridge` (when given) and bring it up.
    pub fn attach_and_up(&self, link: &Link, bridge: Option<&Link>) -> Result<(), NetError> {
        let mut msg = LinkUnspec::new_with_index(link.index).up();
        if let Some(bridge) = bridge {
            msg = msg.controller(bridge.index);
        }
        let req = self.handle.link().set(msg.build()).execute();
        self.rt.block_on(req).map_err(failed(format!(
            "attaching {} and bringing it up",
            link.name
        )))
    }

    /// The IPv4 addresses of `link`, as (address, prefix).
    pub fn ipv4_addresses(&self, link: &Link) -> Result<Vec<(Ipv4Addr, u8)>, NetError> {
        let req = self
            .handle
            .address()
            .get()
            .set_link_index_filter(link.index)
            .execute();
        let msgs: Vec<_> = self
            .rt
            .block_on(req.try_collect())
            .map_err(failed(format!("listing the addresses of {}", link.name)))?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| {
                let prefix = m.header.prefix_len;
                m.attributes.into_iter().find_map(|a| match a {
                    AddressAttribute::Local(IpAddr::V4(ip)) => Some((ip, prefix)),
                    _ => None,
                })
            })
            .collect())
    }

    pub fn add_ipv4_address(
        &self,
        link: &Link,
        addr: Ipv4Addr,
        prefix: u8,
    ) -> Result<(), NetError> {
        let req = self
            .handle
            .address()
            .add(link.index, IpAddr::V4(addr), prefix)
            .execute();
        self.rt
            .block_on(req)
            .map_err(failed(format!("adding {addr}/{prefix} to {}", link.name)))
    }

    /// Every IPv4 unicast route, from every routing table except `local`.
    pub fn ipv4_routes(&self) -> Result<Vec<Route>, NetError> {
        let req = self
            .handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute();
        let msgs: Vec<_> = self
            .rt
            .block_on(req.try_collect())
            .map_err(failed("listing routes"))?;
        Ok(msgs
            .into_iter()
            .filter(|m| m.header.kind == RouteType::Unicast)
            .map(|m| {
                let mut route = Route {
                    destination: Ipv4Addr::UNSPECIFIED,
                    prefix: m.header.destination_prefix_length,
                    oif: None,
                    table: u32::from(m.header.table),
                };
                for attr in m.attributes {
                    match attr {
                        RouteAttribute::Destination(RouteAddress::Inet(ip)) => {
                            route.destination = ip
                        }
                        RouteAttribute::Oif(i) => route.oif = Some(i),
                        RouteAttribute::Table(t) => route.table = t,
                        _ => {}
                    }
                }
                route
            })
            .filter(|r| r.table != 255)
            .collect())
    }
}

fn to_link(msg: LinkMessage) -> Link {
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        kind: LinkKind::Other("network".into()),
        controller: None,
        up: msg.header.flags.contains(LinkFlags::Up),
    };
    let mut tun: Option<(Option<u32>, Option<u8>)> = None;
    for attr in msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => link.name = name,
            LinkAttribute::Controller(i) => link.controller = Some(i),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(InfoKind::Bridge) => link.kind = LinkKind::Bridge,
                        LinkInfo::Kind(InfoKind::Tun) => tun = Some(tun.unwrap_or((None, None))),
                        LinkInfo::Kind(other) => link.kind = LinkKind::Other(other.to_string()),
                        LinkInfo::Data(InfoData::Tun(nlas)) => {
                            let (mut owner, mut kind) = (None, None);
                            for nla in nlas {
                                let mut value = vec![0u8; nla.value_len()];
                                nla.emit_value(&mut value);
                                match (nla.kind(), value.as_slice()) {
                                    (IFLA_TUN_OWNER, [a, b, c, d]) => {
                                        let uid = u32::from_ne_bytes([*a, *b, *c, *d]);
                                        owner = (uid != NO_OWNER).then_some(uid);
                                    }
                                    (IFLA_TUN_TYPE, [t]) => kind = Some(*t),
                                    _ => {}
                                }
                            }
                            tun = Some((owner, kind));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if let Some((owner, kind)) = tun {
        link.kind = match kind {
            Some(IFF_TAP) | None => LinkKind::Tap { owner },
            Some(_) => LinkKind::Other("tun".into()),
        };
    }
    link
}
