//! Builds the built-in pause program (`pause/pause.c`) with the system C
//! compiler as a static, libc-free executable; `src/pause.rs` embeds it.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = PathBuf::from("pause/pause.c");
    println!("cargo:rerun-if-changed={}", source.display());
    println!("cargo:rerun-if-env-changed=CC");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("pause");
    let cc = std::env::var("CC").unwrap_or_else(|_| "gcc".into());
    let status = Command::new(&cc)
        .args([
            "-Os",
            "-Wall",
            "-Werror",
            "-nostdlib",
            "-static",
            "-fno-pie",
            "-no-pie",
            "-fno-stack-protector",
            "-fno-asynchronous-unwind-tables",
            "-fno-ident",
            "-Wl,--build-id=none",
            "-Wl,-s",
            "-o",
        ])
        .arg(&out)
        .arg(&source)
        .status()
        .unwrap_or_else(|e| panic!("run {cc} to build the pause program: {e}"));
    assert!(
        status.success(),
        "{cc} failed to build {}: {status}",
        source.display()
    );
}
