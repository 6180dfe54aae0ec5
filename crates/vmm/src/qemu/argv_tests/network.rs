//! Networking on the command line: user-mode forwards, and TAP descriptors the
//! launcher inherited in place of TAP names.

use super::*;

#[test]
fn user_mode_networking_table() {
    use crate::spec::{HostForward, UserNetSpec};
    use std::net::Ipv4Addr;
    let fwd = |udp, host_addr, host_port, guest_port| HostForward {
        udp,
        host_addr,
        host_port,
        guest_port,
    };
    let cases: Vec<(Vec<HostForward>, MachineType, Result<&str, &str>)> = vec![
        (
            vec![],
            MachineType::Microvm,
            Ok("user,id=net-user,net=10.0.2.0/24"),
        ),
        (
            vec![
                fwd(false, None, 8080, 80),
                fwd(true, Some(Ipv4Addr::LOCALHOST), 5353, 53),
            ],
            MachineType::Pc,
            Ok(
                "user,id=net-user,net=10.0.2.0/24,hostfwd=tcp::8080-:80,hostfwd=udp:127.0.0.1:5353-:53",
            ),
        ),
        // The same host port on both protocols is fine; twice on one is not.
        (
            vec![fwd(false, None, 53, 53), fwd(true, None, 53, 53)],
            MachineType::Microvm,
            Ok("user,id=net-user,net=10.0.2.0/24,hostfwd=tcp::53-:53,hostfwd=udp::53-:53"),
        ),
        (
            vec![fwd(false, None, 80, 80), fwd(false, None, 80, 81)],
            MachineType::Microvm,
            Err("twice"),
        ),
        (
            vec![fwd(false, None, 0, 80)],
            MachineType::Microvm,
            Err("port 0"),
        ),
        (
            vec![fwd(false, None, 80, 0)],
            MachineType::Microvm,
            Err("port 0"),
        ),
    ];
    for (forwards, machine, want) in cases {
        let mut s = spec();
        s.user_net = Some(UserNetSpec {
            mac: "0a:62:0a:00:02:0f".into(),
            forwards: forwards.clone(),
        });
        match (render_with(&s, Accel::Tcg, machine), want) {
            (Ok(args), Ok(netdev)) => {
                assert_eq!(values(&args, "-netdev"), [netdev], "{forwards:?}");
                let suffix = if machine == MachineType::Pc {
                    "pci"
                } else {
                    "device"
                };
                assert!(
                    values(&args, "-device").contains(
                        &format!("virtio-net-{suffix},netdev=net-user,mac=0a:62:0a:00:02:0f")
                            .as_str()
                    ),
                    "{args:?}"
                );
            }
            (Err(e), Err(needle)) => assert!(e.to_string().contains(needle), "{e}"),
            (got, want) => panic!("{forwards:?}: got {got:?}, want {want:?}"),
        }
    }
    let mut s = spec();
    s.user_net = Some(UserNetSpec {
        mac: "nope".into(),
        forwards: vec![],
    });
    assert!(render_with(&s, Accel::Tcg, MachineType::Microvm).is_err());
}

#[test]
fn inherited_tap_descriptors_replace_ifname_and_must_match_the_nics() {
    let mut s = spec();
    for (id, tap) in [("eth0", "tap-vm1"), ("eth1", "tap-vm2")] {
        s.nics.push(NicSpec {
            id: id.into(),
            tap: tap.into(),
            mac: "52:54:00:00:00:01".into(),
        });
    }
    let paths = VmPaths::in_dir(&s.vm_dir);
    let input = |fds: &'static [i32]| ArgvInput {
        spec: &s,
        accel: Accel::Tcg,
        machine: MachineType::Microvm,
        kernel: &s.kernel,
        tsc_khz: Some(2_100_000),
        paths: &paths,
        seccomp: true,
        daemonize: false,
        tap_fds: Some(fds),
        incoming_fd: None,
        restore_ram: None,
    };
    let args = render(&input(&[37, 41])).unwrap();
    // No ifname=, script= or vnet_hdr= beside fd=: QEMU refuses them together.
    assert_eq!(
        values(&args, "-netdev"),
        ["tap,id=net-eth0,fd=37", "tap,id=net-eth1,fd=41"]
    );
    let err = render(&input(&[37])).unwrap_err().to_string();
    assert!(
        err.contains("1 TAP descriptors") && err.contains("2 network"),
        "{err}"
    );
    // The TAP name is still checked: it is what the descriptor was opened on.
    s.nics[1].tap = "tap/../x".into();
    let paths = VmPaths::in_dir(&s.vm_dir);
    let bad = render(&ArgvInput {
        spec: &s,
        accel: Accel::Tcg,
        machine: MachineType::Microvm,
        kernel: &s.kernel,
        tsc_khz: Some(2_100_000),
        paths: &paths,
        seccomp: true,
        daemonize: false,
        tap_fds: Some(&[37, 41]),
        incoming_fd: None,
        restore_ram: None,
    });
    assert!(bad.is_err());
}
