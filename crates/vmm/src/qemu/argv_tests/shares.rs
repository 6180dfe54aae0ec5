//! Shares on the command line: shared memory and one vhost-user device each, and the
//! tags refused.

use super::*;

#[test]
fn shares_need_shared_memory_and_one_vhost_user_device_each() {
    use crate::spec::GuestMemory;
    use crate::virtiofs::ShareSpec;
    let share = |i: usize, ro: bool| ShareSpec {
        tag: ShareSpec::tag_for(i),
        host_dir: PathBuf::from(format!("/home/me/dir {i}")),
        read_only: ro,
    };
    // (machine, shares, asked memory) -> (-M, -object memory, fs devices)
    type Case = (
        MachineType,
        Vec<ShareSpec>,
        GuestMemory,
        &'static str,
        bool,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            MachineType::Microvm,
            vec![],
            GuestMemory::Private,
            "microvm,memory-backend=mem",
            false,
            "",
        ),
        (
            MachineType::Microvm,
            vec![share(0, false), share(1, true)],
            GuestMemory::Private,
            "microvm,memory-backend=mem",
            true,
            "vhost-user-fs-device",
        ),
        (
            MachineType::Pc,
            vec![share(0, false)],
            GuestMemory::Private,
            "pc,memory-backend=mem",
            true,
            "vhost-user-fs-pci",
        ),
        (
            MachineType::Microvm,
            vec![],
            GuestMemory::SharedMemfd,
            "microvm,memory-backend=mem",
            true,
            "",
        ),
    ];
    for (machine, shares, memory, want_m, want_memfd, device) in cases {
        let mut s = spec();
        s.shares = shares.clone();
        s.memory = memory;
        let args = render_with(&s, Accel::Tcg, machine).unwrap();
        assert_eq!(values(&args, "-M"), [want_m], "{shares:?}");
        let memfd: Vec<&str> = values(&args, "-object")
            .into_iter()
            .filter(|o| o.starts_with("memory-backend-memfd"))
            .collect();
        match want_memfd {
            true => assert_eq!(memfd, ["memory-backend-memfd,id=mem,size=512M,share=on"]),
            false => assert!(memfd.is_empty(), "{memfd:?}"),
        }
        let devices: Vec<&str> = values(&args, "-device")
            .into_iter()
            .filter(|d| d.starts_with("vhost-user-fs"))
            .collect();
        let want: Vec<String> = shares
            .iter()
            .map(|sh| format!("{device},chardev=fs-{},tag={}", sh.tag, sh.tag))
            .collect();
        assert_eq!(devices, want);
        for sh in &shares {
            let chardev = format!(
                "socket,id=fs-{},path=/state/vms/vm1/{}.sock",
                sh.tag, sh.tag
            );
            assert!(
                values(&args, "-chardev").contains(&chardev.as_str()),
                "{args:?}"
            );
        }
    }
}

#[test]
fn bad_or_duplicate_share_tags_are_refused() {
    use crate::virtiofs::ShareSpec;
    for tags in [
        vec!["bangerfs0", "bangerfs0"],
        vec!["bad tag"],
        vec![&"x".repeat(37)[..]],
    ] {
        let mut s = spec();
        s.shares = tags
            .iter()
            .map(|t| ShareSpec {
                tag: (*t).to_string(),
                host_dir: PathBuf::from("/src"),
                read_only: false,
            })
            .collect();
        let err = render_with(&s, Accel::Tcg, MachineType::Microvm).unwrap_err();
        assert!(err.to_string().contains("tag"), "{tags:?}: {err}");
    }
}
