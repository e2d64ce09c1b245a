//! The disk budget of one collection: every writer into the staging
//! directory asks it before writing, so that a filling disk costs the
//! packet capture (the big writer, stopped first) and never the bundle.
//!
//! The staging directory sits on the output's file system, and the bundle
//! is written there too while the staging still exists: writing it needs
//! up to the staged size again (zstd never grows a tar stream by more than
//! its frame overhead). So a writer may go on only while
//! `free >= reserve + staged + n`; past that, [`DiskBudget::claim`] says no,
//! once and for good, and the capture ends as "partial" with the reason in
//! the manifest. The free space is read with statvfs(2) at most every
//! [`RESTAT_BYTES`] of claims, the bytes claimed since counted against it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Claims between two statvfs calls (other processes fill the disk too).
const RESTAT_BYTES: u64 = 1 << 20;

/// Largest reserve kept free on the output's file system; a small file
/// system keeps a twentieth of its size.
pub const MAX_RESERVE: u64 = 64 << 20;

/// The space one collection may use on the file system of its staging
/// directory.
#[derive(Debug)]
pub struct DiskBudget {
    dir: PathBuf,
    reserve: u64,
    staged: AtomicU64,
    /// (free bytes when last read, `staged` then).
    seen: Mutex<(u64, u64)>,
    low: AtomicBool,
}

impl PartialEq for DiskBudget {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for DiskBudget {}

impl DiskBudget {
    /// The budget of the file system holding `dir`, keeping
    /// `min(MAX_RESERVE, size / 20)` free beyond what the bundle needs.
    pub fn new(dir: &Path) -> DiskBudget {
        let (free, size) = statvfs(dir).unwrap_or((u64::MAX, u64::MAX));
        DiskBudget {
            dir: dir.to_owned(),
            reserve: MAX_RESERVE.min(size / 20),
            staged: AtomicU64::new(0),
            seen: Mutex::new((free, 0)),
            low: AtomicBool::new(false),
        }
    }

    /// Asks to write `n` more bytes into the staging directory. `Err`
    /// (kind StorageFull, naming the directory and the figures) when that
    /// would leave too little to write the bundle: the writer stops.
    pub fn claim(&self, n: u64) -> io::Result<()> {
        if self.low.load(Ordering::Relaxed) {
            return Err(self.why());
        }
        let staged = self.staged.fetch_add(n, Ordering::Relaxed) + n;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if staged.saturating_sub(seen.1) >= RESTAT_BYTES
            && let Some((free, _)) = statvfs(&self.dir)
        {
            *seen = (free, staged);
        }
        let free = seen.0.saturating_sub(staged.saturating_sub(seen.1));
        if free < self.reserve.saturating_add(staged) {
            self.low.store(true, Ordering::Relaxed);
            return Err(self.why());
        }
        Ok(())
    }

    /// Whether a writer was told to stop.
    pub fn is_low(&self) -> bool {
        self.low.load(Ordering::Relaxed)
    }

    /// Bytes claimed so far.
    pub fn staged(&self) -> u64 {
        self.staged.load(Ordering::Relaxed)
    }

    /// Why writers were stopped (or would be): the file system and figures.
    pub fn why(&self) -> io::Error {
        let free = statvfs(&self.dir).map_or(0, |(f, _)| f);
        io::Error::new(
            io::ErrorKind::StorageFull,
            format!(
                "disk space low on the file system of {}: {free} bytes free, {} kept for writing the bundle and a reserve of {}",
                self.dir.display(),
                self.staged(),
                self.reserve
            ),
        )
    }
}

/// (bytes available to us, total size) of the file system holding `dir`.
pub fn statvfs(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `st` is written by the call
    // before it is read (only when it returns 0).
    let st = unsafe {
        if libc::statvfs(c.as_ptr(), st.as_mut_ptr()) != 0 {
            return None;
        }
        st.assume_init()
    };
    let frsize = st.f_frsize as u64;
    Some((st.f_bavail as u64 * frsize, st.f_blocks as u64 * frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_stop_for_good_once_the_bundle_would_not_fit() {
        let dir = tempfile::tempdir().unwrap();
        let b = DiskBudget::new(dir.path());
        let (free, _) = statvfs(dir.path()).unwrap();
        b.claim(1000).unwrap();
        // Nothing is written here, so the free space stays: claiming all
        // of it leaves nothing for the bundle (the staged bytes again) and
        // the reserve.
        let err = b.claim(free - 1000).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert!(
            err.to_string().contains(&dir.path().display().to_string()),
            "{err}"
        );
        assert!(b.is_low());
        assert!(b.claim(1).is_err(), "a stopped writer stays stopped");
    }
}
