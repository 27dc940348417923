//! The static `/init` programs, built from the `init/` crate for each
//! architecture that has one and embedded here, so the tool needs no cross
//! toolchain to write them. `scripts/build-init.sh` rebuilds them from
//! source; `scripts/build-init.sh --check` proves the committed binaries
//! are exactly what the source builds.

static INIT_X86_64: &[u8] = include_bytes!("guest/init-x86_64");
static INIT_AARCH64: &[u8] = include_bytes!("guest/init-aarch64");

/// The static init for an image's platform (OCI `architecture` and
/// `variant`), or `None` for an architecture without one.
pub fn static_init(architecture: &str, variant: Option<&str>) -> Option<&'static [u8]> {
    match (architecture, variant) {
        ("amd64", _) => Some(INIT_X86_64),
        // arm64 images are v8 unless they say otherwise; v9 runs v8 code.
        ("arm64", None | Some("v8" | "v9")) => Some(INIT_AARCH64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ELF class 64, little-endian, and the machine the platform names.
    fn machine(elf: &[u8]) -> u16 {
        assert_eq!(&elf[..6], b"\x7fELF\x02\x01");
        u16::from_le_bytes([elf[18], elf[19]])
    }

    #[test]
    fn each_platform_gets_its_own_machine() {
        const EM_X86_64: u16 = 62;
        const EM_AARCH64: u16 = 183;
        assert_eq!(machine(static_init("amd64", None).unwrap()), EM_X86_64);
        assert_eq!(machine(static_init("arm64", None).unwrap()), EM_AARCH64);
        assert_eq!(
            machine(static_init("arm64", Some("v8")).unwrap()),
            EM_AARCH64
        );
        assert!(static_init("arm", Some("v7")).is_none());
        assert!(static_init("riscv64", None).is_none());
    }
}
