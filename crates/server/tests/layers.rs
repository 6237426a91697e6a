//! The server's modules form layers: no import circle between them.
//!
//! Reads `src/` and builds the graph of `crate::…` and `super::…` references between modules
//! (test code, comments and doc links excluded). A module and its own descendants may refer to
//! each other (a program's handlers use its table's helpers, and the table names the handlers);
//! any other strongly connected set of modules is a circle, and this test names it. Why it
//! matters: a circle is one room in fact, whatever the files say — nothing in it can be
//! understood, tested or replaced alone.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`service::mount`) → its source with comments and test code removed.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src");
            let mut parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
                .collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
                parts.pop();
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            out.insert(parts.join("::"), code_only(&text));
        }
    }
    out
}

/// The source without comments and without what follows the first `#[cfg(test)]`.
fn code_only(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module paths `module` refers to, before resolution: each `crate::a::b` and `super::a`
/// path, with `use crate::{a, b::c}` groups expanded to their first segments.
fn references(module: &str, code: &str) -> Vec<Vec<String>> {
    let mut refs = Vec::new();
    for (anchor, base) in [("crate::", Vec::new()), ("super::", parent(module))] {
        let mut rest = code;
        while let Some(i) = rest.find(anchor) {
            let preceded_by_ident = rest[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
            rest = &rest[i + anchor.len()..];
            if preceded_by_ident {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                for item in top_level_items(group) {
                    refs.push(join(&base, &item));
                }
            } else {
                refs.push(join(&base, &path_segments(rest)));
            }
        }
    }
    refs
}

fn parent(module: &str) -> Vec<String> {
    let mut parts: Vec<String> = module.split("::").map(str::to_owned).collect();
    parts.pop();
    parts.retain(|p| !p.is_empty());
    parts
}

fn join(base: &[String], tail: &[String]) -> Vec<String> {
    base.iter().chain(tail).cloned().collect()
}

/// `a::b::C` → `[a, b, C]`, stopping at the first character that is not part of a path.
fn path_segments(s: &str) -> Vec<String> {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(s.len());
    s[..end]
        .split("::")
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The paths of a `{…}` use group's items at depth one (nested groups contribute their prefix).
fn top_level_items(group: &str) -> Vec<Vec<String>> {
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(path_segments(group[start..i].trim()));
                break;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(path_segments(group[start..i].trim()));
                start = i + 1;
            }
            _ => {}
        }
    }
    items
}

/// The longest known module that `path` starts with (the crate root is "").
fn resolve(known: &BTreeSet<String>, path: &[String]) -> String {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|m| known.contains(m))
        .unwrap_or_default()
}

fn is_ancestor(a: &str, b: &str) -> bool {
    a.is_empty() || b.starts_with(&format!("{a}::"))
}

/// Edges between modules, leaving out a module's references to and from its own ancestors.
fn graph(mods: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let known: BTreeSet<String> = mods.keys().cloned().collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, code) in mods {
        let entry = edges.entry(m.clone()).or_default();
        for r in references(m, code) {
            let target = resolve(&known, &r);
            if target != *m && !is_ancestor(&target, m) && !is_ancestor(m, &target) {
                entry.insert(target);
            }
        }
    }
    edges
}

/// Strongly connected sets of more than one module (Tarjan's algorithm, iterative enough for a
/// few dozen nodes when written recursively).
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(w: &mut Walk<'a>, v: &'a str) {
        let n = w.index.len();
        w.index.insert(v, n);
        w.low.insert(v, n);
        w.stack.push(v);
        w.on_stack.insert(v);
        let edges = w.edges;
        for t in edges.get(v).into_iter().flatten() {
            let t = t.as_str();
            if !w.index.contains_key(t) {
                visit(w, t);
                let lt = w.low[t];
                let lv = w.low[v];
                w.low.insert(v, lv.min(lt));
            } else if w.on_stack.contains(t) {
                let it = w.index[t];
                let lv = w.low[v];
                w.low.insert(v, lv.min(it));
            }
        }
        if w.low[v] == w.index[v] {
            let mut set = Vec::new();
            while let Some(x) = w.stack.pop() {
                w.on_stack.remove(x);
                set.push(x.to_owned());
                if x == v {
                    break;
                }
            }
            if set.len() > 1 {
                set.sort();
                w.found.push(set);
            }
        }
    }
    let mut w = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !w.index.contains_key(v.as_str()) {
            visit(&mut w, v);
        }
    }
    w.found
}

#[test]
fn server_modules_form_no_import_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = graph(&modules(&src));
    let found = circles(&edges);
    let mut report = String::new();
    for set in &found {
        report.push_str(&format!("circle: {}\n", set.join(", ")));
        for m in set {
            let inside: Vec<&String> = edges[m].iter().filter(|t| set.contains(t)).collect();
            report.push_str(&format!("  {m} -> {inside:?}\n"));
        }
    }
    assert!(
        found.is_empty(),
        "import circles in crates/server/src:\n{report}"
    );
}

#[test]
fn the_checker_finds_a_planted_circle_and_allows_parent_child() {
    let mods: BTreeMap<String, String> = [
        ("a", "use crate::{b::Thing, c};"),
        ("b", "fn f() { crate::a::g(); }"),
        ("c", "// crate::a in a comment is no edge\n"),
        ("p", "mod child; use self::child::X;"),
        ("p::child", "use super::Y; use crate::p::Z;"),
    ]
    .into_iter()
    .map(|(m, c)| (m.to_owned(), code_only(c)))
    .collect();
    let found = circles(&graph(&mods));
    assert_eq!(found, vec![vec!["a".to_owned(), "b".to_owned()]]);
}
