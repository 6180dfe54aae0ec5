//! Dev mode as an ordinary user: no root, no BANGER_* overrides, only HOME and
//! XDG_RUNTIME_DIR. The first `vm run` builds the default image on demand, and host
//! tools outside the user's PATH (mkfs.ext4 lives in /sbin) are still found.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const NOBODY: u32 = 65534;

fn as_nobody(home: &Path, bin: &Path, args: &[&str]) -> Output {
    as_nobody_with(home, bin, args, b"")
}

/// As [`as_nobody`], with `input` on stdin.
fn as_nobody_with(home: &Path, bin: &Path, args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new("setpriv")
        .args([
            "--reuid",
            &NOBODY.to_string(),
            "--regid",
            &NOBODY.to_string(),
            "--clear-groups",
            "--",
        ])
        .arg(bin)
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv (util-linux) runs");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait for banger");
    let _ = writer.join();
    out
}

/// A home directory for uid 65534 holding private copies of the binaries (the build
/// tree may not be reachable by other users); its daemon is stopped on drop.
struct UserHome {
    dir: tempfile::TempDir,
    banger: PathBuf,
}

impl UserHome {
    fn new() -> UserHome {
        let bin = banger_e2e::banger_bin();
        let dir = tempfile::Builder::new()
            .prefix("bgu")
            .tempdir_in("/tmp")
            .unwrap();
        let home = dir.path();
        std::fs::create_dir_all(home.join("run")).unwrap();
        for name in ["banger", "banger-agent"] {
            // Not std::fs::copy: see install_executable (ETXTBSY).
            banger_e2e::install_executable(&bin.with_file_name(name), &home.join(name)).unwrap();
        }
        for path in [
            home.to_path_buf(),
            home.join("run"),
            home.join("banger"),
            home.join("banger-agent"),
        ] {
            std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        std::fs::set_permissions(home.join("run"), std::fs::Permissions::from_mode(0o700)).unwrap();
        let banger = home.join("banger");
        UserHome { dir, banger }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

#[test]
fn an_ordinary_user_runs_a_vm_in_dev_mode() {
    let user = UserHome::new();
    let (home, banger) = (user.path(), user.banger.clone());

    let out = as_nobody(
        home,
        &banger,
        // `minimal`, the fastest (the default debian image built by an ordinary user has
        // a test of its own).
        &[
            "vm",
            "run",
            "--rm",
            "--image",
            "minimal",
            "--",
            "sh",
            "-c",
            "echo guest-root=$(id -u)",
        ],
    );
    let log =
        std::fs::read_to_string(home.join(".local/state/banger/daemon.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "stderr: {}\ndaemon log:\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "guest-root=0\n");

    // The user's QEMU is sandboxed too: seccomp and no_new_privs, as the user (a root
    // daemon's per-VM uid and jail are not available to an ordinary user). It shares a
    // directory: the user's virtiofsd runs as the user, in a user namespace.
    let proj = home.join("proj");
    std::fs::create_dir(&proj).unwrap();
    std::fs::write(proj.join("in.txt"), "mine\n").unwrap();
    for path in [proj.clone(), proj.join("in.txt")] {
        std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let share = format!("{}:/src", proj.display());
    let out = as_nobody(
        home,
        &banger,
        &[
            "vm", "run", "-d", "--name", "u1", "--image", "minimal", "-v", &share,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = as_nobody(home, &banger, &["vm", "inspect", "u1", "--json"]);
    let vm: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pid = u32::try_from(vm["pid"].as_i64().unwrap()).unwrap();
    let p = banger_vmm::sandbox::posture::read(pid).unwrap();
    assert_eq!(p.uids, [NOBODY; 4], "QEMU runs as the daemon's user");
    assert_eq!(p.seccomp, Some(2), "QEMU's -sandbox filter is on");
    assert_eq!(p.no_new_privs, Some(true));
    assert_eq!(p.cap_eff, Some(0));
    assert_eq!(
        p.own_root,
        Some(true),
        "jailed in a user namespace (Debian allows unprivileged ones)"
    );
    // The guest still works through the jail.
    let out = as_nobody(home, &banger, &["vm", "exec", "u1", "--", "echo", "jailed"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "jailed\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The guest's root reads the user's files and what it writes belongs to the user.
    let out = as_nobody(
        home,
        &banger,
        &[
            "vm",
            "exec",
            "u1",
            "--",
            "sh",
            "-c",
            "cat /src/in.txt && echo guest > /src/out.txt && mkdir /src/d",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "mine\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for path in [proj.join("out.txt"), proj.join("d")] {
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid()),
            (NOBODY, NOBODY),
            "{} belongs to the owner",
            path.display()
        );
    }
    let out = as_nobody(home, &banger, &["vm", "rm", "-f", "u1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // XDG layout, owned by the user, private.
    let state = home.join(".local/state/banger");
    assert!(
        state.join("state.db").is_file(),
        "no store under {}",
        state.display()
    );
    let socket = home.join("run/banger/bangerd.sock");
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), NOBODY);

    // Networking without privileges: QEMU's user-mode network, and the agent tunnel that
    // `ssh NAME.vm` uses (`ssh-proxy`), relaying to a server in the guest.
    let ok = |args: &[&str], input: &[u8]| {
        let out = as_nobody_with(home, &banger, args, input);
        assert!(
            out.status.success(),
            "banger {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(
        &[
            "vm", "run", "-d", "--name", "u", "--image", "minimal", "-p", "18080:80",
        ],
        b"",
    );
    let vm: serde_json::Value =
        serde_json::from_str(&ok(&["vm", "inspect", "u", "--json"], b"")).unwrap();
    assert_eq!(vm["network"]["mode"], "user", "{vm}");
    assert_eq!(vm["network"]["address"], "10.0.2.15/24");
    ok(
        &[
            "vm",
            "exec",
            "u",
            "--",
            "sh",
            "-c",
            "mkdir -p /w && echo tunnel > /w/index.html && busybox httpd -p 80 -h /w",
        ],
        b"",
    );
    let answer = ok(
        &["ssh-proxy", "u.vm", "80"],
        b"GET /index.html HTTP/1.0\r\n\r\n",
    );
    assert!(
        answer.starts_with("HTTP/1.") && answer.contains(" 200 OK"),
        "{answer}"
    );
    assert!(answer.ends_with("tunnel\n"), "{answer}");
    // The published port, through QEMU's hostfwd, on the host's loopback.
    let mut conn = std::net::TcpStream::connect("127.0.0.1:18080").expect("the published port");
    use std::io::{Read, Write};
    conn.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").unwrap();
    let mut page = String::new();
    conn.read_to_string(&mut page).unwrap();
    assert!(page.ends_with("tunnel\n"), "{page}");
    ok(&["vm", "rm", "-f", "u"], b"");
}

/// The default image, Debian, built on first use by an ordinary user (mmdebstrap in an
/// unprivileged mode, owners set inside the image), boots with the owners a root build
/// would give (root's system files, set-uid root programs, a service account's
/// directory), and the user reaches it with the real ssh client.
#[test]
fn an_ordinary_user_builds_and_boots_the_default_debian_image() {
    let user = UserHome::new();
    let (home, banger) = (user.path(), user.banger.clone());
    let ok = |args: &[&str]| {
        let out = as_nobody(home, &banger, args);
        let log = std::fs::read_to_string(home.join(".local/state/banger/daemon.log"))
            .unwrap_or_default();
        assert!(
            out.status.success(),
            "banger {args:?}: {}\ndaemon log:\n{log}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // No --image: the default, built on demand.
    ok(&["vm", "run", "-d", "--name", "u"]);
    let owners = ok(&[
        "vm",
        "exec",
        "u",
        "--",
        "stat",
        "-c",
        "%u:%g %a %n",
        "/",
        "/etc/shadow",
        "/usr/bin/passwd",
        "/var/cache/apt/archives/partial",
        "/usr/lib/banger/banger-agent",
    ]);
    // _apt is uid 42 in Debian; shadow is group 42 there too.
    assert_eq!(
        owners,
        "0:0 755 /\n\
         0:42 640 /etc/shadow\n\
         0:0 4755 /usr/bin/passwd\n\
         42:0 700 /var/cache/apt/archives/partial\n\
         0:0 755 /usr/lib/banger/banger-agent\n"
    );
    // The real OpenSSH client, as the ordinary user, through the agent tunnel: sshd's
    // StrictModes accepts root's keys only because / and /root are root's in the image.
    let who = ok(&["vm", "ssh", "u", "--", "echo", "$(whoami)@$(hostname)"]);
    assert_eq!(who.trim(), "root@u");
}

/// Stops the user's daemon when the test ends, passing or failing.
impl Drop for UserHome {
    fn drop(&mut self) {
        // VMs outlive their daemon: remove the test's first.
        let _ = as_nobody(self.path(), &self.banger, &["vm", "rm", "-f", "u"]);
        let _ = as_nobody(self.path(), &self.banger, &["daemon", "stop"]);
    }
}
