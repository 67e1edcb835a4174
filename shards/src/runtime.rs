//! Start-up checks: can this process run glommio executors at all?
//!
//! io_uring may be switched off (`kernel.io_uring_disabled`, container seccomp profiles) and
//! glommio needs some locked memory. Both are checked before any executor starts, so the user
//! gets one sentence saying what to change instead of a panic from deep inside the runtime.

use std::io;

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use thiserror::Error;

/// The locked memory glommio refuses to start without, per process.
pub const MEMLOCK_BYTES_MIN: u64 = 512 << 10;

#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error("io_uring is not available ({cause}). {advice}")]
    IoUringUnavailable { cause: io::Error, advice: String },
    #[error(
        "the locked-memory limit is {limit_bytes} bytes; the shards need at least \
         {MEMLOCK_BYTES_MIN}. Raise it with `ulimit -l 1024` (shell), `LimitMEMLOCK=1M` \
         (systemd unit) or `--ulimit memlock=1048576` (docker)"
    )]
    MemlockTooLow { limit_bytes: u64 },
}

/// Checks io_uring and the memlock limit, raising the soft memlock limit up to the hard
/// limit if that is enough.
pub fn check() -> Result<(), RuntimeError> {
    check_io_uring()?;
    ensure_memlock(MEMLOCK_BYTES_MIN)
}

fn check_io_uring() -> Result<(), RuntimeError> {
    match io_uring::IoUring::new(2) {
        Ok(_) => Ok(()),
        Err(cause) => {
            let advice = advice(cause.raw_os_error(), read_disabled_sysctl());
            Err(RuntimeError::IoUringUnavailable { cause, advice })
        }
    }
}

fn read_disabled_sysctl() -> Option<u8> {
    std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// What to change, given the errno of `io_uring_setup` and `kernel.io_uring_disabled`.
fn advice(errno: Option<i32>, sysctl: Option<u8>) -> String {
    match (errno, sysctl) {
        (_, Some(2)) => "It is disabled for everyone by `kernel.io_uring_disabled = 2`; \
             run `sysctl -w kernel.io_uring_disabled=0`"
            .into(),
        (Some(libc_eperm), Some(1)) if libc_eperm == nix::libc::EPERM => {
            "It is limited to the group in `kernel.io_uring_group` by \
             `kernel.io_uring_disabled = 1`; add this user to that group or run \
             `sysctl -w kernel.io_uring_disabled=0`"
                .into()
        }
        (Some(e), _) if e == nix::libc::ENOSYS => "The kernel lacks io_uring (Linux 5.8 or \
             newer with CONFIG_IO_URING is needed), or a seccomp filter hides it"
            .into(),
        _ => "If this runs in a container, allow the io_uring_setup, io_uring_enter and \
              io_uring_register system calls in its seccomp profile"
            .into(),
    }
}

fn ensure_memlock(needed: u64) -> Result<(), RuntimeError> {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_MEMLOCK) else {
        return Ok(()); // Cannot tell; let glommio report it if it matters.
    };
    if soft >= needed {
        return Ok(());
    }
    if hard >= needed && setrlimit(Resource::RLIMIT_MEMLOCK, needed, hard).is_ok() {
        return Ok(());
    }
    Err(RuntimeError::MemlockTooLow { limit_bytes: soft })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_names_the_switch_to_flip() {
        assert!(advice(Some(nix::libc::EPERM), Some(2)).contains("io_uring_disabled=0"));
        assert!(advice(Some(nix::libc::EPERM), Some(1)).contains("io_uring_group"));
        assert!(advice(Some(nix::libc::ENOSYS), None).contains("Linux 5.8"));
        assert!(advice(Some(nix::libc::EPERM), Some(0)).contains("seccomp"));
    }

    #[test]
    fn this_machine_can_run_shards() {
        check().expect("io_uring and memlock must be usable where the tests run");
    }
}
