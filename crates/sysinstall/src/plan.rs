//! What an install consists of: who owns it and where every file goes. Built once from
//! the command line and the environment, then rendered and applied.

use std::path::{Path, PathBuf};

use banger_config::InstallMeta;
use banger_system::cgroup::CgroupLayout;

use crate::SysInstallError;
use crate::jail::{HelperPosture, HelperUnit, JailBinaries, JailRequest};

/// Everything `banger system install` decides before it writes anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallPlan {
    pub owner_user: String,
    pub owner_uid: u32,
    pub owner_gid: u32,
    /// The banger version and build being installed.
    pub version: String,
    pub build: String,
    /// Where the installed binaries go: `PREFIX/bin/banger`, `PREFIX/lib/banger/banger-agent`.
    pub prefix: PathBuf,
    /// `/etc/banger` (install.toml lives here).
    pub etc_dir: PathBuf,
    /// `/etc/systemd/system`.
    pub unit_dir: PathBuf,
    /// The daemon's state and runtime roots (`/var/lib/banger`, `/run/banger`).
    pub state_dir: PathBuf,
    pub runtime_dir: PathBuf,
    /// The helper's own runtime directory (`/run/banger-helper`).
    pub helper_runtime_dir: PathBuf,
    /// The owner's banger config directory (`~/.config/banger`): config.toml, the SSH key,
    /// the rendered ssh_config.
    pub owner_config_dir: PathBuf,
    /// The owner's home directory, when the daemon may write it ([`shareable_home`]): a
    /// read-write share of a project in it is written by the owner's `virtiofsd`, which
    /// runs in the daemon's sandbox. `None` leaves the whole home read-only (then only
    /// the config directory above is writable, and read-write live shares are refused).
    pub owner_home: Option<PathBuf>,
    /// Whether systemd is asked to act (reload, enable, start, restart) and the sockets
    /// waited for: [`InstallPlan::resolve`] sets it only for the real system, never under
    /// a moved root.
    pub manage_services: bool,
    /// How long the services get to bring their sockets up.
    pub socket_timeout: std::time::Duration,
    /// Whether the helper jails Firecracker, with which binaries (`None`: network only).
    pub jail: Option<JailBinaries>,
    /// Why that posture was chosen, in a sentence (printed by install and `--dry-run`).
    pub posture_why: String,
    /// The host's cgroup layout (`banger_system::cgroup`), which a jailing helper's unit
    /// is rendered for; recorded in install.toml. `None`: it mounts neither layout.
    pub cgroup: Option<CgroupLayout>,
}

/// The default of [`InstallPlan::socket_timeout`]: generous, a loaded host may take a while
/// to start a daemon that reconciles its VMs first.
pub const SOCKET_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// What the command line chose.
#[derive(Debug, Clone)]
pub struct PlanRequest<'a> {
    pub owner: &'a str,
    pub prefix: &'a Path,
    pub version: &'a str,
    pub build: &'a str,
    /// Whether the helper should jail Firecracker ([`crate::jail::choose`]).
    pub jail: JailRequest,
}

impl InstallPlan {
    /// The plan for this host: the owner looked up in the user database, the system
    /// layout with its overrides (`BANGER_ETC_DIR`, `BANGER_STATE_DIR`,
    /// `BANGER_RUNTIME_DIR`, `BANGER_SYSTEMD_DIR`, and `BANGER_CONFIG_DIR` for the
    /// owner's config directory), validated.
    pub fn resolve(
        req: &PlanRequest<'_>,
        env: &dyn banger_paths::EnvSource,
    ) -> Result<InstallPlan, SysInstallError> {
        if !valid_user_name(req.owner) {
            return Err(SysInstallError::BadOwnerName {
                name: req.owner.to_string(),
            });
        }
        let user = nix::unistd::User::from_name(req.owner)
            .map_err(|source| SysInstallError::LookupUser {
                name: req.owner.to_string(),
                source,
            })?
            .ok_or_else(|| SysInstallError::UnknownUser {
                name: req.owner.to_string(),
            })?;
        // The point of the install is a daemon that is not root; root has dev mode.
        if user.uid.is_root() {
            return Err(SysInstallError::RootOwner {
                name: req.owner.to_string(),
            });
        }
        let roots = banger_paths::SystemRoots::resolve_with(env)
            .map_err(|source| SysInstallError::Layout { source })?;
        let unit_dir = env
            .var(banger_paths::ENV_SYSTEMD_DIR)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(banger_paths::SYSTEMD_SYSTEM_DIR));
        let owner_config_dir = env
            .var(banger_paths::ENV_CONFIG_DIR)
            .map(PathBuf::from)
            .unwrap_or_else(|| user.dir.join(".config").join("banger"));
        let owner_home = shareable_home(&user.dir, &[req.prefix, &roots.etc_dir, &unit_dir]);
        let posture = helper_posture(&req.jail, &owner_config_dir, &user.dir, &roots.state_dir)?;
        let cgroup = CgroupLayout::of_host();
        let unit = HelperUnit::new(posture.jail.is_some(), cgroup);
        let plan = InstallPlan {
            owner_user: user.name,
            owner_uid: user.uid.as_raw(),
            owner_gid: user.gid.as_raw(),
            version: req.version.to_string(),
            build: req.build.to_string(),
            prefix: req.prefix.to_path_buf(),
            helper_runtime_dir: roots.helper_runtime_dir(),
            etc_dir: roots.etc_dir,
            unit_dir,
            state_dir: roots.state_dir,
            runtime_dir: roots.runtime_dir,
            owner_config_dir,
            owner_home,
            manage_services: false,
            socket_timeout: SOCKET_TIMEOUT,
            jail: posture.jail,
            posture_why: posture.why + &crate::jail::cgroup_note(unit, cgroup),
            cgroup,
        };
        let plan = InstallPlan {
            manage_services: plan.is_real_system(),
            ..plan
        };
        plan.validate()?;
        Ok(plan)
    }

    pub fn banger_bin(&self) -> PathBuf {
        self.prefix.join("bin").join("banger")
    }

    pub fn agent_bin(&self) -> PathBuf {
        self.prefix
            .join("lib")
            .join("banger")
            .join(banger_paths::AGENT_BINARY_NAME)
    }

    pub fn install_toml(&self) -> PathBuf {
        self.etc_dir.join("install.toml")
    }

    pub fn helper_unit(&self) -> PathBuf {
        self.unit_dir.join(banger_paths::HELPER_SERVICE)
    }

    pub fn daemon_unit(&self) -> PathBuf {
        self.unit_dir.join(banger_paths::DAEMON_SERVICE)
    }

    /// What the helper's unit is rendered for: its posture on this plan's cgroup layout.
    pub fn helper_kind(&self) -> HelperUnit {
        HelperUnit::new(self.jail.is_some(), self.cgroup)
    }

    pub fn helper_socket(&self) -> PathBuf {
        self.helper_runtime_dir.join("helper.sock")
    }

    pub fn daemon_socket(&self) -> PathBuf {
        self.runtime_dir.join("bangerd.sock")
    }

    /// Whether this plan targets the real system. Any moved root (a fake root for tests or
    /// packaging) means the files are written and nothing is started.
    pub fn is_real_system(&self) -> bool {
        self.etc_dir == Path::new("/etc/banger")
            && self.unit_dir == Path::new(banger_paths::SYSTEMD_SYSTEM_DIR)
    }

    /// The install record this plan writes.
    pub fn meta(&self) -> InstallMeta {
        InstallMeta {
            owner_user: self.owner_user.clone(),
            owner_uid: self.owner_uid,
            version: Some(self.version.clone()),
            build: Some(self.build.clone()),
            banger_bin: Some(self.banger_bin()),
            agent_bin: Some(self.agent_bin()),
            unit_dir: Some(self.unit_dir.clone()),
            state_dir: Some(self.state_dir.clone()),
            runtime_dir: Some(self.runtime_dir.clone()),
            jailer: self.jail.as_ref().map(|j| j.jailer.clone()),
            firecracker: self.jail.as_ref().map(|j| j.firecracker.clone()),
            cgroup: self.cgroup,
        }
    }

    /// Refuse what cannot be written into a unit file verbatim. systemd gives `%`, `$`,
    /// `\`, quotes and white space meanings of their own; rather than escape them (and get
    /// it subtly wrong), the installer accepts only paths and names without them.
    pub fn validate(&self) -> Result<(), SysInstallError> {
        if !valid_user_name(&self.owner_user) {
            return Err(SysInstallError::BadOwnerName {
                name: self.owner_user.clone(),
            });
        }
        for (what, path) in [
            ("--prefix", &self.prefix),
            ("the etc directory", &self.etc_dir),
            ("the unit directory", &self.unit_dir),
            ("the state directory", &self.state_dir),
            ("the runtime directory", &self.runtime_dir),
            ("the helper's runtime directory", &self.helper_runtime_dir),
            ("the owner's config directory", &self.owner_config_dir),
        ] {
            check_unit_path(what, path)?;
        }
        if let Some(home) = &self.owner_home {
            check_unit_path("the owner's home directory", home)?;
        }
        if let Some(jail) = &self.jail {
            check_unit_path("the jailer", &jail.jailer)?;
            check_unit_path("Firecracker", &jail.firecracker)?;
        }
        Ok(())
    }
}

/// The helper's posture for `request` on this host: the owner's `firecracker_bin` read from
/// their config (`~/` against their home), binaries found on PATH and checked as the helper
/// will check them before running them as root.
fn helper_posture(
    request: &JailRequest,
    owner_config_dir: &Path,
    home: &Path,
    state_dir: &Path,
) -> Result<HelperPosture, SysInstallError> {
    let configured = match request {
        JailRequest::Auto => {
            let path = owner_config_dir.join("config.toml");
            let config = match std::fs::read_to_string(&path) {
                Ok(text) => banger_config::parse_with_home(&text, &path, Some(home))
                    .map_err(|source| SysInstallError::OwnerConfig { source })?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
                Err(source) => return Err(SysInstallError::io("read", &path, source)),
            };
            config.firecracker_bin
        }
        _ => None,
    };
    let check = |path: &Path| {
        banger_system::fsperm::check_root_executable(path)
            .map(drop)
            .map_err(|e| format!("{}; {}", banger_system::error_chain(&e), e.hint()))
    };
    Ok(crate::jail::choose(
        request,
        configured.as_deref(),
        state_dir,
        &banger_system::runner::lookup_executable,
        &check,
    )?)
}

/// The owner's home `home` as a path the daemon's unit may make writable, or `None` when
/// it must stay read-only: it has to be an ordinary directory path (no characters the
/// unit would need escaped), not `/` and not in a system tree, and must not hold any of
/// the root-owned install paths in `install` (binaries the helper runs, its config, the
/// units): a daemon able to rewrite those would reach root.
pub fn shareable_home(home: &Path, install: &[&Path]) -> Option<PathBuf> {
    const SYSTEM: [&str; 12] = [
        "/usr",
        "/etc",
        "/boot",
        "/proc",
        "/sys",
        "/dev",
        "/run",
        "/bin",
        "/sbin",
        "/lib",
        "/lib64",
        "/nonexistent",
    ];
    let ordinary = check_unit_path("the owner's home directory", home).is_ok()
        && home.components().count() > 1
        && !SYSTEM.iter().any(|s| home.starts_with(s))
        && !install.iter().any(|p| p.starts_with(home));
    ordinary.then(|| home.to_path_buf())
}

/// A user name systemd's `User=` accepts and that needs no quoting: the portable POSIX
/// set, not starting with a dash or digit-only.
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && !name.chars().all(|c| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn check_unit_path(what: &'static str, path: &Path) -> Result<(), SysInstallError> {
    let text = path.to_str();
    let bad = match text {
        None => true,
        Some(text) => {
            !path.is_absolute()
                || text.chars().any(|c| {
                    c.is_whitespace()
                        || c.is_control()
                        || matches!(c, '%' | '$' | '\\' | '"' | '\'' | ';')
                })
                || path
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
        }
    };
    if bad {
        return Err(SysInstallError::BadPath {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn plan() -> InstallPlan {
        InstallPlan {
            owner_user: "al".into(),
            owner_uid: 1000,
            owner_gid: 1000,
            version: "0.1.0".into(),
            build: "abc123".into(),
            prefix: "/usr/local".into(),
            etc_dir: "/etc/banger".into(),
            unit_dir: "/etc/systemd/system".into(),
            state_dir: "/var/lib/banger".into(),
            runtime_dir: "/run/banger".into(),
            helper_runtime_dir: "/run/banger-helper".into(),
            owner_config_dir: "/home/al/.config/banger".into(),
            owner_home: Some("/home/al".into()),
            manage_services: true,
            socket_timeout: SOCKET_TIMEOUT,
            jail: None,
            posture_why: "network only".into(),
            cgroup: layout(HYBRID),
        }
    }

    /// A stand-in mount table (mountinfo) of a hybrid host (Debian 11, systemd's default
    /// there).
    pub(crate) const HYBRID: &str = "\
        25 18 0:21 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755\n\
        26 25 0:22 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n\
        30 25 0:26 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,memory\n\
        33 25 0:29 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids\n";

    /// A stand-in mount table (mountinfo) of a pure cgroup v2 host (Debian 12, Ubuntu 22.04).
    pub(crate) const UNIFIED: &str = "26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime \
        shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";

    /// The layout of the host whose mountinfo is `table`.
    pub(crate) fn layout(table: &str) -> Option<CgroupLayout> {
        CgroupLayout::of(&banger_system::cgroup::CgroupMounts::parse(table))
    }

    /// [`plan`] with the helper jailing Firecracker from /usr/local/bin (on a hybrid host).
    pub(crate) fn jail_plan() -> InstallPlan {
        InstallPlan {
            jail: Some(JailBinaries {
                jailer: "/usr/local/bin/jailer".into(),
                firecracker: "/usr/local/bin/firecracker".into(),
            }),
            ..plan()
        }
    }

    /// [`jail_plan`] on a pure cgroup v2 host.
    pub(crate) fn unified_jail_plan() -> InstallPlan {
        InstallPlan {
            cgroup: layout(UNIFIED),
            ..jail_plan()
        }
    }

    #[test]
    fn the_helper_unit_follows_the_hosts_layout_and_is_recorded() {
        assert_eq!(plan().helper_kind(), HelperUnit::Network);
        assert_eq!(jail_plan().helper_kind(), HelperUnit::JailV1);
        assert_eq!(unified_jail_plan().helper_kind(), HelperUnit::JailV2);
        // Network only on a v2 host: nothing to write in the tree.
        let network_v2 = InstallPlan {
            cgroup: layout(UNIFIED),
            ..plan()
        };
        assert_eq!(network_v2.helper_kind(), HelperUnit::Network);
        assert_eq!(jail_plan().meta().cgroup, Some(CgroupLayout::V1));
        assert_eq!(unified_jail_plan().meta().cgroup, Some(CgroupLayout::V2));
    }

    #[test]
    fn names_and_paths_that_would_need_escaping_are_refused() {
        assert!(plan().validate().is_ok());
        assert!(plan().is_real_system());
        for name in ["", "-x", "1000", "a b", "al%i", "a\"b", "a/b"] {
            let mut p = plan();
            p.owner_user = name.into();
            assert!(p.validate().is_err(), "{name:?}");
        }
        for prefix in [
            "usr/local",
            "/opt/my dir",
            "/opt/50%",
            "/opt/$HOME",
            "/opt/../etc",
            "/opt/a\nb",
        ] {
            let mut p = plan();
            p.prefix = prefix.into();
            let err = p.validate().unwrap_err().to_string();
            assert!(err.contains("--prefix"), "{err}");
        }
    }

    #[test]
    fn only_an_ordinary_home_holding_no_install_path_becomes_writable() {
        let install = [Path::new("/opt/banger"), Path::new("/etc/banger")];
        let ok = shareable_home(Path::new("/home/al"), &install);
        assert_eq!(ok.as_deref(), Some(Path::new("/home/al")));
        for home in [
            "/",
            "/opt",
            "/opt/banger",
            "/etc/al",
            "/usr/local/al",
            "/nonexistent",
            "/run/al",
            "home/al",
            "/home/a b",
            "/home/../etc",
        ] {
            assert_eq!(shareable_home(Path::new(home), &install), None, "{home}");
        }
    }

    #[test]
    fn a_moved_root_is_never_live() {
        let mut p = plan();
        p.etc_dir = "/tmp/root/etc/banger".into();
        assert!(!p.is_real_system());
        let mut p = plan();
        p.unit_dir = "/tmp/root/systemd".into();
        assert!(!p.is_real_system());
    }
}
