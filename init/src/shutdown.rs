//! Ending the VM once the command is done (or could not start).
//!
//! Every other process gets SIGTERM, then SIGKILL after a short grace (or
//! as soon as none is left), filesystems are synced, and the machine is
//! told to stop. PID 1 must never exit, which would panic the kernel: if
//! every way to stop fails, it sleeps forever.
//!
//! How to stop depends on what ends the virtual machine monitor:
//! - aarch64: power-off goes through PSCI, which every VMM implements.
//! - x86_64 with ACPI and an S5 sleep state (a DSDT that contains `_S5_`:
//!   QEMU's pc and q35, Cloud Hypervisor): power-off. Without S5 the kernel
//!   turns power-off into a halt that never ends the VMM.
//! - x86_64 without S5 (Firecracker, QEMU microvm with acpi=off): reboot,
//!   which ends Firecracker (on the i8042 reset) and QEMU under -no-reboot.
//!   The kernel resets through the keyboard controller when there is one;
//!   when there is none (QEMU microvm) its fallback is a jump to the BIOS
//!   entry point, which boots the guest again without the VMM noticing. So
//!   without an i8042, and unless the kernel command line sets `reboot=`,
//!   init selects the triple-fault reset, which every VMM sees.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

/// Grace between SIGTERM and SIGKILL for processes left behind.
const GRACE: Duration = Duration::from_secs(1);

pub fn end_vm() -> ! {
    // SAFETY: kill(-1) signals every process but PID 1 itself.
    unsafe { libc::kill(-1, libc::SIGTERM) };
    if !reap_all_within(GRACE) {
        // SAFETY: as above.
        unsafe { libc::kill(-1, libc::SIGKILL) };
        reap_all_within(GRACE);
    }
    // SAFETY: no arguments.
    unsafe { libc::sync() };
    for cmd in stop_commands() {
        // SAFETY: reboot(2) with a command constant; returns only on failure.
        unsafe { libc::reboot(cmd) };
    }
    loop {
        // SAFETY: waits for a signal; none ends PID 1.
        unsafe { libc::pause() };
    }
}

/// Reaps children until there are none (true) or `limit` passes (false).
fn reap_all_within(limit: Duration) -> bool {
    let start = Instant::now();
    loop {
        // SAFETY: a null status pointer is allowed.
        let pid = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        if pid < 0 {
            return true; // ECHILD: nothing left
        }
        if pid == 0 {
            if start.elapsed() >= limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// reboot(2) commands to try, in order.
fn stop_commands() -> Vec<libc::c_int> {
    if cfg!(target_arch = "x86_64") && !acpi_can_power_off() {
        if !Path::new("/sys/devices/platform/i8042").exists() && !reboot_type_given() {
            if let Err(e) = fs::write("/sys/kernel/reboot/type", "triple") {
                crate::warn!("cannot select the triple-fault reset: {e}");
            }
        }
        vec![libc::RB_AUTOBOOT]
    } else {
        vec![libc::RB_POWER_OFF, libc::RB_AUTOBOOT]
    }
}

fn reboot_type_given() -> bool {
    fs::read("/proc/cmdline").is_ok_and(|text| crate::cmdline::has_param(&text, b"reboot"))
}

fn acpi_can_power_off() -> bool {
    fs::read("/sys/firmware/acpi/tables/DSDT").is_ok_and(|dsdt| has_s5(&dsdt))
}

fn has_s5(dsdt: &[u8]) -> bool {
    dsdt.windows(4).any(|w| w == b"_S5_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_s5_object() {
        assert!(has_s5(b"DSDT....\x08_S5_\x12\x06"));
        assert!(!has_s5(b"DSDT....\x08_S4_\x12\x06_S5"));
        assert!(!has_s5(b""));
    }
}
