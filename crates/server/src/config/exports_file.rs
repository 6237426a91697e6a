//! Linux `/etc/exports` syntax (exports(5)), mapped onto the same export table as the TOML
//! configuration: `rnfsd serve --exports FILE`, `rnfsd serve DIR -o OPTIONS` and
//! `rnfsd exports --check FILE`.
//!
//! ```text
//! # path          client(options) ...
//! /srv/data       192.168.1.0/24(rw,no_root_squash) *(ro)
//! "/srv/my files" -rw,insecure 10.0.0.0/8 \
//!                 2001:db8::/32(ro)
//! ```
//!
//! One export per logical line: a path (quoted if it holds spaces; `\040`-style octal escapes as in
//! exports(5)), then clients, each `host(options)`, a bare `host` (default options) or `-options`
//! (defaults for the clients after it). A line ending in `\` continues on the next; `#` starts a
//! comment. A client is `*`, an IPv4 or IPv6 address, a CIDR block (`a.b.c.d/255.255.0.0` too) or
//! a host name; wildcards in names, netgroups (`@group`) and Kerberos (`gss/...`) are refused.
//!
//! Defaults are Linux's: `ro`, `root_squash`, `secure`, `anonuid`/`anongid` 65534. Options that
//! describe what rnfsd always does (`sync`, `wdelay`, `no_wdelay`, `subtree_check`,
//! `no_subtree_check`, `hide`, `sec=sys`) are accepted and change nothing; options rnfsd cannot
//! honour (`async`, `nohide`, `crossmnt`, `sec=krb5`, ...) and unknown ones are refused with the
//! line, so an export never silently means less than it says.

use std::path::PathBuf;

use super::{default_backend, Access, ClientRuleConfig, ExportConfig, NOBODY};

/// Largest exports file read (a generous /etc/exports is a few KiB).
pub const EXPORTS_FILE_BYTES_MAX: usize = 1 << 20;
/// Longest physical line.
pub const EXPORTS_LINE_BYTES_MAX: usize = 4096;
/// Longest logical line (continuations joined).
pub const EXPORTS_ENTRY_BYTES_MAX: usize = 64 << 10;
/// Most clients on one export line.
pub const EXPORTS_CLIENTS_MAX: usize = 256;

/// Why an exports file is unusable: the 1-based line (0: the whole file) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{why}", line_prefix(*.line))]
pub struct ExportsError {
    pub line: usize,
    pub why: String,
}

fn line_prefix(line: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!("line {line}: ")
    }
}

/// Parses exports(5) text into exports, each with its client rules in the file's order.
pub fn parse_exports(text: &str) -> Result<Vec<ExportConfig>, ExportsError> {
    if text.len() > EXPORTS_FILE_BYTES_MAX {
        return Err(ExportsError {
            line: 0,
            why: format!("the file is larger than {EXPORTS_FILE_BYTES_MAX} bytes"),
        });
    }
    let mut exports: Vec<(usize, ExportConfig)> = Vec::new();
    for (line, entry) in logical_lines(text)? {
        let at = |why: String| ExportsError { line, why };
        let export = parse_entry(&entry).map_err(at)?;
        let Some(export) = export else { continue };
        if let Some((first, _)) = exports.iter().find(|(_, e)| e.path == export.path) {
            return Err(at(format!(
                "{} is already exported on line {first}; put all its clients on one line",
                export.path.display()
            )));
        }
        exports.push((line, export));
    }
    Ok(exports.into_iter().map(|(_, e)| e).collect())
}

/// The rule a `-o OPTIONS` list makes for `matches`, starting from `serve DIR`'s defaults
/// (`base`), and the export id an `fsid=N` sets.
pub fn apply_options(
    base: &ClientRuleConfig,
    options: &str,
) -> Result<(ClientRuleConfig, Option<u32>), String> {
    let mut rule = base.clone();
    let mut fsid = None;
    for word in options.split(',').filter(|w| !w.is_empty()) {
        apply_option(word, &mut rule, &mut fsid)?;
    }
    Ok((rule, fsid))
}

/// Linux's defaults for a client of an exports file.
pub fn linux_default_rule(matches: &str) -> ClientRuleConfig {
    ClientRuleConfig {
        matches: matches.to_owned(),
        access: Access::Ro,
        root_squash: true,
        all_squash: false,
        anonuid: NOBODY,
        anongid: NOBODY,
        secure: true,
    }
}

/// Joins continuation lines and drops comments and blank lines: (first line number, text).
fn logical_lines(text: &str) -> Result<Vec<(usize, String)>, ExportsError> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.len() > EXPORTS_LINE_BYTES_MAX {
            return Err(ExportsError {
                line,
                why: format!("longer than {EXPORTS_LINE_BYTES_MAX} bytes"),
            });
        }
        let content = strip_comment(raw);
        let (content, continues) = match content.trim_end().strip_suffix('\\') {
            Some(c) => (c, true),
            None => (content, false),
        };
        let (start, mut acc) = pending.take().unwrap_or((line, String::new()));
        if acc.len() + content.len() > EXPORTS_ENTRY_BYTES_MAX {
            return Err(ExportsError {
                line: start,
                why: format!("entry longer than {EXPORTS_ENTRY_BYTES_MAX} bytes"),
            });
        }
        acc.push(' ');
        acc.push_str(content);
        if continues {
            pending = Some((start, acc));
        } else if !acc.trim().is_empty() {
            out.push((start, acc));
        }
    }
    if let Some((start, acc)) = pending {
        if !acc.trim().is_empty() {
            out.push((start, acc));
        }
    }
    Ok(out)
}

/// The line up to a `#` that is not inside quotes.
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

/// One logical line: `None` when it holds nothing.
fn parse_entry(entry: &str) -> Result<Option<ExportConfig>, String> {
    let entry = entry.trim_start();
    if entry.is_empty() {
        return Ok(None);
    }
    let (path, rest) = split_path(entry)?;
    let path = unescape(&path)?;
    if !path.starts_with('/') {
        return Err(format!("{path:?}: the path must be absolute"));
    }
    let mut defaults = linux_default_rule("*");
    let mut fsid: Option<u32> = None;
    let mut clients = Vec::new();
    for token in rest.split_whitespace() {
        if let Some(opts) = token.strip_prefix('-') {
            for word in opts.split(',').filter(|w| !w.is_empty()) {
                apply_option(word, &mut defaults, &mut fsid)?;
            }
            continue;
        }
        if clients.len() == EXPORTS_CLIENTS_MAX {
            return Err(format!("more than {EXPORTS_CLIENTS_MAX} clients"));
        }
        clients.push(parse_client(token, &defaults, &mut fsid)?);
    }
    if clients.is_empty() {
        return Err(format!(
            "{path}: no client given; write `*(ro)` to export it to everyone"
        ));
    }
    Ok(Some(ExportConfig {
        path: PathBuf::from(path),
        mount_path: None,
        id: fsid,
        backend: default_backend(),
        ceph_conf: None,
        ceph_client_id: None,
        ceph_fs: None,
        clients,
    }))
}

/// The path (quoted or not, still escaped) and the rest of the line.
fn split_path(entry: &str) -> Result<(String, &str), String> {
    if let Some(quoted) = entry.strip_prefix('"') {
        let end = quoted
            .find('"')
            .ok_or_else(|| "the path's quote is not closed".to_owned())?;
        let rest = &quoted[end + 1..];
        if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
            return Err("expected a space after the quoted path".into());
        }
        return Ok((quoted[..end].to_owned(), rest));
    }
    let end = entry.find(char::is_whitespace).unwrap_or(entry.len());
    let path = &entry[..end];
    if path.contains('"') {
        return Err(format!("{path}: stray quote in the path"));
    }
    Ok((path.to_owned(), &entry[end..]))
}

/// Decodes exports(5)'s `\ooo` octal escapes (`\040` is a space).
fn unescape(path: &str) -> Result<String, String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let digits = bytes.get(i + 1..i + 4).unwrap_or_default();
            let value = std::str::from_utf8(digits)
                .ok()
                .filter(|d| d.len() == 3 && d.bytes().all(|b| (b'0'..=b'7').contains(&b)))
                .and_then(|d| u8::from_str_radix(d, 8).ok())
                .ok_or_else(|| format!("{path}: a backslash must start an octal escape (\\040)"))?;
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{path}: the escapes do not make UTF-8"))
}

/// `host(options)`, `host` or `(options)` (everyone, as Linux reads it).
fn parse_client(
    token: &str,
    defaults: &ClientRuleConfig,
    fsid: &mut Option<u32>,
) -> Result<ClientRuleConfig, String> {
    let (host, options) = match token.split_once('(') {
        None => (token, None),
        Some((host, rest)) => {
            let opts = rest.strip_suffix(')').ok_or_else(|| {
                format!("{token}: expected host(options), with no spaces in the options")
            })?;
            (host, Some(opts))
        }
    };
    let host = if host.is_empty() { "*" } else { host };
    let mut rule = defaults.clone();
    rule.matches = client_match(host)?;
    for word in options
        .unwrap_or_default()
        .split(',')
        .filter(|w| !w.is_empty())
    {
        apply_option(word, &mut rule, fsid)?;
    }
    Ok(rule)
}

/// A host pattern as a `match` of the TOML rules, or why it cannot be one.
fn client_match(host: &str) -> Result<String, String> {
    if host.starts_with('@') {
        return Err(format!(
            "{host}: netgroups are not supported; list the addresses"
        ));
    }
    if host.starts_with("gss/") {
        return Err(format!("{host}: Kerberos is not supported"));
    }
    if host != "*" && (host.contains('*') || host.contains('?') || host.contains('[')) {
        return Err(format!(
            "{host}: wildcards in host names are not supported; use a CIDR block, an address or a \
             full host name"
        ));
    }
    if let Some((addr, mask)) = host.split_once('/') {
        if let Ok(mask) = mask.parse::<std::net::Ipv4Addr>() {
            return Ok(format!("{addr}/{}", netmask_bits(host, mask)?));
        }
    }
    let valid = host.len() <= 255
        && !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:/*%".contains(&b));
    if !valid {
        return Err(format!("{host}: not an address, CIDR block or host name"));
    }
    Ok(host.to_owned())
}

/// The prefix length of a contiguous IPv4 netmask (`255.255.0.0` is 16).
fn netmask_bits(host: &str, mask: std::net::Ipv4Addr) -> Result<u32, String> {
    let m = u32::from(mask);
    if m.leading_ones() + m.trailing_zeros() != 32 {
        return Err(format!("{host}: the netmask is not contiguous"));
    }
    Ok(m.leading_ones())
}

/// Applies one exports(5) option to `rule` (or the export's id, for `fsid=`).
fn apply_option(
    word: &str,
    rule: &mut ClientRuleConfig,
    fsid: &mut Option<u32>,
) -> Result<(), String> {
    let (key, value) = match word.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (word, None),
    };
    match (key, value) {
        ("ro", None) => rule.access = Access::Ro,
        ("rw", None) => rule.access = Access::Rw,
        ("root_squash", None) => rule.root_squash = true,
        ("no_root_squash", None) => rule.root_squash = false,
        ("all_squash", None) => rule.all_squash = true,
        ("no_all_squash", None) => rule.all_squash = false,
        ("secure", None) => rule.secure = true,
        ("insecure", None) => rule.secure = false,
        ("anonuid", Some(v)) => rule.anonuid = id_value(word, v)?,
        ("anongid", Some(v)) => rule.anongid = id_value(word, v)?,
        ("fsid", Some(v)) => *fsid = Some(fsid_value(word, v, *fsid)?),
        ("sec", Some(v)) => sec_value(v)?,
        // What rnfsd always does: replies after the change is as stable as the call asked
        // (sync), no write gathering to turn off, every handle checked to lie inside its export
        // (stricter than subtree_check), mounts below an export not crossed (hide).
        ("sync" | "wdelay" | "no_wdelay" | "subtree_check" | "no_subtree_check" | "hide", None) => {
        }
        ("async", None) => {
            return Err(
                "async is not supported: rnfsd never acknowledges a stable write before \
                        it is on disk (drop it; sync is what rnfsd does)"
                    .into(),
            )
        }
        ("nohide" | "crossmnt", None) => {
            return Err(format!(
                "{word} is not supported: rnfsd does not cross into file systems mounted below \
                 an export; export each one"
            ))
        }
        _ => return Err(format!("unknown or unsupported option {word:?}")),
    }
    Ok(())
}

/// A uid or gid: a decimal 32-bit id other than -1 (which the kernel reads as "no change").
fn id_value(word: &str, v: &str) -> Result<u32, String> {
    v.parse::<u32>()
        .ok()
        .filter(|id| *id != u32::MAX)
        .ok_or_else(|| format!("{word}: expected a numeric id"))
}

/// `fsid=N` names the export's id (part of every file handle); 0 and UUIDs mean other things.
fn fsid_value(word: &str, v: &str, before: Option<u32>) -> Result<u32, String> {
    if v == "0" || v == "root" {
        return Err(format!(
            "{word}: rnfsd builds the NFSv4 pseudo root from the exports itself; drop it"
        ));
    }
    let id: u32 = v
        .parse()
        .map_err(|_| format!("{word}: only numeric fsids are supported"))?;
    match before {
        Some(b) if b != id => Err(format!("{word}: the export already has fsid={b}")),
        _ => Ok(id),
    }
}

/// Only AUTH_SYS is served (`sec=sys`; AUTH_NONE callers act as the anonymous identity anyway).
fn sec_value(v: &str) -> Result<(), String> {
    if v.split(':').all(|f| f == "sys") {
        Ok(())
    } else {
        Err(format!(
            "sec={v}: only sec=sys is supported (no Kerberos yet)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> ExportConfig {
        let mut e = parse_exports(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(e.len(), 1, "{text:?}");
        e.remove(0)
    }

    fn err(text: &str) -> ExportsError {
        parse_exports(text).expect_err(text)
    }

    #[test]
    fn linux_lines_map_onto_rules() {
        let e = one("/srv/data 192.168.1.0/24(rw,no_root_squash,sync,no_subtree_check) *(ro)\n");
        assert_eq!(e.path, PathBuf::from("/srv/data"));
        assert_eq!(e.id, None);
        assert_eq!(e.clients.len(), 2);
        let r = &e.clients[0];
        assert_eq!(r.matches, "192.168.1.0/24");
        assert_eq!(r.access, Access::Rw);
        assert!(!r.root_squash && !r.all_squash && r.secure);
        let r = &e.clients[1];
        assert_eq!(
            (r.matches.as_str(), r.access, r.root_squash),
            ("*", Access::Ro, true)
        );
        let e = one("/x host.example.com(all_squash,anonuid=1000,anongid=100,insecure,sec=sys)");
        let r = &e.clients[0];
        assert_eq!(r.matches, "host.example.com");
        assert!(r.all_squash && !r.secure);
        assert_eq!((r.anonuid, r.anongid), (1000, 100));
    }

    #[test]
    fn defaults_are_linuxs_and_dash_options_apply_to_later_clients() {
        let e = one("/x 10.0.0.1 -rw,insecure 10.0.0.2 10.0.0.3(ro)");
        let c = &e.clients;
        assert_eq!((c[0].access, c[0].secure), (Access::Ro, true));
        assert_eq!((c[1].access, c[1].secure), (Access::Rw, false));
        assert_eq!((c[2].access, c[2].secure), (Access::Ro, false));
        assert_eq!(
            one("/x (rw)").clients[0].matches,
            "*",
            "bare options: everyone"
        );
    }

    #[test]
    fn addresses_quotes_continuations_and_comments() {
        let text = "# a comment\n\n\"/srv/my files\" ::1(rw) \\\n   2001:db8::/32 # trailing\n\
                    /srv/b\\040c 10.0.0.0/255.0.0.0(rw)\n/srv/\"#\"x *\n";
        let Err(e) = parse_exports(text) else {
            panic!("a stray quote in an unquoted path")
        };
        assert_eq!(e.line, 6, "{e}");
        let e = parse_exports(&text.replace("/srv/\"#\"x *\n", "")).unwrap();
        assert_eq!(e[0].path, PathBuf::from("/srv/my files"));
        assert_eq!(e[0].clients[0].matches, "::1");
        assert_eq!(e[0].clients[1].matches, "2001:db8::/32");
        assert_eq!(e[1].path, PathBuf::from("/srv/b c"));
        assert_eq!(e[1].clients[0].matches, "10.0.0.0/8");
        assert_eq!(
            one("\"/a#b\" *").path,
            PathBuf::from("/a#b"),
            "# inside quotes"
        );
        assert_eq!(one("/x *(fsid=7,rw)").id, Some(7));
    }

    #[test]
    fn bad_lines_are_refused_with_their_number() {
        let cases: &[(&str, usize, &str)] = &[
            ("/x *(rw,bogus)", 1, "bogus"),
            ("\n\n/x *(async)", 3, "async"),
            ("/x *(rw", 1, "host(options)"),
            ("/x", 1, "no client"),
            ("relative *", 1, "absolute"),
            ("/x @staff(rw)", 1, "netgroups"),
            ("/x *.example.com(rw)", 1, "wildcards"),
            ("/x gss/krb5(rw)", 1, "Kerberos"),
            ("/x *(sec=krb5p)", 1, "sec=sys"),
            ("/x *(nohide)", 1, "nohide"),
            ("/x *(anonuid=abc)", 1, "numeric"),
            ("/x *(anonuid=4294967295)", 1, "numeric"),
            ("/x *(fsid=0)", 1, "pseudo root"),
            ("/x a(fsid=1) b(fsid=2)", 1, "fsid=1"),
            ("/x 10.0.0.0/255.0.255.0", 1, "contiguous"),
            ("\"/x *", 1, "quote"),
            ("/x\\9 *", 1, "octal"),
            ("/a *\n/b *\n/a 1.2.3.4", 3, "line 1"),
            ("/x \\\n *(rw,zap)", 1, "zap"),
            ("/x *(ro=)", 1, "ro="),
        ];
        for (text, line, says) in cases {
            let e = err(text);
            assert_eq!(e.line, *line, "{text:?}: {e}");
            assert!(e.to_string().contains(says), "{text:?}: {e}");
        }
    }

    #[test]
    fn sizes_are_bounded() {
        let long = format!("/x {}", "a".repeat(EXPORTS_LINE_BYTES_MAX));
        assert!(err(&long).why.contains("longer than"));
        let many = format!("/x{}", " 10.0.0.1".repeat(EXPORTS_CLIENTS_MAX + 1));
        assert!(err(&many).why.contains("clients"));
        let continued = format!("/x \\\n{}", format!("{} \\\n", "a".repeat(4000)).repeat(20));
        assert!(err(&continued).why.contains("entry longer"));
        assert!(err(&" ".repeat(EXPORTS_FILE_BYTES_MAX + 1))
            .why
            .contains("larger"));
    }

    #[test]
    fn dash_o_options_start_from_the_base_rule() {
        let base = ClientRuleConfig {
            secure: false,
            access: Access::Rw,
            ..linux_default_rule("127.0.0.0/8")
        };
        let (r, fsid) = apply_options(&base, "no_root_squash,anonuid=5").unwrap();
        assert_eq!(
            (r.access, r.root_squash, r.secure, r.anonuid),
            (Access::Rw, false, false, 5)
        );
        assert_eq!(fsid, None);
        assert_eq!(apply_options(&base, "ro,fsid=9").unwrap().1, Some(9));
        assert!(apply_options(&base, "rw,frobnicate")
            .unwrap_err()
            .contains("frobnicate"));
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn never_panics(text in "\\PC{0,400}") {
                let _ = parse_exports(&text);
            }

            #[test]
            fn never_panics_on_export_like_text(
                text in "[/a-z0-9 \"#\\\\()*,=.:\n@-]{0,300}"
            ) {
                let _ = parse_exports(&text);
            }
        }
    }
}
