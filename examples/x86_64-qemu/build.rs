//! Links the kernel with `linker.ld` when building for bare metal
//! (`--target x86_64-unknown-none`); the host build (a `main` that says how
//! to run the kernel) links normally.

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=linker.ld");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    let dir = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    // The 32-bit boot code and the multiboot header hold absolute addresses,
    // and QEMU's loader applies no relocations: link a fixed-address
    // executable instead of the target's default static PIE.
    println!("cargo:rustc-link-arg-bins=--no-pie");
    println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
}
