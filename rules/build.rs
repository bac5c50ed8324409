//! Embeds every `packs/**/*.yml` (and `*.yaml`) file: writes `$OUT_DIR/packs.rs` with a sorted
//! list of `(path relative to packs/, include_str!(absolute path))`, so adding a pack file needs no
//! code change. A missing `packs/` directory yields an empty list.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let packs = manifest.join("packs");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", packs.display());
    let mut files = Vec::new();
    collect(&packs, &mut files);
    files.sort();
    let mut out = String::from("/// Built-in pack files: (path under `packs/`, contents).\n");
    out.push_str("pub(crate) static PACKS: &[(&str, &str)] = &[\n");
    for f in &files {
        let rel = f.strip_prefix(&packs).unwrap_or(f);
        let rel: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        println!("cargo:rerun-if-changed={}", f.display());
        let _ = writeln!(
            out,
            "    ({:?}, include_str!({:?})),",
            format!("packs/{}", rel.join("/")),
            f.display().to_string()
        );
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("packs.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        // A build script reports failure by panicking.
        panic!("cannot write {}: {e}", dest.display());
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
            out.push(path);
        }
    }
}
