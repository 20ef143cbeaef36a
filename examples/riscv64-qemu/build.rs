//! Links the bare-metal kernel with `link.ld`; the host build (a stub
//! `main` that only says how to build the kernel) needs no script.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rerun-if-changed=build.rs");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
        println!(
            "cargo:rustc-link-arg-bins=-T{}",
            dir.join("link.ld").display()
        );
    }
}
