//! Helpers shared by the storage tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

/// Runs test `name` of this test binary again in a private mount namespace (`unshare`), where it
/// may mount freely, with `env` naming a scratch directory made (and removed) out here, where the
/// mounts are invisible. In the rerun (`env` set) it calls `inner` with that directory instead.
/// A line of the rerun's output starting with "skipped" is passed on; no `unshare` skips.
pub fn in_mount_namespace(name: &str, env: &str, inner: fn(&Path)) {
    if let Some(dir) = std::env::var_os(env) {
        return inner(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--test-threads=1", "--nocapture"])
        .env(env, dir.path())
        .output();
    match out {
        Ok(o) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            assert!(
                o.status.success(),
                "{name} failed in its mount namespace:\n{text}"
            );
            if let Some(skipped) = text.lines().find(|l| l.starts_with("skipped")) {
                eprintln!("{skipped}");
            }
        }
        Err(e) => eprintln!("skipped: cannot run unshare: {e}"),
    }
}
