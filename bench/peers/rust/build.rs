//! Hands the program the versions it reports in its JSON context: tokio's and rayon's from
//! Cargo.lock (what this build resolved), rustc's from the compiler cargo runs.
use std::process::Command;

fn locked_version(lock: &str, name: &str) -> String {
    let want = format!("name = \"{}\"", name);
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == want {
            if let Some(v) = lines.next().and_then(|l| l.trim().strip_prefix("version = ")) {
                return v.trim_matches('"').to_string();
            }
        }
    }
    "unknown".to_string()
}

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let lock_path = format!("{}/Cargo.lock", dir);
    let lock = std::fs::read_to_string(&lock_path).unwrap_or_default();
    println!("cargo:rerun-if-changed={}", lock_path);
    println!("cargo:rustc-env=PEER_TOKIO_VERSION={}", locked_version(&lock, "tokio"));
    println!("cargo:rustc-env=PEER_RAYON_VERSION={}", locked_version(&lock, "rayon"));
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let out = Command::new(rustc).arg("--version").output().ok();
    let ver = out
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split_whitespace().nth(1).map(String::from))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=PEER_RUSTC_VERSION={}", ver);
}
