//! Where tracefs is: bpftrace reads the tracepoints' ids and formats
//! there, and [`super::probes::plan`] reads their formats.

use std::io;
use std::path::{Path, PathBuf};

/// Where tracefs is, and whether capsnap mounted it.
pub(super) struct Tracefs {
    pub(super) path: PathBuf,
    pub(super) mounted: bool,
}

/// Finds tracefs, mounting it on /sys/kernel/tracing if needed.
///
/// bpftrace reads tracepoint formats and ids there. `ip netns exec` (and a
/// container) mounts a fresh sysfs, where /sys/kernel/tracing is an empty
/// directory. A mount made here is left in place: it is what systemd does at
/// boot, it vanishes with a private mount namespace, and unmounting it could
/// pull it from under another session still compiling.
pub(super) fn ensure_tracefs() -> Result<Tracefs, String> {
    const TRACING: &str = "/sys/kernel/tracing";
    const DEBUG_TRACING: &str = "/sys/kernel/debug/tracing";
    for dir in [TRACING, DEBUG_TRACING] {
        if Path::new(dir).join("events").is_dir() {
            return Ok(Tracefs {
                path: PathBuf::from(dir),
                mounted: false,
            });
        }
    }
    if !Path::new(TRACING).is_dir() {
        return Err(format!(
            "kernel lacks it: no {TRACING} (kernel built without tracefs?)"
        ));
    }
    let c = |s: &str| std::ffi::CString::new(s).expect("no NUL in constants");
    let (src, target, fstype) = (c("nodev"), c(TRACING), c("tracefs"));
    // SAFETY: valid NUL-terminated strings, no data argument.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(format!(
            "permission: tracefs is not mounted on {TRACING} and mounting it failed ({e}); \
             bpftrace needs it for tracepoints"
        ));
    }
    if Path::new(TRACING).join("events").is_dir() {
        Ok(Tracefs {
            path: PathBuf::from(TRACING),
            mounted: true,
        })
    } else {
        Err(format!(
            "kernel lacks it: tracefs mounted on {TRACING} has no events/"
        ))
    }
}
