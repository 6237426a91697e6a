//! Writes the seed corpus: `cargo run --manifest-path fuzz/Cargo.toml --bin gen-corpus`.
//! With `--check` it writes nothing and fails if the committed seeds differ from the generated ones.
//! Either way every seed is first checked to decode with the real decoders (a seed that does not
//! is a wrong seed or a decoder bug). File names are stable, so re-running is idempotent.
use std::path::Path;
use std::process::ExitCode;

fn main() -> std::io::Result<ExitCode> {
    let check = std::env::args().any(|a| a == "--check");
    let bad = rnfs_fuzz::check_seeds();
    for b in &bad {
        eprintln!("seed does not decode: {b}");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut stale = 0;
    let mut count = 0;
    for (target, seeds) in rnfs_fuzz::seeds() {
        let dir = root.join(target);
        if !check {
            std::fs::create_dir_all(&dir)?;
        }
        for (name, bytes) in seeds {
            count += 1;
            let path = dir.join(format!("seed-{name}"));
            if check {
                if std::fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
                    eprintln!("{} is missing or stale", path.display());
                    stale += 1;
                }
            } else {
                std::fs::write(&path, &bytes)?;
                println!("{} ({} bytes)", path.display(), bytes.len());
            }
        }
    }
    if !bad.is_empty() || stale > 0 {
        if stale > 0 {
            eprintln!(
                "regenerate with: cargo run --manifest-path fuzz/Cargo.toml --bin gen-corpus"
            );
        }
        return Ok(ExitCode::FAILURE);
    }
    if check {
        println!("{count} seeds decode and match fuzz/corpus/");
    }
    Ok(ExitCode::SUCCESS)
}
