//! The ssh_config banger renders (`~/.config/banger/ssh_config`).
//!
//! `Host *.vm` goes through `banger ssh-proxy HOST PORT` (the agent tunnel to the guest's
//! port, so no network route to the guest is needed), with banger's key and banger's
//! known_hosts, and host keys *checked*: `StrictHostKeyChecking yes`, never `no`. Each VM
//! gets its own block first, with `HostKeyAlias banger-<id>`, so a re-created VM of the
//! same name never meets the old VM's key. Those blocks change as VMs come and go, so the
//! daemon keeps them in a file of their own ([`render_vms`], `ssh_config.vms`) that the
//! rendered config includes; the config itself only changes with the key or banger's path.

use std::path::Path;

use crate::SshError;

/// A VM with pinned host keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedVm {
    /// The VM's name (a DNS label): matched as `NAME.vm`.
    pub name: String,
    /// The alias its keys are pinned under in the known_hosts file (its id).
    pub host_key_alias: String,
}

#[derive(Debug, Clone)]
pub struct SshConfigInputs<'a> {
    /// The `banger` executable ProxyCommand runs.
    pub banger_exe: &'a Path,
    pub identity_file: &'a Path,
    pub known_hosts: &'a Path,
    /// The daemon's per-VM blocks ([`render_vms`]), included before `Host *.vm`.
    pub vm_blocks: &'a Path,
}

fn checked<'a>(what: &'static str, path: &'a Path) -> Result<&'a str, SshError> {
    let text = path.to_str().ok_or_else(|| SshError::Unquotable {
        what,
        value: path.display().to_string(),
        why: "it is not UTF-8",
    })?;
    if text
        .chars()
        .any(|c| c.is_control() || c == '"' || c == '\'')
    {
        return Err(SshError::Unquotable {
            what,
            value: text.to_string(),
            why: "it contains a quote or a control character; move it to a plainer path",
        });
    }
    Ok(text)
}

/// A path for a keyword that expands `%` tokens, double-quoted.
fn token_path(what: &'static str, path: &Path) -> Result<String, SshError> {
    Ok(format!("\"{}\"", checked(what, path)?.replace('%', "%%")))
}

fn label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// OpenSSH's default key exchanges without the post-quantum hybrid (sntrup761, or
/// ML-KEM in newer clients) that it tries first: curve25519 first, then what FIPS-only
/// servers offer. Every name here is known to OpenSSH 7.4 and later, so an older client
/// still parses the file.
const KEX: &str = "curve25519-sha256,curve25519-sha256@libssh.org,\
                   ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,\
                   diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,\
                   diffie-hellman-group18-sha512,diffie-hellman-group14-sha256";

pub fn render(inputs: &SshConfigInputs<'_>) -> Result<String, SshError> {
    // ProxyCommand runs through the user's shell: single-quote the path (quotes were
    // refused above) and double its `%` (ssh's tokens).
    let exe = checked("the banger executable path", inputs.banger_exe)?.replace('%', "%%");
    let identity = token_path("ssh_key_path", inputs.identity_file)?;
    let known_hosts = token_path("the known_hosts path", inputs.known_hosts)?;
    // Include takes no `%` tokens: quoted as it is.
    let vm_blocks = format!(
        "\"{}\"",
        checked("the per-VM ssh_config path", inputs.vm_blocks)?
    );
    Ok(format!(
        "# Rendered by banger: edits are overwritten. Enable `ssh NAME.vm` with\n\
         # `banger ssh-config --install` (adds one Include line to ~/.ssh/config).\n\
         \n\
         # Each VM's HostKeyAlias (kept current by the daemon; absent until a VM exists).\n\
         Include {vm_blocks}\n\
         \n\
         Host *.vm\n    User root\n    ProxyCommand '{exe}' ssh-proxy %h %p\n    IdentityFile {identity}\n    IdentitiesOnly yes\n    UserKnownHostsFile {known_hosts}\n    StrictHostKeyChecking yes\n    CheckHostIP no\n    UpdateHostKeys no\n    \
         # The link never leaves this host (banger's tunnel to the guest): skip the\n    \
         # post-quantum hybrid key exchange, the slowest step in an emulated guest.\n    \
         KexAlgorithms {KEX}\n"
    ))
}

/// The per-VM blocks: `Host NAME.vm` with `HostKeyAlias banger-ID`, for each VM.
pub fn render_vms(vms: &[PinnedVm]) -> Result<String, SshError> {
    let mut out =
        String::from("# Written by the banger daemon as VMs come and go: edits are lost.\n");
    for vm in vms {
        if !label(&vm.name) || !label(&vm.host_key_alias) {
            return Err(SshError::Unquotable {
                what: "the VM name or id",
                value: format!("{} / {}", vm.name, vm.host_key_alias),
                why: "it is not a DNS label",
            });
        }
        out.push_str(&format!(
            "\nHost {}.vm\n    HostKeyAlias banger-{}\n",
            vm.name, vm.host_key_alias
        ));
    }
    Ok(out)
}

/// Write the rendered config (0600, atomically).
pub fn write(path: &Path, content: &str) -> Result<(), SshError> {
    if let Some(dir) = path.parent() {
        crate::write::private_dir(dir)?;
    }
    crate::write::atomic(path, content.as_bytes(), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(exe: &Path) -> SshConfigInputs<'_> {
        SshConfigInputs {
            banger_exe: exe,
            identity_file: Path::new("/home/al/.config/banger/ssh/id_ed25519"),
            known_hosts: Path::new("/home/al/.config/banger/known 100%"),
            vm_blocks: Path::new("/home/al/.config/banger/ssh_config.vms"),
        }
    }

    #[test]
    fn renders_checked_host_keys_and_the_proxy() {
        let text = render(&inputs(Path::new("/usr/bin/banger"))).unwrap();
        assert!(text.contains("Include \"/home/al/.config/banger/ssh_config.vms\"\n"));
        assert!(text.find("Include").unwrap() < text.find("Host *.vm").unwrap());
        assert!(text.contains("ProxyCommand '/usr/bin/banger' ssh-proxy %h %p"));
        assert!(text.contains("UserKnownHostsFile \"/home/al/.config/banger/known 100%%\""));
        assert!(text.contains("StrictHostKeyChecking yes"));
        assert!(!text.to_lowercase().contains("stricthostkeychecking no"));
        let vms = [PinnedVm {
            name: "dev".into(),
            host_key_alias: "0123456789ab".into(),
        }];
        let blocks = render_vms(&vms).unwrap();
        assert!(blocks.contains("Host dev.vm\n    HostKeyAlias banger-0123456789ab\n"));
    }

    /// The real client parses the file and takes curve25519 first, for `*.vm` only.
    #[test]
    fn the_real_ssh_client_reads_it_and_prefers_curve25519() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ssh_config");
        std::fs::write(
            &file,
            render(&inputs(Path::new("/usr/bin/banger"))).unwrap(),
        )
        .unwrap();
        let effective = |host: &str| {
            let out = std::process::Command::new("ssh")
                .arg("-G")
                .arg("-F")
                .arg(&file)
                .arg(host)
                .output()
                .expect("the OpenSSH client (openssh-client) runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.lines()
                .find_map(|l| l.strip_prefix("kexalgorithms ").map(str::to_string))
                .unwrap_or_else(|| panic!("no kexalgorithms in:\n{text}"))
        };
        assert_eq!(effective("dev.vm"), KEX);
        assert_ne!(
            effective("example.org"),
            KEX,
            "other hosts keep the defaults"
        );
    }

    #[test]
    fn refuses_what_it_cannot_quote() {
        for exe in ["/tmp/a'b/banger", "/tmp/a\"b", "/tmp/a\nb"] {
            assert!(render(&inputs(Path::new(exe))).is_err(), "{exe:?}");
        }
        let bad = [PinnedVm {
            name: "dev\nHost *".into(),
            host_key_alias: "x".into(),
        }];
        assert!(render_vms(&bad).is_err());
    }
}
