//! `clock.synced`: the kernel's clock is kept synchronised (NTP). SLA deadlines, signed links
//! and webhook signatures all read it.

use super::Finding;

const FIX: &str = "enable systemd-timesyncd or chrony (`timedatectl set-ntp true`)";

/// Asks the kernel (adjtimex, read only) whether its clock is synchronised.
#[cfg(target_os = "linux")]
pub fn check() -> Finding {
    // SAFETY: a zeroed `timex` is a valid value of this plain C struct; with `modes` 0,
    // adjtimex only fills it in and changes nothing, and the pointer is to a live local.
    let (state, status) = unsafe {
        let mut tx: libc::timex = std::mem::zeroed();
        let state = libc::adjtimex(&mut tx);
        (state, tx.status)
    };
    if state < 0 {
        return Finding::skip(
            "clock.synced",
            format!(
                "the kernel's clock state cannot be read: {}",
                std::io::Error::last_os_error()
            ),
        );
    }
    if state == libc::TIME_ERROR || status & libc::STA_UNSYNC != 0 {
        Finding::warn(
            "clock.synced",
            "the system clock is not synchronised: deadlines and signed links drift with it",
            FIX,
        )
    } else {
        Finding::ok("clock.synced", "the system clock is synchronised")
    }
}

#[cfg(not(target_os = "linux"))]
pub fn check() -> Finding {
    Finding::skip("clock.synced", "checked on Linux only")
}
