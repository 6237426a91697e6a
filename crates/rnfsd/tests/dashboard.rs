//! The Grafana dashboard (`contrib/grafana/rnfsd.json`) against a running server's `/metrics`:
//! every metric a query names must be served, with every label the query matches on or groups by,
//! so renaming a metric or a label breaks this test rather than a panel nobody looks at.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{scrape_metrics, TestServer, USER};
use rnfs_client::v4::Session;
use rnfs_client::Client;
use serde_json::Value;

const DASHBOARD: &str = include_str!("../../../contrib/grafana/rnfsd.json");

/// Labels Prometheus adds to every series it scrapes; the server never serves them.
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

/// PromQL functions and aggregations the dashboard may use (a name not here followed by `(` is
/// taken for a typo).
const FUNCTIONS: [&str; 16] = [
    "rate",
    "irate",
    "increase",
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "topk",
    "histogram_quantile",
    "clamp_min",
    "clamp_max",
    "abs",
    "delta",
    "deriv",
    "label_values",
];

/// One metric named in a query: the label names its selector matches on.
#[derive(Debug, PartialEq, Eq)]
struct Selector {
    metric: String,
    matchers: Vec<String>,
}

/// What one PromQL expression uses: its selectors, and the labels it groups by (`by (...)`,
/// `without (...)`, `on (...)`, `ignoring (...)`).
#[derive(Debug, Default, PartialEq, Eq)]
struct Uses {
    selectors: Vec<Selector>,
    grouping: Vec<String>,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident(c: char) -> bool {
    is_ident_start(c) || c.is_ascii_digit()
}

/// A small PromQL scanner: enough for the dashboard's queries (selectors, functions,
/// aggregations with grouping, binary operators, numbers, ranges), not a full parser.
fn scan(expr: &str) -> Result<Uses, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut uses = Uses::default();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i)?;
        } else if c == '[' {
            i = skip_past(&chars, i, ']')?;
        } else if c == '{' {
            let (labels, next) = matchers(&chars, i)?;
            match uses.selectors.last_mut() {
                Some(s) if s.matchers.is_empty() && ends_with_ident(&chars[..i]) => {
                    s.matchers = labels
                }
                _ => return Err(format!("a selector without a metric name in {expr}")),
            }
            i = next;
        } else if c == '$' || c.is_ascii_digit() || c == '.' {
            // A Grafana variable or a number (1e6, 0.99, 5m): neither names anything served.
            i += 1;
            while i < chars.len() && (is_ident(chars[i]) || chars[i] == '.') {
                i += 1;
            }
        } else if is_ident_start(c) {
            i = ident(&chars, i, &mut uses, expr)?;
        } else {
            i += 1;
        }
    }
    Ok(uses)
}

/// An identifier at `start`: a keyword, a function, or a metric name. Returns where it ends.
fn ident(chars: &[char], start: usize, uses: &mut Uses, expr: &str) -> Result<usize, String> {
    let mut i = start;
    while i < chars.len() && is_ident(chars[i]) {
        i += 1;
    }
    let word: String = chars[start..i].iter().collect();
    let mut next = i;
    while next < chars.len() && chars[next].is_whitespace() {
        next += 1;
    }
    let opens = chars.get(next) == Some(&'(');
    match word.as_str() {
        "by" | "without" | "on" | "ignoring" | "group_left" | "group_right" if opens => {
            let end = skip_past(chars, next, ')')?;
            let list: String = chars[next + 1..end - 1].iter().collect();
            uses.grouping.extend(
                list.split(',')
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned),
            );
            Ok(end)
        }
        "and" | "or" | "unless" | "bool" | "offset" | "group_left" | "group_right" => Ok(i),
        // (`sum by (x) (...)`: an aggregation need not be followed by its parenthesis.)
        _ if FUNCTIONS.contains(&word.as_str()) => Ok(i),
        _ if opens => Err(format!("unknown function {word} in {expr}")),
        _ => {
            uses.selectors.push(Selector {
                metric: word,
                matchers: Vec::new(),
            });
            Ok(i)
        }
    }
}

fn ends_with_ident(before: &[char]) -> bool {
    before
        .iter()
        .rev()
        .find(|c| !c.is_whitespace())
        .is_some_and(|c| is_ident(*c))
}

/// The end of the quoted string starting at `start` (just past its closing quote).
fn skip_string(chars: &[char], start: usize) -> Result<usize, String> {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            c if c == quote => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err("unterminated string".into())
}

/// Just past the first `close` after `start`, skipping strings.
fn skip_past(chars: &[char], start: usize, close: char) -> Result<usize, String> {
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => i = skip_string(chars, i)?,
            c if c == close => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(format!("no closing {close}"))
}

/// The label names of the matchers `{a="x", b=~"y"}` at `start`, and where they end.
fn matchers(chars: &[char], start: usize) -> Result<(Vec<String>, usize), String> {
    let mut labels = Vec::new();
    let mut i = start + 1;
    loop {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
            i += 1;
        }
        match chars.get(i) {
            None => return Err("no closing }".into()),
            Some('}') => return Ok((labels, i + 1)),
            Some(_) => {}
        }
        let from = i;
        while i < chars.len() && is_ident(chars[i]) {
            i += 1;
        }
        if from == i {
            return Err(format!("a matcher without a label name at {from}"));
        }
        labels.push(chars[from..i].iter().collect());
        while i < chars.len() && "=!~ ".contains(chars[i]) {
            i += 1;
        }
        if !matches!(chars.get(i), Some('"' | '\'' | '`')) {
            return Err(format!("a matcher without a quoted value at {i}"));
        }
        i = skip_string(chars, i)?;
    }
}

/// Every PromQL expression of the dashboard: the panels' `expr`s (rows' nested panels
/// included), and the template variables' `label_values(METRIC, LABEL)` queries rewritten as
/// `METRIC{LABEL=""}` (both must be served).
fn expressions(dashboard: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x) {
                        ("expr", Value::String(e)) => out.push(e.clone()),
                        _ => walk(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if var["type"] != "query" {
            continue;
        }
        let q = var["query"]["query"].as_str().or(var["query"].as_str());
        let q = q.unwrap_or_else(|| panic!("variable without a query: {var}"));
        let args = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .and_then(|r| r.split_once(','))
            .unwrap_or_else(|| panic!("variable query not label_values(METRIC, LABEL): {q}"));
        out.push(format!("{}{{{}=\"\"}}", args.0.trim(), args.1.trim()));
    }
    out
}

/// Served metric names (samples' names, and those a `# TYPE` line promises even before any
/// sample: `_total` of a counter, `_bucket`, `_sum`, `_count` of a histogram) with the label
/// names seen on their samples.
fn served(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            let (family, kind) = t.split_once(' ').unwrap();
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            for s in suffixes {
                out.entry(format!("{family}{s}")).or_default();
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let name_end = line.find(['{', ' ']).unwrap();
            let labels = out.entry(line[..name_end].to_owned()).or_default();
            if line[name_end..].starts_with('{') {
                let chars: Vec<char> = line[name_end..].chars().collect();
                let (names, _) = matchers(&chars, 0).unwrap();
                labels.extend(names);
            }
        }
    }
    out
}

/// Everything wrong with `dashboard` against the metrics page `text`, one line each.
fn problems(dashboard: &str, text: &str) -> Vec<String> {
    let dashboard: Value = serde_json::from_str(dashboard).expect("the dashboard is JSON");
    let served = served(text);
    let mut out = Vec::new();
    let exprs = expressions(&dashboard);
    assert!(exprs.len() > 30, "the dashboard's queries were found");
    for expr in &exprs {
        let uses = match scan(expr) {
            Ok(u) => u,
            Err(e) => {
                out.push(e);
                continue;
            }
        };
        if uses.selectors.is_empty() {
            out.push(format!("no metric in {expr}"));
        }
        for s in &uses.selectors {
            let Some(labels) = served.get(&s.metric) else {
                out.push(format!("{} is not served (in {expr})", s.metric));
                continue;
            };
            if !s.matchers.iter().any(|m| m == "instance") {
                out.push(format!(
                    "{} is not filtered by $instance in {expr}",
                    s.metric
                ));
            }
            let wanted = s.matchers.iter().chain(&uses.grouping);
            for l in wanted.filter(|l| !TARGET_LABELS.contains(&l.as_str())) {
                if !labels.contains(l) {
                    out.push(format!(
                        "{} has no label {l} (it has {labels:?}) in {expr}",
                        s.metric
                    ));
                }
            }
        }
    }
    out
}

/// NFSv3 and NFSv4.1 traffic, failures included, so that the series only served once something
/// happened (per procedure, per status, per NFSv4 operation) have samples whose labels can be
/// checked.
fn traffic(srv: &TestServer) {
    let mut c = Client::connect_tcp(srv.tcp_addr())
        .unwrap()
        .with_auth_sys(USER, USER, &[USER]);
    let root = c.mount(srv.mount_path().as_bytes()).unwrap();
    c.getattr(&root).unwrap();
    let file = c.lookup(&root, b"f").unwrap().object;
    c.read(&file, 0, 4096).unwrap();
    assert!(c.lookup(&root, b"missing").is_err());

    let v4 = Client::connect_tcp(srv.tcp_addr())
        .unwrap()
        .with_auth_sys(USER, USER, &[USER]);
    let mut s = Session::establish(v4, b"dashboard test").unwrap();
    assert!(s.lookup_path(&["no such export"]).is_err());
}

#[test]
fn every_metric_the_dashboard_queries_is_served_with_its_labels() {
    let mut srv = TestServer::new().args(["--metrics", "127.0.0.1:0"]);
    std::fs::write(srv.export().join("f"), vec![7u8; 4096]).unwrap();
    common::set_mode(&srv.export().join("f"), 0o644);
    srv.start();
    traffic(&srv);
    let text = scrape_metrics(srv.state_dir());

    let found = problems(DASHBOARD, &text);
    assert!(found.is_empty(), "{}\n\n{text}", found.join("\n"));

    // The check itself catches a renamed metric, a renamed label, a misspelled function.
    let broken = DASHBOARD
        .replacen("rnfsd_request_errors_total", "rnfsd_request_error_total", 1)
        .replacen("by (direction)", "by (dir)", 1)
        .replacen("histogram_quantile", "histogram_quantil", 1);
    let found = problems(&broken, &text).join("\n");
    for expected in [
        "rnfsd_request_error_total is not served",
        "rnfsd_network_bytes_total has no label dir",
        "unknown function histogram_quantil",
    ] {
        assert!(found.contains(expected), "{expected} in:\n{found}");
    }
}

#[test]
fn dashboard_is_importable() {
    let d: Value = serde_json::from_str(DASHBOARD).unwrap();
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(vars, ["datasource", "instance"]);
    let panels = d["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "unique id: {p}");
        let g = &p["gridPos"];
        assert!(
            g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24,
            "{p}"
        );
        if p["type"] != "row" {
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{p}");
            for t in p["targets"].as_array().unwrap() {
                assert_eq!(t["datasource"]["uid"], "${datasource}", "{t}");
            }
        }
    }
}

#[test]
fn scanner_finds_selectors_and_grouping() {
    let u = scan(
        r#"histogram_quantile(0.99, sum by (le, procedure) (rate(rnfsd_request_duration_seconds_bucket{instance=~"$instance", program!="a{b}"}[$__rate_interval]))) / 1e6"#,
    )
    .unwrap();
    assert_eq!(
        u,
        Uses {
            selectors: vec![Selector {
                metric: "rnfsd_request_duration_seconds_bucket".into(),
                matchers: vec!["instance".into(), "program".into()],
            }],
            grouping: vec!["le".into(), "procedure".into()],
        }
    );
    assert!(scan(r#"{instance="x"}"#).is_err());
    assert!(scan("rat(x[5m])").is_err());
}
