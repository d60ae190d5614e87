//! Writes the linker version script that puts the runtime entry points this library exports
//! under the symbol version `libcudart.so.13`, as `libcudart.so.13` itself does: a program
//! linked against the CUDA 13 runtime asks for `__cudaLaunchKernel@libcudart.so.13`, and only a
//! definition of that version (or an unversioned one) wins the binding. The functions get the
//! version through `.symver` directives next to their definitions (`src/runtime.rs`); the script
//! declares the version node they refer to.

use std::io::Write;

fn main() {
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let names = std::fs::read_to_string("src/runtime_exports.txt").expect("src/runtime_exports.txt");
    let path = format!("{out}/libcudart13.map");
    let mut f = std::fs::File::create(&path).expect("version script");
    writeln!(f, "libcudart.so.13 {{\n  global:").expect("write");
    for name in names.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        writeln!(f, "    {name};").expect("write");
    }
    writeln!(f, "}};").expect("write");
    println!("cargo:rerun-if-changed=src/runtime_exports.txt");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={path}");
}
