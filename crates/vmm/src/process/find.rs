//! Finding VMM processes without a record: by the binary they run and the directory their
//! command line names, or by their root directory (a jail).

use std::io;
use std::path::{Path, PathBuf};

use super::{ProcessIdentity, process_exited_at, read_stat_at};

/// What marks a process as a VMM of one VM directory, for [`find_marked`]: running one of
/// `binaries` with the directory on its command line, or running inside one of `roots` (a
/// jailed VMM's chroot, which names no host path). Each driver says what marks its VMMs
/// (`VmmDriver::stray_marks`); the marks of every driver are looked for in one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marks {
    pub binaries: Vec<PathBuf>,
    pub roots: Vec<PathBuf>,
}

impl Marks {
    /// Add `other`'s marks to these.
    pub fn extend(&mut self, other: Marks) {
        for binary in other.binaries {
            if !self.binaries.contains(&binary) {
                self.binaries.push(binary);
            }
        }
        for root in other.roots {
            if !self.roots.contains(&root) {
                self.roots.push(root);
            }
        }
    }
}

/// Processes running `binary` whose command line names something inside `dir`: the VMMs (and
/// their launchers) of one VM directory, found without trusting any record. This is how a
/// restarted daemon finds a VMM whose pid it never got to store (killed between launch and
/// record), and how `rm` makes sure nothing still uses a directory it deletes.
///
/// Only processes whose executable can be read are considered: for an ordinary user that is
/// their own processes. `binary` is compared after resolving symlinks; an executable replaced
/// on disk while its process runs (`… (deleted)`) still matches.
pub fn find_using_dir(binary: &Path, dir: &Path) -> io::Result<Vec<ProcessIdentity>> {
    let marks = Marks {
        binaries: vec![binary.to_path_buf()],
        roots: Vec::new(),
    };
    find_marked_at(Path::new("/proc"), &marks, dir)
}

/// Processes whose root directory is `root` (a chroot): compared by device and inode
/// through `/proc/PID/root`, which only processes we may inspect (for an ordinary user, its
/// own) let us read.
pub fn find_rooted_at(root: &Path) -> io::Result<Vec<ProcessIdentity>> {
    let marks = Marks {
        binaries: Vec::new(),
        roots: vec![root.to_path_buf()],
    };
    find_marked_at(Path::new("/proc"), &marks, Path::new(""))
}

/// Every live process that bears one of `marks` for VM directory `dir` ([`find_using_dir`]
/// and [`find_rooted_at`] at once), in one pass over `/proc`. A root that does not exist
/// (a jail never made) marks nothing.
pub fn find_marked(marks: &Marks, dir: &Path) -> io::Result<Vec<ProcessIdentity>> {
    find_marked_at(Path::new("/proc"), marks, dir)
}

/// Every process directory under `proc_root`, with its pid.
fn proc_entries(proc_root: &Path) -> io::Result<impl Iterator<Item = (u32, PathBuf)>> {
    Ok(std::fs::read_dir(proc_root)?.flatten().filter_map(|entry| {
        let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
        Some((pid, entry.path()))
    }))
}

fn find_marked_at(proc_root: &Path, marks: &Marks, dir: &Path) -> io::Result<Vec<ProcessIdentity>> {
    use std::os::unix::fs::MetadataExt;
    let binaries: Vec<PathBuf> = marks
        .binaries
        .iter()
        .map(|b| std::fs::canonicalize(b).unwrap_or_else(|_| b.clone()))
        .collect();
    let roots: Vec<(u64, u64)> = marks
        .roots
        .iter()
        .filter_map(|r| std::fs::metadata(r).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    if binaries.is_empty() && roots.is_empty() {
        return Ok(Vec::new());
    }
    let needle = dir.as_os_str().as_encoded_bytes();
    let me = std::process::id();
    let mut found = Vec::new();
    for (pid, process) in proc_entries(proc_root)? {
        if pid == me {
            continue;
        }
        let rooted = !roots.is_empty()
            && std::fs::metadata(process.join("root"))
                .is_ok_and(|seen| roots.contains(&(seen.dev(), seen.ino())));
        let marked = rooted || (!binaries.is_empty() && runs_in(&process, &binaries, needle));
        if !marked {
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

/// Whether the process at `process` (`/proc/<pid>`) runs one of `binaries` (canonical
/// paths) with `dir` (`needle`) on its command line.
fn runs_in(process: &Path, binaries: &[PathBuf], needle: &[u8]) -> bool {
    let Some((task, exe)) = executable_of(process) else {
        return false;
    };
    let exe = exe.as_os_str().as_encoded_bytes();
    let exe = exe.strip_suffix(b" (deleted)").unwrap_or(exe);
    if !binaries
        .iter()
        .any(|b| b.as_os_str().as_encoded_bytes() == exe)
    {
        return false;
    }
    std::fs::read(task.join("cmdline")).is_ok_and(|cmdline| {
        cmdline
            .split(|b| *b == 0)
            .any(|arg| names_inside(arg, needle))
    })
}

/// The executable of the process at `/proc/<pid>` (`process`), and the directory to read its
/// other facts from. A zombie main thread has no memory map, so its `exe` and `cmdline` are
/// gone: they are read from a thread still running (`task/<tid>`), if any. A process with
/// only its main thread has none to ask — every kernel thread, whose `exe` is never there —
/// and is passed over after one `stat` of its `task` directory (whose link count is 2 plus
/// its threads) instead of a listing.
fn executable_of(process: &Path) -> Option<(PathBuf, PathBuf)> {
    use std::os::unix::fs::MetadataExt;
    if let Ok(exe) = std::fs::read_link(process.join("exe")) {
        return Some((process.to_path_buf(), exe));
    }
    let tasks = process.join("task");
    if std::fs::metadata(&tasks).ok()?.nlink() <= 3 {
        return None;
    }
    std::fs::read_dir(tasks).ok()?.flatten().find_map(|thread| {
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

    #[test]
    fn the_marks_of_several_binaries_are_found_in_one_pass() {
        let dir = tempfile::tempdir().unwrap();
        let vm_dir = dir.path().join("vm1");
        std::fs::create_dir(&vm_dir).unwrap();
        std::fs::write(vm_dir.join("log"), "").unwrap();
        let (sh, tail) = (which("sh"), which("tail"));
        let mut shell = std::process::Command::new(&sh)
            .args(["-c", "sleep 30; :"])
            .arg(vm_dir.join("marker"))
            .spawn()
            .unwrap();
        let mut follower = std::process::Command::new(&tail)
            .arg("-f")
            .arg(vm_dir.join("log"))
            .spawn()
            .unwrap();
        let marks = |binaries: Vec<PathBuf>| Marks {
            binaries,
            roots: vec![dir.path().join("no-such-jail")],
        };
        let both = find_marked(&marks(vec![sh.clone(), tail.clone()]), &vm_dir).unwrap();
        for child in [&shell, &follower] {
            assert!(both.iter().any(|p| p.pid == child.id()), "{both:?}");
        }
        let only_tail = find_marked(&marks(vec![tail.clone()]), &vm_dir).unwrap();
        assert!(only_tail.iter().any(|p| p.pid == follower.id()));
        assert!(only_tail.iter().all(|p| p.pid != shell.id()));
        assert!(find_marked(&Marks::default(), &vm_dir).unwrap().is_empty());
        // The marks of two drivers merge without repeating one.
        let mut merged = marks(vec![sh.clone()]);
        merged.extend(marks(vec![tail.clone(), sh.clone()]));
        assert_eq!(merged.binaries, vec![sh, tail]);
        assert_eq!(merged.roots.len(), 1);
        for child in [&mut shell, &mut follower] {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    #[test]
    fn a_process_with_one_thread_and_no_executable_is_passed_over() {
        // Kernel threads have no `exe`; a directory standing in for one, whose `task` has no
        // other thread (link count 2 + 1), is passed over without being listed.
        let dir = tempfile::tempdir().unwrap();
        let process = dir.path().join("2");
        std::fs::create_dir_all(process.join("task").join("2")).unwrap();
        assert_eq!(executable_of(&process), None);
        // A live process answers from its own `exe`.
        let me = Path::new("/proc/self");
        let (task, exe) = executable_of(me).unwrap();
        assert_eq!(task, me);
        assert_eq!(exe, std::env::current_exe().unwrap());
    }

    fn which(name: &str) -> std::path::PathBuf {
        banger_system::runner::lookup_executable(name)
            .unwrap_or_else(|| panic!("{name} is not installed"))
    }
}
