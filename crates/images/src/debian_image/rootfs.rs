//! The Debian root filesystem: `mmdebstrap` into a directory (or, for an ordinary user, a
//! tarball unpacked into one), then what makes it a
//! banger guest — the agent, the kernel's modules, sshd configured for per-VM host keys,
//! no machine-id or host keys of its own (each VM makes them at first boot), and the
//! init the image was asked for.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use banger_system::CommandRunner;

use super::{DebianImageError, GuestInitKind};
use crate::build::{BuildError, io_err};
use crate::ext4::Owners;
use crate::oci::apply::Applier;

/// What every Debian image holds besides `minbase`: sshd, the tools a dev VM is
/// expected to have (rsync, for `rsync -e ssh` to and from it; iperf3, to measure the
/// network), and kmod (the image ships the kernel's modules).
pub const BASE_PACKAGES: &[&str] = &[
    "openssh-server",
    "rsync",
    "iperf3",
    "iproute2",
    "kmod",
    "ca-certificates",
    "procps",
    "less",
    "netbase",
];

/// Where the agent lives on the root disk (the initramfs hands PID 1 to it).
pub const AGENT_IN_ROOT: &str = "usr/lib/banger/banger-agent";

/// `--include` value: the base packages, systemd for a systemd image, and the caller's.
pub fn include_list(init: GuestInitKind, extra: &[String]) -> String {
    let mut all: Vec<&str> = BASE_PACKAGES.to_vec();
    if init == GuestInitKind::Systemd {
        all.extend(["systemd-sysv", "dbus"]);
    }
    all.extend(extra.iter().map(String::as_str));
    all.join(",")
}

/// Run mmdebstrap into `target` (which must not exist yet) and say how the tree's owners
/// become the image's.
///
/// As root it writes the directory itself (`--mode=root`): the tree carries the owners.
/// An ordinary user cannot create root-owned files, so mmdebstrap runs in the first mode
/// that works without privilege (`--mode=auto`: unshare with the user's sub-uid range,
/// else fakechroot) and writes a tarball, whose headers carry the real owners; the layer
/// applier unpacks it (contained, like an OCI layer) and lists the entries that are not
/// root's, for `mkfs` to set inside the image.
pub fn bootstrap(
    runner: &dyn CommandRunner,
    mmdebstrap: &Path,
    suite: &str,
    mirror: &str,
    include: &str,
    target: &Path,
) -> Result<Owners, BuildError> {
    // SAFETY: geteuid has no memory effects.
    let as_root = unsafe { libc::geteuid() } == 0;
    let include = format!("--include={include}");
    let mode: &[&str] = if as_root {
        &["--mode=root", "--format=directory"]
    } else {
        // The guest's /dev is devtmpfs: the tarball needs no device nodes (which only
        // root could create, and the applier refuses).
        &["--mode=auto", "--format=tar", "--skip=output/dev"]
    };
    let fixed = [
        "--variant=minbase",
        "--components=main",
        "--quiet",
        include.as_str(),
        // A dev VM needs no manuals or translations; licences stay.
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        "--aptopt=Acquire::Retries \"3\"",
        suite,
    ];
    let tarball = target.with_extension("tar");
    let output = if as_root {
        target.as_os_str()
    } else {
        tarball.as_os_str()
    };
    let args: Vec<&OsStr> = mode
        .iter()
        .chain(fixed.iter())
        .map(OsStr::new)
        .chain([output, OsStr::new(mirror)])
        .collect();
    let out = runner
        .run(mmdebstrap, &args)
        .map_err(|source| BuildError::Io {
            op: "run mmdebstrap for",
            path: target.to_path_buf(),
            source,
        })?;
    if !out.success() {
        let _ = fs::remove_file(&tarball);
        let stderr = out.stderr_str();
        let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
        let (suite, mirror) = (suite.to_string(), mirror.to_string());
        let stderr = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
        // No unprivileged mode works (mmdebstrap's words): say what would make one work.
        let error = if stderr.contains("unable to pick chroot mode") {
            DebianImageError::MmdebstrapUnprivileged {
                suite,
                mirror,
                stderr,
            }
        } else {
            DebianImageError::Mmdebstrap {
                suite,
                mirror,
                stderr,
            }
        };
        return Err(error.into());
    }
    if as_root {
        return Ok(Owners::AsInTree);
    }
    let unpacked = unpack(&tarball, target);
    let _ = fs::remove_file(&tarball);
    unpacked
}

/// Unpack mmdebstrap's tarball into `target` as an ordinary user: the owners it names
/// are listed for the image instead of set on the tree.
fn unpack(tarball: &Path, target: &Path) -> Result<Owners, BuildError> {
    fs::create_dir(target).map_err(io_err("create", target))?;
    // `/` of the guest (mmdebstrap's tarball names `./`, which the applier leaves alone).
    fs::set_permissions(target, fs::Permissions::from_mode(0o755))
        .map_err(io_err("set the mode of", target))?;
    let file = fs::File::open(tarball).map_err(io_err("open", tarball))?;
    let applier = Applier::new(target);
    applier
        .apply("mmdebstrap's tarball", std::io::BufReader::new(file))
        .map_err(|source| DebianImageError::Unpack { source })?;
    Ok(applier.owners())
}

/// Everything banger adds to a bootstrapped tree.
pub struct Customize<'a> {
    pub root: &'a Path,
    pub agent: &'a Path,
    pub init: GuestInitKind,
    pub kernel_release: &'a str,
    /// The kernel's modules, uncompressed, at their paths below `lib/modules/KVER/`.
    pub modules_dir: &'a Path,
    pub runner: &'a dyn CommandRunner,
}

impl Customize<'_> {
    pub fn apply(&self) -> Result<Vec<String>, BuildError> {
        let mut notes = Vec::new();
        let root = self.root;
        let agent = root.join(AGENT_IN_ROOT);
        mkdirs(agent.parent().unwrap_or(root))?;
        fs::copy(self.agent, &agent).map_err(io_err("copy the agent into", &agent))?;
        fs::set_permissions(&agent, fs::Permissions::from_mode(0o755))
            .map_err(io_err("set permissions on", &agent))?;

        notes.extend(self.install_modules()?);

        // Each VM makes its own machine-id and host key at first boot (the agent, from
        // the initramfs): the image must carry none.
        write(root, "etc/machine-id", "")?;
        let _ = fs::remove_file(root.join("var/lib/dbus/machine-id"));
        let _ = fs::remove_file(root.join("etc/banger/identity"));
        if let Ok(entries) = fs::read_dir(root.join("etc/ssh")) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with("ssh_host_") {
                    fs::remove_file(entry.path()).map_err(io_err("remove", &entry.path()))?;
                }
            }
        }
        write(
            root,
            "etc/ssh/sshd_config.d/banger.conf",
            "# banger: each VM makes its own ed25519 host key at first boot.\n\
             HostKey /etc/ssh/ssh_host_ed25519_key\n",
        )?;
        // Every session in C.UTF-8, whatever locale the client's ssh sends: Debian's
        // clients send LANG and LC_* (`SendEnv` in /etc/ssh/ssh_config), and a locale the
        // guest lacks (it has none generated) made every command of `ssh NAME.vm` print
        // `bash: warning: setlocale: LC_ALL: cannot change locale` (perl and apt too).
        let sshd_config = root.join("etc/ssh/sshd_config");
        if let Ok(text) = fs::read_to_string(&sshd_config) {
            write(root, "etc/ssh/sshd_config", &without_accept_env(&text))?;
        }
        write(root, "etc/default/locale", "LANG=C.UTF-8\n")?;
        let pam_sshd = root.join("etc/pam.d/sshd");
        if let Ok(text) = fs::read_to_string(&pam_sshd) {
            write(root, "etc/pam.d/sshd", &without_dynamic_motd(&text))?;
        }
        write(root, "etc/hostname", "debian\n")?;
        write(root, "etc/fstab", "/dev/vda / ext4 rw,relatime 0 1\n")?;

        match self.init {
            GuestInitKind::Agent => {
                write(
                    root,
                    "etc/banger/services",
                    "# The lean init (banger-agent as PID 1) starts these:\n\
                     # NAME [listen=tcp:PORT [prestart]] PROGRAM [ARG]...\n\
                     # sshd: one per connection on port 22; one kept started ahead for\n\
                     # the next `ssh NAME.vm` through banger's tunnel.\n\
                     sshd listen=tcp:22 prestart /usr/sbin/sshd -i -e\n",
                )?;
            }
            GuestInitKind::Systemd => {
                write(
                    root,
                    "etc/systemd/system/banger-agent.service",
                    "[Unit]\nDescription=banger guest agent\nDefaultDependencies=no\n\
                     After=local-fs.target\n\n[Service]\nExecStart=/usr/lib/banger/banger-agent\n\
                     Restart=always\nRestartSec=1\n\n[Install]\nWantedBy=multi-user.target\n",
                )?;
                let wants = root.join("etc/systemd/system/multi-user.target.wants");
                mkdirs(&wants)?;
                let link = wants.join("banger-agent.service");
                let _ = fs::remove_file(&link);
                symlink("/etc/systemd/system/banger-agent.service", &link)
                    .map_err(io_err("link", &link))?;
            }
        }
        Ok(notes)
    }

    /// The kernel's modules under `/lib/modules/KVER`, indexed by the host's `depmod` so
    /// `modprobe` works in the guest.
    fn install_modules(&self) -> Result<Vec<String>, BuildError> {
        // Merged /usr (bookworm on) makes /lib a link to usr/lib; older suites have both.
        let lib = if fs::symlink_metadata(self.root.join("lib"))
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            "usr/lib/modules"
        } else {
            "lib/modules"
        };
        let base = self.root.join(lib).join(self.kernel_release);
        copy_tree(self.modules_dir, &base)?;
        let Some(depmod) = banger_system::runner::lookup_executable("depmod") else {
            return Ok(vec![
                "depmod not found (install kmod): modprobe will not work in the guest".into(),
            ]);
        };
        let root = self.root.as_os_str();
        let args = [OsStr::new("-b"), root, OsStr::new(self.kernel_release)];
        match self.runner.run(&depmod, &args) {
            Ok(out) if out.success() => Ok(Vec::new()),
            Ok(out) => Ok(vec![format!(
                "depmod failed ({}); modprobe may not work in the guest",
                out.stderr_str().trim()
            )]),
            Err(e) => Ok(vec![format!("cannot run depmod: {e}")]),
        }
    }
}

fn mkdirs(dir: &Path) -> Result<(), BuildError> {
    fs::create_dir_all(dir).map_err(io_err("create", dir))
}

/// Write `rel` under `root`, replacing a symlink rather than following it.
/// Debian's `/etc/pam.d/sshd` with the dynamic motd switched off: for every login,
/// `pam_motd.so motd=/run/motd.dynamic` runs `sh`, `env`, `run-parts` and
/// `/etc/update-motd.d/10-uname` (`uname`) to print the kernel's name — four programs
/// started per session, a third of `ssh NAME.vm true` in an emulated guest. The static
/// `/etc/motd` (`pam_motd.so noupdate`) is still shown; nothing about authentication or
/// the session's limits and environment changes.
pub fn without_dynamic_motd(pam: &str) -> String {
    let mut out = String::with_capacity(pam.len() + 128);
    for line in pam.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let dynamic = !line.trim_start().starts_with('#')
            && words.contains(&"pam_motd.so")
            && words
                .iter()
                .any(|w| w.starts_with("motd=/run/motd.dynamic"));
        if dynamic {
            out.push_str("# banger: no dynamic motd (it starts four programs per login).\n# ");
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// `sshd_config` without its `AcceptEnv` lines (commented out, saying why): the session's
/// locale is the guest's own (`/etc/default/locale`, read by `pam_env`), not one the
/// client names and the guest may not have. sshd has no way to take back an `AcceptEnv`
/// from a drop-in, so the main file is edited.
pub fn without_accept_env(config: &str) -> String {
    let mut out = String::with_capacity(config.len() + 128);
    for line in config.lines() {
        let live = line
            .split_whitespace()
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("AcceptEnv"));
        if live {
            out.push_str(
                "# banger: sessions keep the guest's locale (C.UTF-8), not the client's LANG/LC_*.\n# ",
            );
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn write(root: &Path, rel: &str, text: &str) -> Result<(), BuildError> {
    let path = root.join(rel);
    mkdirs(path.parent().unwrap_or(root))?;
    if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        fs::remove_file(&path).map_err(io_err("replace", &path))?;
    }
    fs::write(&path, text).map_err(io_err("write", &path))
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), BuildError> {
    let mut stack: Vec<(PathBuf, PathBuf)> = vec![(from.to_path_buf(), to.to_path_buf())];
    while let Some((src, dst)) = stack.pop() {
        mkdirs(&dst)?;
        for entry in fs::read_dir(&src).map_err(io_err("read", &src))? {
            let entry = entry.map_err(io_err("read", &src))?;
            let (s, d) = (entry.path(), dst.join(entry.file_name()));
            let kind = entry.file_type().map_err(io_err("read", &s))?;
            if kind.is_dir() {
                stack.push((s, d));
            } else if kind.is_file() {
                fs::copy(&s, &d).map_err(io_err("copy into", &d))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines a config or PAM file acts on: all but comments.
    fn live_lines(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect()
    }

    #[test]
    fn only_the_dynamic_motd_line_is_switched_off() {
        let pam = "@include common-auth\n\
                   session    optional     pam_motd.so  motd=/run/motd.dynamic\n\
                   session    optional     pam_motd.so noupdate\n\
                   # session optional pam_motd.so motd=/run/motd.dynamic\n\
                   session    required     pam_limits.so\n";
        let got = without_dynamic_motd(pam);
        assert_eq!(
            live_lines(&got),
            vec![
                "@include common-auth",
                "session    optional     pam_motd.so noupdate",
                "session    required     pam_limits.so",
            ]
        );
        // Applying it twice changes nothing more.
        assert_eq!(without_dynamic_motd(&got), got);
    }

    #[test]
    fn accept_env_lines_are_switched_off_and_nothing_else() {
        let config = "Include /etc/ssh/sshd_config.d/*.conf\n\
                      UsePAM yes\n\
                      AcceptEnv LANG LC_*\n\
                      \tacceptenv   COLORTERM\n\
                      #AcceptEnv OLD\n\
                      Subsystem\tsftp\t/usr/lib/openssh/sftp-server\n";
        let got = without_accept_env(config);
        assert_eq!(
            live_lines(&got),
            vec![
                "Include /etc/ssh/sshd_config.d/*.conf",
                "UsePAM yes",
                "Subsystem\tsftp\t/usr/lib/openssh/sftp-server",
            ]
        );
        assert!(got.contains("# AcceptEnv LANG LC_*"), "{got}");
        assert_eq!(without_accept_env(&got), got);
    }
}
