//! Finding VMM processes without a record: by the binary they run and the directory their
//! command line names, or by their root directory (a jail).

use std::io;
use std::path::{Path, PathBuf};

use super::{ProcessIdentity, process_exited_at, read_stat_at};

/// Processes running `binary` whose command line names something inside `dir`: the VMMs (and
/// their launchers) of one VM directory, found without trusting any record. This is how a
/// restarted daemon finds a VMM whose pid it never got to store (killed between launch and
/// record), and how `rm` makes sure nothing still uses a directory it deletes.
///
/// Only processes whose executable can be read are considered: for an ordinary user that is
/// their own processes. `binary` is compared after resolving symlinks; an executable replaced
/// on disk while its process runs (`… (deleted)`) still matches.
pub fn find_using_dir(binary: &Path, dir: &Path) -> io::Result<Vec<ProcessIdentity>> {
    find_using_dir_at(Path::new("/proc"), binary, dir)
}

/// Every process directory under `proc_root`, with its pid.
fn proc_entries(proc_root: &Path) -> io::Result<impl Iterator<Item = (u32, PathBuf)>> {
    Ok(std::fs::read_dir(proc_root)?.flatten().filter_map(|entry| {
        let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
        Some((pid, entry.path()))
    }))
}

/// Processes whose root directory is `root` (a chroot): compared by device and inode
/// through `/proc/PID/root`, which only processes we may inspect (for an ordinary user, its
/// own) let us read.
pub fn find_rooted_at(root: &Path) -> io::Result<Vec<ProcessIdentity>> {
    use std::os::unix::fs::MetadataExt;
    let want = std::fs::metadata(root)?;
    let mut found = Vec::new();
    for (pid, dir) in proc_entries(Path::new("/proc"))? {
        let Ok(seen) = std::fs::metadata(dir.join("root")) else {
            continue;
        };
        if (seen.dev(), seen.ino()) != (want.dev(), want.ino()) {
            continue;
        }
        if let Ok(Some(stat)) = read_stat_at(Path::new("/proc"), pid)
            && !process_exited_at(Path::new("/proc"), pid, &stat)
        {
            found.push(ProcessIdentity {
                pid,
                start_time: stat.start_time,
            });
        }
    }
    Ok(found)
}

fn find_using_dir_at(
    proc_root: &Path,
    binary: &Path,
    dir: &Path,
) -> io::Result<Vec<ProcessIdentity>> {
    let binary = std::fs::canonicalize(binary).unwrap_or_else(|_| binary.to_path_buf());
    let needle = dir.as_os_str().as_encoded_bytes();
    let me = std::process::id();
    let mut found = Vec::new();
    for (pid, dir) in proc_entries(proc_root)? {
        if pid == me {
            continue;
        }
        let Some((task, exe)) = executable_of(&dir) else {
            continue;
        };
        let exe = exe.as_os_str().as_encoded_bytes();
        let exe = exe.strip_suffix(b" (deleted)").unwrap_or(exe);
        if exe != binary.as_os_str().as_encoded_bytes() {
            continue;
        }
        let Ok(cmdline) = std::fs::read(task.join("cmdline")) else {
            continue;
        };
        if !cmdline
            .split(|b| *b == 0)
            .any(|arg| names_inside(arg, needle))
        {
            continue;
        }
        if let Ok(Some(stat)) = read_stat_at(proc_root, pid)
            && !process_exited_at(proc_root, pid, &stat)
        {
            found.push(ProcessIdentity {
                pid,
                start_time: stat.start_time,
            });
        }
    }
    Ok(found)
}

/// The executable of the process at `/proc/<pid>` (`process`), and the directory to read its
/// other facts from. A zombie main thread has no memory map, so its `exe` and `cmdline` are
/// gone: they are read from a thread still running (`task/<tid>`), if any.
fn executable_of(process: &Path) -> Option<(PathBuf, PathBuf)> {
    if let Ok(exe) = std::fs::read_link(process.join("exe")) {
        return Some((process.to_path_buf(), exe));
    }
    std::fs::read_dir(process.join("task"))
        .ok()?
        .flatten()
        .find_map(|thread| {
            let exe = std::fs::read_link(thread.path().join("exe")).ok()?;
            Some((thread.path(), exe))
        })
}

/// Whether `arg` mentions `dir` itself or a path below it (`dir/…`), anywhere in the
/// argument (QEMU options embed paths: `socket,path=DIR/agent.sock,server=on`).
fn names_inside(arg: &[u8], dir: &[u8]) -> bool {
    if dir.is_empty() {
        return false;
    }
    let mut rest = arg;
    while let Some(at) = rest.windows(dir.len()).position(|w| w == dir) {
        let after = rest.get(at + dir.len()).copied();
        if matches!(after, None | Some(b'/') | Some(b',') | Some(b'\0')) {
            return true;
        }
        rest = &rest[at + 1..];
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_argument_names_a_directory_only_at_a_path_boundary() {
        assert!(names_inside(b"/s/vms/ab12", b"/s/vms/ab12"));
        assert!(names_inside(
            b"-pidfile=/s/vms/ab12/qemu.pid",
            b"/s/vms/ab12"
        ));
        assert!(names_inside(
            b"socket,path=/s/vms/ab12/a.sock,server=on",
            b"/s/vms/ab12"
        ));
        assert!(names_inside(b"file=/s/vms/ab12,x", b"/s/vms/ab12"));
        assert!(!names_inside(b"/s/vms/ab123/qemu.pid", b"/s/vms/ab12"));
        assert!(!names_inside(b"/s/vms/ab1", b"/s/vms/ab12"));
        assert!(!names_inside(b"anything", b""));
        // A later occurrence counts even when an earlier one is a longer name.
        assert!(names_inside(b"/s/vms/ab123:/s/vms/ab12/x", b"/s/vms/ab12"));
    }

    #[test]
    fn finds_a_process_by_binary_and_directory() {
        let dir = tempfile::tempdir().unwrap();
        let vm_dir = dir.path().join("vm1");
        // `sh -c 'sleep 30; :' DIR/marker`: the directory is in argv ($0), and the `; :`
        // keeps the shell from exec'ing sleep in its place.
        let sh = which("sh");
        let mut child = std::process::Command::new(&sh)
            .args(["-c", "sleep 30; :"])
            .arg(vm_dir.join("marker"))
            .spawn()
            .unwrap();
        // The shell's fork for `sleep` also matches until it execs: look for the shell.
        let found = find_using_dir(&sh, &vm_dir).unwrap();
        assert!(found.iter().any(|p| p.pid == child.id()), "{found:?}");
        assert!(
            find_using_dir(&sh, &dir.path().join("vm"))
                .unwrap()
                .is_empty()
        );
        assert!(find_using_dir(&which("true"), &vm_dir).unwrap().is_empty());
        child.kill().unwrap();
        child.wait().unwrap();
        let left = find_using_dir(&sh, &vm_dir).unwrap();
        assert!(left.iter().all(|p| p.pid != child.id()), "{left:?}");
    }

    fn which(name: &str) -> std::path::PathBuf {
        banger_system::runner::lookup_executable(name)
            .unwrap_or_else(|| panic!("{name} is not installed"))
    }
}
