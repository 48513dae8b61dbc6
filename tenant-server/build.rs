//! Link layout of the release `taskharbor` binary (x86_64 Linux, where
//! rustc links with its bundled LLD by default since 1.90):
//!
//! - `--symbol-ordering-file=link/hot-symbols.txt` packs the functions that
//!   run at start-up, while idle and on the agent hot path together at the
//!   start of `.text`, so an idle server maps a few MiB of code instead of
//!   most of it (see `link/generate.sh` and BENCHMARKS.md, "Idle RSS");
//! - `-z pack-relative-relocs` stores the relative relocations as RELR
//!   (glibc >= 2.36): ~1 MiB less relocation table read at every start.
//!
//! Names the binary no longer has are skipped (`--no-warn-symbol-ordering`):
//! a stale list costs memory, never correctness. `TASKHARBOR_NO_SYMBOL_ORDER=1`
//! turns both off (`link/generate.sh` builds that way).

use std::env;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=link/hot-symbols.txt");
    println!("cargo:rerun-if-env-changed=TASKHARBOR_NO_SYMBOL_ORDER");
    let var = |name: &str| env::var(name).unwrap_or_default();
    let lld_by_default = var("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu";
    if !lld_by_default
        || var("PROFILE") != "release"
        || !var("TASKHARBOR_NO_SYMBOL_ORDER").is_empty()
    {
        return;
    }
    let list = Path::new(&var("CARGO_MANIFEST_DIR")).join("link/hot-symbols.txt");
    if list.is_file() {
        println!(
            "cargo:rustc-link-arg-bin=taskharbor=-Wl,--symbol-ordering-file={}",
            list.display()
        );
        println!("cargo:rustc-link-arg-bin=taskharbor=-Wl,--no-warn-symbol-ordering");
    }
    println!("cargo:rustc-link-arg-bin=taskharbor=-Wl,-z,pack-relative-relocs");
}
