//! The system calls the collector makes in more than one place, each
//! written once: starting a child that dies with capsnap, entering a network
//! namespace, what the kernel is called, the time, whether capsnap is root,
//! and where an executable is.
//!
//! They live together because each one hides a rule of the kernel that is
//! easy to get wrong at a second call site: a parent-death signal follows
//! the thread that forked, not the process (prctl(2)); setns(2) moves only
//! the calling thread; a child's pre-exec code may make only
//! async-signal-safe calls (signal-safety(7)).

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// Spawns `cmd` as a child that never outlives capsnap and, given `netns`,
/// runs in that network namespace.
///
/// Every tool capsnap starts (`ip`, `conntrack`, `crictl`, bpftrace) is
/// bounded by capsnap's own run: a capsnap killed outright (SIGKILL, the
/// OOM killer) must not leave a bpftrace with its probes attached, or a
/// hung `conntrack -L` running on. So the child asks, between fork and
/// exec, for SIGKILL when its parent dies (prctl(2) `PR_SET_PDEATHSIG`).
///
/// The caveat of prctl(2): the "parent" is the *thread* that forked, and
/// the signal comes when that thread exits, even while the rest of capsnap
/// runs. Call this from a thread that outlives the child: one that waits
/// for it, or for a long-lived child (bpftrace), the thread that will stop
/// it. The setting is also cleared by exec of a set-user-ID binary or one
/// with file capabilities (prctl(2)); the tools capsnap runs are not
/// normally installed that way.
///
/// The namespace is entered in the child, after fork, with setns(2) on
/// `netns` (a namespace file such as `/proc/PID/ns/net`): capsnap's own
/// threads stay where they are. A child that cannot enter it fails to
/// spawn with the setns error (EPERM: `ErrorKind::PermissionDenied`).
///
/// Each call adds its pre-exec step to `cmd`: spawn a given `Command` once.
/// Steps the caller added before (with `pre_exec`) run first.
pub fn spawn_tied(cmd: &mut Command, netns: Option<BorrowedFd<'_>>) -> io::Result<Child> {
    // SAFETY: getpid() cannot fail.
    let parent = unsafe { libc::getpid() };
    // The fd is only read by the child, which gets a copy of the descriptor
    // table at fork: `netns` is borrowed until `spawn` has returned, so it
    // is open at that moment.
    let netns: Option<RawFd> = netns.map(|fd| fd.as_raw_fd());
    // SAFETY: the closure runs in the forked child before exec and makes
    // only async-signal-safe calls (prctl, getppid, setns; building an
    // io::Error from errno does not allocate).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // capsnap died between fork and prctl: the signal will not
            // come, and the child now belongs to init (or a subreaper).
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            if let Some(fd) = netns {
                setns_net(fd)?;
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Moves the calling thread into the network namespace whose file is at
/// `ns` (`/proc/PID/ns/net`, `/var/run/netns/NAME`).
///
/// Only this thread moves (setns(2)); run it on a thread of its own that
/// does nothing else afterwards. Sockets it opens then belong to that
/// namespace for their whole life, and so does what it reads under
/// `/proc/thread-self/net`. `Err` says why, worded for a report.
/// Waits for `child` until `deadline`, then kills it: its exit status, or
/// None when it was killed (or could not be waited for).
pub fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => return None,
        }
    }
}

pub fn enter_netns(ns: &Path) -> Result<(), String> {
    let file = File::open(ns).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => format!(
            "namespace file {} not found (the namespace or its process is gone)",
            ns.display()
        ),
        io::ErrorKind::PermissionDenied => format!("permission: cannot open {}", ns.display()),
        _ => format!("cannot open namespace file {}: {e}", ns.display()),
    })?;
    enter_netns_file(&file, ns)
}

/// [`enter_netns`] with the namespace file already open (`path` names it in
/// the error).
pub fn enter_netns_file(file: &File, path: &Path) -> Result<(), String> {
    setns_net(file.as_raw_fd()).map_err(|e| match e.raw_os_error() {
        // setns(2): EPERM without CAP_SYS_ADMIN in the namespace's owning
        // user namespace.
        Some(libc::EPERM) => "permission: setns needs root".to_string(),
        // setns(2): EINVAL when the fd is a namespace of another type.
        Some(libc::EINVAL) => format!("{} is not a network namespace", path.display()),
        _ => format!("cannot enter namespace {}: {e}", path.display()),
    })
}

/// setns(2) into the network namespace of `fd`, for the calling thread.
/// Async-signal-safe, so that a child can call it between fork and exec.
fn setns_net(fd: RawFd) -> io::Result<()> {
    // SAFETY: setns only reads the descriptor number; a closed or foreign
    // fd makes it fail with EBADF or EINVAL.
    if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The running kernel, as uname(2) names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    /// `Linux`.
    pub sysname: String,
    /// `6.18.0-1-amd64`.
    pub release: String,
    /// `x86_64`.
    pub machine: String,
}

/// What uname(2) says of the running kernel; `None` if it fails (it does
/// not on Linux, but the manifest and the pcapng header do without).
pub fn kernel() -> Option<Kernel> {
    // SAFETY: utsname is plain data; all-zero is a valid value of it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uname fills the struct it is given.
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    let text = |field: &[libc::c_char]| {
        // SAFETY: uname NUL-terminates its fields.
        unsafe { std::ffi::CStr::from_ptr(field.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    Some(Kernel {
        sysname: text(&u.sysname),
        release: text(&u.release),
        machine: text(&u.machine),
    })
}

/// Nanoseconds since the epoch (CLOCK_REALTIME), now; 0 before 1970.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// When the node booted, nanoseconds since the epoch: the wall clock minus
/// CLOCK_BOOTTIME, as dmesg computes it for its printed times (so it
/// drifts from the kernel log's clock by the time spent suspended).
pub fn boot_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: t is a valid timespec to write.
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut t) } != 0 {
        return 0;
    }
    let since_boot = u64::try_from(t.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(t.tv_nsec).unwrap_or(0));
    now_ns().saturating_sub(since_boot)
}

/// Whether capsnap runs as root (effective uid 0), which every privileged
/// source needs: setns, packet sockets, bpftrace.
pub fn is_root() -> bool {
    // SAFETY: geteuid() cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// Resolves `name` like execvp() would: a path if it has a slash, else the
/// first executable file of that name on $PATH.
pub fn find_executable(name: &str) -> Option<PathBuf> {
    let is_exe = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if name.is_empty() {
        return None;
    }
    if name.contains('/') {
        let p = PathBuf::from(name);
        return is_exe(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_exe(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn tied_child_dies_with_the_thread_that_spawned_it() {
        // prctl(2)'s caveat, relied on by `spawn_tied`'s callers: the signal
        // follows the forking thread, not the process.
        let mut child = std::thread::spawn(|| {
            spawn_tied(Command::new("sleep").arg("60"), None).expect("spawn sleep")
        })
        .join()
        .expect("spawning thread");
        let status = child.wait().expect("wait");
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    }

    #[test]
    fn tied_child_runs_in_the_namespace_given() {
        let ns = File::open("/proc/self/ns/net").expect("own netns");
        let mut cmd = Command::new("readlink");
        cmd.arg("/proc/self/ns/net")
            .stdout(std::process::Stdio::piped());
        let child = spawn_tied(&mut cmd, Some(ns.as_fd()));
        if !is_root() {
            // setns(2) needs CAP_SYS_ADMIN even to enter one's own namespace.
            let err = child.expect_err("setns without root");
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
            return;
        }
        let output = child.expect("spawn").wait_with_output().expect("wait");
        let own = std::fs::read_link("/proc/self/ns/net").expect("readlink");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            own.to_string_lossy()
        );
    }

    #[test]
    fn entering_what_is_not_a_network_namespace_says_so() {
        // Each fails before the thread moves, so the test thread stays put.
        let cases: &[(&str, &str)] = &[
            (
                "/nonexistent/ns/net",
                "namespace file /nonexistent/ns/net not found (the namespace or its process is gone)",
            ),
            // setns(2) checks the namespace type before the capability.
            (
                "/proc/self/ns/mnt",
                "/proc/self/ns/mnt is not a network namespace",
            ),
        ];
        for (path, expected) in cases {
            assert_eq!(enter_netns(Path::new(path)), Err(expected.to_string()));
        }
    }

    #[test]
    fn kernel_is_named() {
        let k = kernel().expect("uname");
        assert_eq!(k.sysname, "Linux");
        assert!(!k.release.is_empty() && !k.machine.is_empty(), "{k:?}");
    }

    #[test]
    fn executables_are_found_like_execvp() {
        let sh = find_executable("sh").expect("sh on $PATH");
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{}", sh.display());
        assert_eq!(find_executable("/bin/sh"), Some(PathBuf::from("/bin/sh")));
        for missing in [
            "",
            "/nonexistent/sh",
            "/proc/version",
            "capsnap-no-such-tool",
        ] {
            assert_eq!(find_executable(missing), None, "{missing}");
        }
    }
}
