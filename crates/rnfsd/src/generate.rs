//! `rnfsd generate`: man pages and shell completions made from the CLI's own definitions, so
//! they cannot drift from `--help` (packaging/build-deb runs it; nothing generated is committed).

use std::path::{Path, PathBuf};

use anyhow::Context;

/// The man section: rnfsd is a daemon and its administration tool.
pub(crate) const MAN_SECTION: &str = "8";

/// Writes `rnfsd.8` and one `rnfsd-SUBCOMMAND.8` per visible subcommand (nested ones as
/// `rnfsd-A-B.8`) into `dir`; returns the files written.
pub(crate) fn man_pages(cmd: clap::Command, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // build() names each subcommand `rnfsd-NAME` (its display name), which is the page's name.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    write_pages(&cmd, dir, &mut written)?;
    Ok(written)
}

fn write_pages(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone())
        .section(MAN_SECTION)
        .source(concat!("rnfsd ", env!("CARGO_PKG_VERSION")))
        .manual("System Administration");
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    man.render(&mut page)
        .with_context(|| format!("cannot render {}", path.display()))?;
    std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}

/// Writes the completion script for `shell` into `dir` (bash: `rnfsd`, zsh: `_rnfsd`, fish:
/// `rnfsd.fish`, ...); returns its path.
pub(crate) fn completions(
    mut cmd: clap::Command,
    shell: clap_complete::Shell,
    dir: &Path,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_complete::generate_to(shell, &mut cmd, "rnfsd", dir)
        .with_context(|| format!("cannot write {shell} completions into {}", dir.display()))
}
