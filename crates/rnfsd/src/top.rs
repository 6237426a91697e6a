//! `rnfsd ctl top`: the busiest clients and procedures, refreshed every few seconds.
//!
//! Built from the control socket's `client totals` and `stats` replies: rates are the differences
//! between two polls, so the server keeps no per-interval state for it and any number of `top`s
//! may watch at once.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::ctl::{call, micros, table};

/// Seconds between refreshes unless `--interval` says otherwise.
const INTERVAL_DEFAULT: f64 = 2.0;
/// Shortest interval accepted (each refresh is two control-socket calls).
const INTERVAL_MIN: f64 = 0.1;
/// Rows per table when the terminal's height is unknown.
const ROWS_UNKNOWN: usize = 20;
/// Lines that are not table rows: the summary, two blank lines, two table headings.
const FIXED_LINES: usize = 5;
const MIB: f64 = (1u64 << 20) as f64;

/// `top`'s own options (the words after `top`).
#[derive(Debug, PartialEq)]
pub struct TopOptions {
    interval: Duration,
    /// Refreshes to print before exiting; `None` runs until interrupted.
    count: Option<u64>,
}

impl TopOptions {
    /// Parses `--interval SECS` and `--count N` (also `--interval=SECS`), in any order.
    pub fn parse(words: &[String]) -> anyhow::Result<TopOptions> {
        let mut interval = None;
        let mut count = None;
        let mut it = words.iter();
        while let Some(w) = it.next() {
            let (name, inline) = match w.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (w.as_str(), None),
            };
            let Some(value) = inline.or_else(|| it.next().map(String::as_str)) else {
                bail!("{name} needs a value; usage: rnfsd ctl top [--interval SECS] [--count N]");
            };
            match name {
                "--interval" if interval.is_none() => interval = Some(parse_interval(value)?),
                "--count" if count.is_none() => count = Some(parse_count(value)?),
                "--interval" | "--count" => bail!("{name} given twice"),
                _ => {
                    bail!("unknown option {w}; usage: rnfsd ctl top [--interval SECS] [--count N]")
                }
            }
        }
        Ok(TopOptions {
            interval: interval.unwrap_or(Duration::from_secs_f64(INTERVAL_DEFAULT)),
            count,
        })
    }
}

fn parse_interval(v: &str) -> anyhow::Result<Duration> {
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && (INTERVAL_MIN..=86_400.0).contains(&s) => {
            Ok(Duration::from_secs_f64(s))
        }
        _ => bail!("--interval: {v:?} is not a number of seconds from {INTERVAL_MIN} to 86400"),
    }
}

fn parse_count(v: &str) -> anyhow::Result<u64> {
    match v.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => bail!("--count: {v:?} is not a positive whole number"),
    }
}

/// Polls the server every interval and prints a table of what happened in between: cleared in
/// place on a terminal, or successive tables when piped or when `--count` bounds the run.
pub fn run(socket: &Path, opts: &TopOptions) -> anyhow::Result<()> {
    let clear = opts.count.is_none() && std::io::stdout().is_terminal();
    let size = terminal_size();
    let mut prev = Poll::take(socket)?;
    let mut shown = 0u64;
    while opts.count.is_none_or(|c| shown < c) {
        std::thread::sleep(opts.interval);
        let cur = Poll::take(socket)?;
        let text = render(&View::between(&prev, &cur), size);
        let mut out = std::io::stdout().lock();
        if clear {
            out.write_all(b"\x1b[H\x1b[2J")?;
        } else if shown > 0 {
            out.write_all(b"\n")?;
        }
        out.write_all(text.as_bytes())?;
        out.flush()?;
        prev = cur;
        shown += 1;
    }
    Ok(())
}

/// `LINES` and `COLUMNS` when the environment gives them.
fn terminal_size() -> (Option<usize>, Option<usize>) {
    let var = |name| std::env::var(name).ok()?.trim().parse::<usize>().ok();
    (var("LINES"), var("COLUMNS"))
}

/// One client's counters since the server started.
#[derive(Debug, Default, Clone, Copy)]
struct Client {
    /// Its TCP connections open now.
    open: u64,
    requests: u64,
    bytes_in: u64,
    bytes_out: u64,
}

/// One procedure's counters.
struct Proc {
    calls: u64,
    errors: u64,
    latency: Vec<u64>,
}

/// What the server said at one moment.
struct Poll {
    at: Instant,
    clients: BTreeMap<String, Client>,
    procs: BTreeMap<String, Proc>,
    /// Upper bounds of the latency buckets in µs (`None`: unbounded).
    bounds: Vec<Option<u64>>,
    requests: u64,
    bytes_in: u64,
    bytes_out: u64,
    uptime_ms: u64,
}

/// The `data` of a successful reply to `cmd`.
fn ask(socket: &Path, cmd: &str) -> anyhow::Result<Value> {
    let mut reply = call(socket, &json!({ "cmd": cmd }))?;
    if reply["ok"] != json!(true) {
        let msg = reply["error"].as_str().unwrap_or("refused");
        bail!("the server refused `{cmd}`: {msg}");
    }
    Ok(reply["data"].take())
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

impl Poll {
    fn take(socket: &Path) -> anyhow::Result<Poll> {
        let clients = ask(socket, "client totals")?;
        let stats = ask(socket, "stats")?;
        let clients = clients
            .as_array()
            .context("`client totals` is not a list")?;
        Ok(Poll {
            at: Instant::now(),
            clients: clients_of(clients),
            procs: procs_of(&stats["procedures"]),
            bounds: stats["latency_bucket_upper_us"]
                .as_array()
                .into_iter()
                .flatten()
                .map(Value::as_u64)
                .collect(),
            requests: u(&stats["requests_total"]),
            bytes_in: u(&stats["bytes_in"]),
            bytes_out: u(&stats["bytes_out"]),
            uptime_ms: u(&stats["uptime_ms"]),
        })
    }
}

/// The clients by name; a client is its address, whatever port each of its connections has.
fn clients_of(list: &[Value]) -> BTreeMap<String, Client> {
    let mut out: BTreeMap<String, Client> = BTreeMap::new();
    for c in list {
        let name = match (c["client"].as_str(), c["transport"].as_str()) {
            // The UDP sockets' counters are all UDP clients' together.
            (_, Some("udp")) => UDP_ALL.to_owned(),
            (Some(ip), _) => ip.to_owned(),
            (None, _) => "(other clients)".to_owned(),
        };
        let e = out.entry(name).or_default();
        if c["transport"] != "udp" {
            e.open += u(&c["connections_open"]);
        }
        e.requests += u(&c["requests"]);
        e.bytes_in += u(&c["bytes_in"]);
        e.bytes_out += u(&c["bytes_out"]);
    }
    out
}

fn procs_of(list: &Value) -> BTreeMap<String, Proc> {
    let mut out = BTreeMap::new();
    for p in list.as_array().into_iter().flatten() {
        let name = format!(
            "{} {}",
            p["program"].as_str().unwrap_or("?"),
            p["procedure"].as_str().unwrap_or("?")
        );
        let errors = p["errors"].as_object().into_iter().flatten();
        let proc = Proc {
            calls: u(&p["calls"]),
            errors: errors.map(|(_, n)| u(n)).sum::<u64>() + u(&p["no_reply"]),
            latency: p["latency_buckets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(u)
                .collect(),
        };
        out.insert(name, proc);
    }
    out
}

/// One client's rates over an interval.
#[derive(Debug)]
struct ClientRow {
    client: String,
    conns: u64,
    calls: f64,
    mib_in: f64,
    mib_out: f64,
}

/// One procedure's rates and latency over an interval.
#[derive(Debug)]
struct ProcRow {
    name: String,
    calls: f64,
    errors: f64,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
}

/// What happened between two polls.
#[derive(Debug)]
struct View {
    secs: f64,
    uptime_ms: u64,
    calls: f64,
    mib_in: f64,
    mib_out: f64,
    conns: u64,
    clients: Vec<ClientRow>,
    procs: Vec<ProcRow>,
}

impl View {
    fn between(prev: &Poll, cur: &Poll) -> View {
        let secs = cur.at.duration_since(prev.at).as_secs_f64().max(1e-3);
        let per_s = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
        View {
            secs,
            uptime_ms: cur.uptime_ms,
            calls: per_s(prev.requests, cur.requests),
            mib_in: per_s(prev.bytes_in, cur.bytes_in) / MIB,
            mib_out: per_s(prev.bytes_out, cur.bytes_out) / MIB,
            conns: cur.clients.values().map(|c| c.open).sum(),
            clients: client_rows(prev, cur, secs),
            procs: proc_rows(prev, cur, secs),
        }
    }
}

const UDP_ALL: &str = "UDP (all clients)";

/// Each client's rates (closed connections included), busiest first; clients with no
/// connection open and nothing done in the interval are left out.
fn client_rows(prev: &Poll, cur: &Poll, secs: f64) -> Vec<ClientRow> {
    let mut rows: Vec<ClientRow> = cur
        .clients
        .iter()
        .filter_map(|(name, c)| {
            let old = prev.clients.get(name).copied().unwrap_or_default();
            let req = c.requests.saturating_sub(old.requests);
            let bin = c.bytes_in.saturating_sub(old.bytes_in);
            let bout = c.bytes_out.saturating_sub(old.bytes_out);
            let open = c.open > 0 || name == UDP_ALL;
            (open || req + bin + bout > 0).then(|| ClientRow {
                client: name.clone(),
                conns: c.open,
                calls: req as f64 / secs,
                mib_in: bin as f64 / secs / MIB,
                mib_out: bout as f64 / secs / MIB,
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        (b.calls, b.mib_in + b.mib_out)
            .partial_cmp(&(a.calls, a.mib_in + a.mib_out))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    rows
}

/// Each procedure ever called: its rates and latency percentiles over the interval, busiest
/// first.
fn proc_rows(prev: &Poll, cur: &Poll, secs: f64) -> Vec<ProcRow> {
    let mut rows: Vec<ProcRow> = cur
        .procs
        .iter()
        .map(|(name, p)| {
            let old = prev.procs.get(name);
            let calls = p.calls.saturating_sub(old.map_or(0, |o| o.calls));
            let errors = p.errors.saturating_sub(old.map_or(0, |o| o.errors));
            let latency: Vec<u64> = p
                .latency
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    n.saturating_sub(old.and_then(|o| o.latency.get(i).copied()).unwrap_or(0))
                })
                .collect();
            ProcRow {
                name: name.clone(),
                calls: calls as f64 / secs,
                errors: errors as f64 / secs,
                p50_us: quantile_us(&latency, &cur.bounds, 0.5),
                p99_us: quantile_us(&latency, &cur.bounds, 0.99),
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        (b.calls, b.errors)
            .partial_cmp(&(a.calls, a.errors))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    rows
}

/// The `q` quantile in µs of a latency histogram (calls per bucket, `bounds` the buckets' upper
/// bounds), interpolated within its bucket; the unbounded last bucket gives its lower bound.
fn quantile_us(buckets: &[u64], bounds: &[Option<u64>], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * total as f64).max(1.0);
    let mut seen = 0u64;
    let mut lower = 0.0;
    for (i, &n) in buckets.iter().enumerate() {
        let upper = bounds.get(i).copied().flatten().map(|b| b as f64);
        if n > 0 && (seen + n) as f64 >= rank {
            let Some(upper) = upper else {
                return Some(lower);
            };
            return Some(lower + (upper - lower) * (rank - seen as f64) / n as f64);
        }
        seen += n;
        lower = upper.unwrap_or(lower);
    }
    Some(lower)
}

/// The summary line and the two tables, cut to the terminal's size when known.
fn render(v: &View, (lines, columns): (Option<usize>, Option<usize>)) -> String {
    let (client_rows, proc_rows) = match lines {
        Some(l) => {
            let room = l.saturating_sub(FIXED_LINES).max(2);
            let c = v.clients.len().min(room / 2).max(1);
            (c, room.saturating_sub(c).max(1))
        }
        None => (ROWS_UNKNOWN, ROWS_UNKNOWN),
    };
    let mut out = format!(
        "rnfsd top: {:.1} calls/s, in {:.2} MiB/s, out {:.2} MiB/s, {} connections (over {:.1}s, up {})\n\n",
        v.calls,
        v.mib_in,
        v.mib_out,
        v.conns,
        v.secs,
        crate::ctl::dur(v.uptime_ms)
    );
    let clients: Vec<Vec<String>> = v
        .clients
        .iter()
        .take(client_rows)
        .map(|c| {
            vec![
                c.client.clone(),
                c.conns.to_string(),
                format!("{:.1}", c.calls),
                format!("{:.2}", c.mib_in),
                format!("{:.2}", c.mib_out),
            ]
        })
        .collect();
    out.push_str(&table(
        &["CLIENT", "CONNS", "CALLS/S", "IN MiB/s", "OUT MiB/s"],
        &clients,
    ));
    out.push('\n');
    let latency = |x: Option<f64>| x.map_or("-".to_owned(), |us| micros(us.round() as u64));
    let procs: Vec<Vec<String>> = v
        .procs
        .iter()
        .take(proc_rows)
        .map(|p| {
            vec![
                p.name.clone(),
                format!("{:.1}", p.calls),
                format!("{:.1}", p.errors),
                latency(p.p50_us),
                latency(p.p99_us),
            ]
        })
        .collect();
    out.push_str(&table(
        &["PROCEDURE", "CALLS/S", "ERRORS/S", "P50", "P99"],
        &procs,
    ));
    match columns {
        Some(w) => out
            .lines()
            .map(|l| l.chars().take(w).collect::<String>() + "\n")
            .collect(),
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn options() {
        let o = TopOptions::parse(&words(&["--count", "2", "--interval=0.5"])).unwrap();
        assert_eq!(o.count, Some(2));
        assert_eq!(o.interval, Duration::from_millis(500));
        let o = TopOptions::parse(&[]).unwrap();
        assert_eq!((o.count, o.interval), (None, Duration::from_secs(2)));
        for bad in [
            &["--count"][..],
            &["--count", "0"],
            &["--interval", "0"],
            &["--interval", "nan"],
            &["--count", "1", "--count", "2"],
            &["--bogus", "1"],
        ] {
            assert!(TopOptions::parse(&words(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn quantiles_of_an_interval() {
        let bounds = [Some(8), Some(16), Some(32), None];
        assert_eq!(quantile_us(&[0, 0, 0, 0], &bounds, 0.5), None);
        // Ten calls between 8 and 16 µs: the median is halfway through that bucket.
        assert_eq!(quantile_us(&[0, 10, 0, 0], &bounds, 0.5), Some(12.0));
        // One slow call past every bound: p99 of 100 calls is still in the fast bucket, p100 is
        // the unbounded bucket's lower bound.
        assert_eq!(quantile_us(&[99, 0, 0, 1], &bounds, 0.99), Some(8.0));
        assert_eq!(quantile_us(&[99, 0, 0, 1], &bounds, 1.0), Some(32.0));
    }

    fn client(open: u64, requests: u64, bytes: u64) -> Client {
        Client {
            open,
            requests,
            bytes_in: bytes,
            bytes_out: bytes * 2,
        }
    }

    fn poll(clients: &[(&str, Client)], at: Instant) -> Poll {
        Poll {
            at,
            clients: clients.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect(),
            procs: BTreeMap::new(),
            bounds: Vec::new(),
            requests: 0,
            bytes_in: 0,
            bytes_out: 0,
            uptime_ms: 0,
        }
    }

    #[test]
    fn clients_busiest_first_idle_gone_ones_left_out() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(2);
        let prev = poll(
            &[
                ("10.0.0.1", client(1, 100, 0)),
                ("10.0.0.2", client(1, 5, 0)),
                ("10.0.0.3", client(0, 9, 0)),
            ],
            t0,
        );
        // 10.0.0.1: 60 more calls (some on connections closed since); 10.0.0.2 idle but
        // connected; 10.0.0.3 long gone; 10.0.0.4 came and went within the interval.
        let cur = poll(
            &[
                ("10.0.0.1", client(2, 160, 1 << 21)),
                ("10.0.0.2", client(1, 5, 0)),
                ("10.0.0.3", client(0, 9, 0)),
                ("10.0.0.4", client(0, 2, 0)),
            ],
            t1,
        );
        let rows = client_rows(&prev, &cur, 2.0);
        let names: Vec<&str> = rows.iter().map(|r| r.client.as_str()).collect();
        assert_eq!(names, ["10.0.0.1", "10.0.0.4", "10.0.0.2"]);
        assert_eq!((rows[0].conns, rows[0].calls), (2, 30.0));
        assert_eq!((rows[0].mib_in, rows[0].mib_out), (1.0, 2.0));
        assert_eq!(rows[2].calls, 0.0);
    }
}
