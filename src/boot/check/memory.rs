//! The smallest guest memory (the VMM's memory size) with which a Linux
//! kernel unpacks the archive and starts `/init`.
//!
//! What the kernel does (6.1; init/initramfs.c, mm/shmem.c,
//! init/do_mounts.c, free_initrd_mem):
//! - With no `root=`, the rootfs is a tmpfs. Its size limit is fixed when
//!   it is mounted, early in boot: `totalram_pages() / 2`
//!   (`shmem_default_max_blocks`), in pages.
//! - At that time `totalram` is the guest's memory less what the kernel
//!   keeps for itself: its image and early allocations (`K`, a constant),
//!   `struct page` for every page plus hash tables sized by memory (a
//!   fraction `r` of the memory), and the initrd, which stays reserved
//!   until `free_initrd_mem` runs after unpacking (along with the kernel's
//!   init sections, counted in `K`).
//! - Unpacking writes each regular file into that tmpfs: `ceil(size /
//!   4096)` pages a file (hardlinks once), one page for a symlink whose
//!   target is 128 bytes or more (`SHORT_SYMLINK_LEN`); directories and
//!   short symlinks use none. A write past the limit fails the unpack
//!   ("Initramfs unpacking failed: write error") and the boot.
//! - The other half of `totalram` must still hold what the kernel needs to
//!   get to `/init` (`W`, plus about 1 KiB of inode and dentry per entry).
//!
//! So with `T` the tmpfs pages of the tree, `I` the initrd (as the VMM
//! loads it, compressed) and `n` the entries:
//!
//! `guest = (K + I + T + max(T, W + n * 1 KiB)) / (1 - r)`
//!
//! rounded up to a MiB. K, W and r were measured with Debian's 6.1 cloud
//! kernel for amd64 under QEMU (`MemTotal` at 72 MiB to 2 GiB of guest
//! memory, the tmpfs size `statfs` reports, and the smallest memory that
//! boots): K = 42 MiB (33 MiB kept for good, 8.7 MiB of init sections
//! freed only after unpacking), r = 2.13 % (a 64-byte `struct page` per
//! 4 KiB page, 1.56 %, and hash tables sized in powers of two: the kept
//! memory is a staircase over 72 MiB..2 GiB, and K + rM its upper
//! envelope, touching it at 128 and 659 MiB), W = 30 MiB (a
//! 2 MiB tree boots at 72 MiB and runs out of memory at 70 MiB, but boots
//! that close to the edge vary: one in several at 73 MiB ran out of
//! memory, so W has 4 MiB of margin; below 128 MiB the kernel keeps about
//! 1 MiB more than K + rM, which W covers).
//!
//! arm64 (Debian's 6.1 cloud kernel for arm64, QEMU `virt`, cortex-a57,
//! `benches/guest-memory-fit.sh arm64`) differs in one large term: the
//! kernel sets aside a 64 MiB CMA area (`CONFIG_CMA_SIZE_MBYTES`) early in
//! boot and hands it to the page allocator only at `core_initcall`, after
//! the rootfs tmpfs took its size, so the tmpfs gets 32 MiB less. Whether
//! the area is reserved depends on where the VMM puts the initrd (QEMU:
//! not up to 128 MiB, in every boot from 160 MiB), so the figure assumes
//! it is. Measured from the tmpfs size (`statfs`) every 32 MiB from 160 to
//! 2048 MiB: at mount time the kernel keeps 96.6 MiB at 160 MiB and 130.9
//! MiB at 2 GiB (30.1 MiB at 64 MiB, without the area). The staircase is
//! regular: `struct page` lives in 2 MiB blocks of the vmemmap, each for
//! 128 MiB, so 2.06 MiB more past every multiple of 128 MiB, plus hash
//! tables (3.6 MiB more past 1 GiB). Taking every step at the lowest size
//! it can be at, amd64's r = 2.13 % with K = 93.7 MiB is the upper
//! envelope (touching at 257 MiB), so K = 94 MiB: 64 MiB of CMA, 25 MiB
//! kept for good and 4.5 MiB of init sections. W = 20 MiB: a 2 MiB tree
//! boots at 50 MiB (no CMA area there) and runs out of memory at 49 MiB,
//! which leaves 16 MiB, plus amd64's 4 MiB of margin. 200 MiB of random
//! files (`-c none`) fail the unpack at 712 MiB and boot at 713; the
//! figure is 715 (amd64's constants gave 662).
//!
//! Other architectures get amd64's constants, unmeasured. Another kernel,
//! or a kernel with modules built in or with `cma=0`, keeps another K: the
//! `--kernel-footprint` option sets it.

/// Page size the tmpfs accounts in.
pub const PAGE: u64 = 4096;
/// Symlink targets this long or longer take a page (with the NUL, more
/// than `SHORT_SYMLINK_LEN`, 128).
const SHORT_SYMLINK_LEN: usize = 128;
/// Slab memory per archive entry: a tmpfs inode and its dentry.
const PER_ENTRY: u64 = 1024;

/// The measured constants of one kernel: what it keeps of the guest's
/// memory and what it needs free to reach `/init`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernel {
    /// What the kernel keeps of the guest's memory before it unpacks (K).
    pub footprint: u64,
    /// Free memory the kernel needs to get to `/init` (W).
    pub working_set: u64,
    /// Per 10000 bytes of guest memory, bytes the kernel keeps for page
    /// structures and hash tables (r).
    pub reserved_per_10000: u16,
}

impl Kernel {
    /// Debian's 6.1 cloud kernel for amd64.
    pub const AMD64: Kernel = Kernel {
        footprint: 42 << 20,
        working_set: 30 << 20,
        reserved_per_10000: 213,
    };
    /// Debian's 6.1 cloud kernel for arm64: K holds its 64 MiB CMA area.
    pub const ARM64: Kernel = Kernel {
        footprint: 94 << 20,
        working_set: 20 << 20,
        reserved_per_10000: 213,
    };

    /// The kernel for an image's OCI architecture (`amd64`, `arm64`, ...);
    /// architectures not measured get amd64's constants.
    pub fn for_architecture(architecture: &str) -> Kernel {
        match architecture {
            "arm64" => Kernel::ARM64,
            _ => Kernel::AMD64,
        }
    }
}

/// The archive's tree as the tmpfs will hold it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tree {
    /// Bytes of tmpfs pages the files and long symlinks take.
    pub bytes: u64,
    /// Archive entries (inodes and dentries).
    pub entries: u64,
}

impl Tree {
    /// A regular file of `size` bytes (count each hardlink group once).
    pub fn add_file(&mut self, size: u64) {
        self.bytes += size.div_ceil(PAGE) * PAGE;
    }

    /// A symlink whose target is `target_len` bytes.
    pub fn add_symlink(&mut self, target_len: usize) {
        if target_len >= SHORT_SYMLINK_LEN {
            self.bytes += PAGE;
        }
    }
}

/// The smallest guest memory for an initrd of `initrd` bytes holding
/// `tree`, for `kernel`.
///
/// # Examples
///
/// ```
/// use initramfs_stream::boot::check::memory::{guest_memory, Kernel, Tree};
///
/// let mut tree = Tree::default();
/// tree.add_file(100 << 20);
/// tree.entries = 1;
/// let small = guest_memory(tree, 10 << 20, Kernel::AMD64);
/// // Files take tmpfs pages, and tmpfs may only use half of the memory.
/// assert!(small > 2 * (100 << 20) && small % (1 << 20) == 0);
/// ```
pub fn guest_memory(tree: Tree, initrd: u64, kernel: Kernel) -> u64 {
    let working = kernel
        .working_set
        .saturating_add(tree.entries.saturating_mul(PER_ENTRY));
    let needed = kernel
        .footprint
        .saturating_add(initrd)
        .saturating_add(tree.bytes)
        .saturating_add(tree.bytes.max(working));
    // needed / (1 - r)
    let kept = u128::from(kernel.reserved_per_10000.min(9999));
    let guest = (needed as u128 * 10000).div_ceil(10000 - kept);
    let mib = 1u128 << 20;
    u64::try_from(guest.div_ceil(mib) * mib).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_symlinks() {
        let mut t = Tree::default();
        t.add_file(0);
        t.add_file(1);
        t.add_file(4096);
        t.add_file(4097);
        t.add_symlink(127);
        t.add_symlink(128);
        assert_eq!(t.bytes, 5 * PAGE);
    }

    /// The measured case: 196 MiB of files in an uncompressed initrd fails
    /// at 640 MiB (the tmpfs is 184 KiB short) and boots at 700.
    #[test]
    fn measured_boundary() {
        let tree = Tree {
            bytes: 200_660 << 10,
            entries: 31,
        };
        let g = guest_memory(tree, 205_410_060, Kernel::AMD64);
        assert!(g > 640 << 20 && g <= 700 << 20, "{}", g >> 20);
        // Small archives: the kernel's working set decides.
        let small = guest_memory(
            Tree {
                bytes: 2 << 20,
                entries: 10,
            },
            1 << 20,
            Kernel::AMD64,
        );
        assert!(small > 64 << 20 && small <= 80 << 20, "{}", small >> 20);
    }

    /// arm64: 200 MiB of random files and busybox, uncompressed, fails the
    /// unpack at 712 MiB and boots at 713 (amd64's constants said 662).
    /// Small archives: the CMA area the figure assumes dominates.
    #[test]
    fn measured_boundary_arm64() {
        let mut tree = Tree {
            bytes: 0,
            entries: 33,
        };
        for _ in 0..20 {
            tree.add_file(10 << 20);
        }
        tree.add_file(1_848_032);
        let g = guest_memory(tree, 211_566_028, Kernel::for_architecture("arm64"));
        assert!(g > 712 << 20 && g <= 730 << 20, "{}", g >> 20);
        let small = Tree {
            bytes: 2 << 20,
            entries: 12,
        };
        let g = guest_memory(small, 1 << 20, Kernel::ARM64);
        assert!(g > 50 << 20 && g <= 130 << 20, "{}", g >> 20);
        assert_eq!(Kernel::for_architecture("riscv64"), Kernel::AMD64);
    }
}
