//! The pseudo file system (RFC 8881 §7.3): read-only directories that join the exports' mount
//! paths under one root, so a client reaches `/srv/data` by PUTROOTFH, LOOKUP "srv", LOOKUP
//! "data". Its nodes are the mount paths' proper prefixes; a client sees only those leading to an
//! export one of whose rules covers its address (as Linux's nfsd hides exports a client may not
//! mount).
//!
//! A pseudo node's handle is a marker and a hash of its path: it grants nothing (the node has no
//! data), and it stays valid as long as some export keeps the path, across restarts.

use std::net::IpAddr;
use std::sync::Arc;

use crate::exports::{Export, ExportTable};

/// First byte of a pseudo handle: never a layout version of an export handle.
pub const PSEUDO_MARK: u8 = 0xF4;
/// Bytes of a pseudo handle: the marker, and 16 bytes of the path's hash.
pub const PSEUDO_HANDLE_BYTES: usize = 17;

/// What a name in a pseudo directory leads to.
pub enum Target {
    /// Another pseudo directory (its path).
    Dir(String),
    /// An export's root.
    Export(Arc<Export>),
}

/// The handle of the pseudo node at `path`.
pub fn handle(path: &str) -> Vec<u8> {
    let hash = blake3::hash(path.as_bytes());
    let mut h = Vec::with_capacity(PSEUDO_HANDLE_BYTES);
    h.push(PSEUDO_MARK);
    h.extend_from_slice(&hash.as_bytes()[..PSEUDO_HANDLE_BYTES - 1]);
    h
}

/// Whether `raw` is shaped like a pseudo handle.
pub fn is_pseudo_handle(raw: &[u8]) -> bool {
    raw.len() == PSEUDO_HANDLE_BYTES && raw[0] == PSEUDO_MARK
}

/// A node's file id: its hash, with the top bit set so it differs from the exports' ids it is
/// listed beside.
pub fn fileid(path: &str) -> u64 {
    let hash = blake3::hash(path.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_be_bytes(b) | (1 << 63)
}

/// The exports `ip` may use.
fn visible(table: &ExportTable, ip: IpAddr) -> impl Iterator<Item = &Arc<Export>> {
    table.iter().filter(move |e| e.rule_for(ip).is_some())
}

/// Whether `path` is a pseudo node for `ip`: the root, or a proper prefix (on component bounds)
/// of a visible export's mount path.
pub fn exists(table: &ExportTable, ip: IpAddr, path: &str) -> bool {
    path == "/" || visible(table, ip).any(|e| is_proper_prefix(path, &e.mount_path))
}

fn is_proper_prefix(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return path != "/";
    }
    path.len() > prefix.len() && path.starts_with(prefix) && path.as_bytes()[prefix.len()] == b'/'
}

/// The pseudo node whose handle is `raw`, if any (for PUTFH).
pub fn by_handle(table: &ExportTable, ip: IpAddr, raw: &[u8]) -> Option<String> {
    if handle("/") == raw {
        return Some("/".to_owned());
    }
    visible(table, ip)
        .flat_map(|e| prefixes(&e.mount_path))
        .find(|p| handle(p) == raw)
}

/// The proper prefixes of `path` below the root ("/a/b/c" → "/a", "/a/b").
fn prefixes(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = path[at + 1..].find('/') {
        at += 1 + i;
        out.push(path[..at].to_owned());
    }
    out
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// What `name` in pseudo directory `dir` is, for `ip`.
pub fn child(table: &ExportTable, ip: IpAddr, dir: &str, name: &str) -> Option<Target> {
    let path = join(dir, name);
    if let Some(e) = visible(table, ip).find(|e| e.mount_path == path) {
        return Some(Target::Export(e.clone()));
    }
    exists(table, ip, &path).then_some(Target::Dir(path))
}

/// The entries of pseudo directory `dir`, sorted by name.
pub fn children(table: &ExportTable, ip: IpAddr, dir: &str) -> Vec<(String, Target)> {
    let mut names: Vec<String> = visible(table, ip)
        .filter(|e| is_proper_prefix(dir, &e.mount_path))
        .filter_map(|e| {
            let rest = e.mount_path[dir.len()..].trim_start_matches('/');
            rest.split('/').next().map(str::to_owned)
        })
        .collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|n| child(table, ip, dir, &n).map(|t| (n, t)))
        .collect()
}

/// The parent of pseudo path or mount path `path` (`None` for the root).
pub fn parent(path: &str) -> Option<String> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/".to_owned()),
        Some(i) => Some(path[..i].to_owned()),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_parents() {
        assert_eq!(prefixes("/a/b/c"), vec!["/a".to_owned(), "/a/b".to_owned()]);
        assert!(prefixes("/a").is_empty());
        assert_eq!(parent("/a/b").as_deref(), Some("/a"));
        assert_eq!(parent("/a").as_deref(), Some("/"));
        assert_eq!(parent("/"), None);
        assert!(is_proper_prefix("/", "/a"));
        assert!(is_proper_prefix("/a", "/a/b"));
        assert!(!is_proper_prefix("/a", "/ab"));
        assert!(!is_proper_prefix("/a", "/a"));
        assert!(is_pseudo_handle(&handle("/x")));
        assert_ne!(fileid("/a"), fileid("/b"));
    }
}
