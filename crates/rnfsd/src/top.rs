//! `rnfsd ctl top`: the busiest clients and procedures, refreshed every few seconds.
//!
//! Built from the control socket's `connections` and `stats` replies: rates are the differences
//! between two polls, so the server keeps no per-interval state for it and any number of `top`s
//! may watch at once.

use std::collections::{BTreeMap, HashMap};
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

/// One connection's counters.
struct Conn {
    id: u64,
    client: String,
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
    conns: Vec<Conn>,
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
        let conns = ask(socket, "connections")?;
        let stats = ask(socket, "stats")?;
        let conns = conns.as_array().context("`connections` is not a list")?;
        Ok(Poll {
            at: Instant::now(),
            conns: conns.iter().map(Conn::of).collect(),
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

impl Conn {
    fn of(c: &Value) -> Conn {
        let peer = c["peer"].as_str().unwrap_or("?");
        // A client is its address, whatever port each of its connections has; the UDP socket's
        // counters are all UDP clients' together.
        let client = match peer.parse::<std::net::SocketAddr>() {
            Ok(a) => a.ip().to_string(),
            Err(_) if c["transport"] == "udp" => "UDP (all clients)".to_owned(),
            Err(_) => peer.to_owned(),
        };
        Conn {
            id: u(&c["id"]),
            client,
            requests: u(&c["requests_served"]),
            bytes_in: u(&c["bytes_in"]),
            bytes_out: u(&c["bytes_out"]),
        }
    }
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
    conns: usize,
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
    conns: usize,
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
            conns: cur.conns.iter().filter(|c| c.client != UDP_ALL).count(),
            clients: client_rows(prev, cur, secs),
            procs: proc_rows(prev, cur, secs),
        }
    }
}

const UDP_ALL: &str = "UDP (all clients)";

/// Each client's rates, summed over its connections open now (a connection new since the last
/// poll counts from zero; one closed since then drops out with its last interval's traffic),
/// busiest first.
fn client_rows(prev: &Poll, cur: &Poll, secs: f64) -> Vec<ClientRow> {
    let before: HashMap<u64, &Conn> = prev.conns.iter().map(|c| (c.id, c)).collect();
    let mut by_client: BTreeMap<&str, (usize, u64, u64, u64)> = BTreeMap::new();
    for c in &cur.conns {
        let (req0, in0, out0) = before
            .get(&c.id)
            .map_or((0, 0, 0), |p| (p.requests, p.bytes_in, p.bytes_out));
        let e = by_client.entry(&c.client).or_default();
        e.0 += 1;
        e.1 += c.requests.saturating_sub(req0);
        e.2 += c.bytes_in.saturating_sub(in0);
        e.3 += c.bytes_out.saturating_sub(out0);
    }
    let mut rows: Vec<ClientRow> = by_client
        .into_iter()
        .map(|(client, (conns, req, bin, bout))| ClientRow {
            client: client.to_owned(),
            conns,
            calls: req as f64 / secs,
            mib_in: bin as f64 / secs / MIB,
            mib_out: bout as f64 / secs / MIB,
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

    fn conn(id: u64, client: &str, requests: u64, bytes: u64) -> Conn {
        Conn {
            id,
            client: client.to_owned(),
            requests,
            bytes_in: bytes,
            bytes_out: bytes * 2,
        }
    }

    fn poll(conns: Vec<Conn>, at: Instant) -> Poll {
        Poll {
            at,
            conns,
            procs: BTreeMap::new(),
            bounds: Vec::new(),
            requests: 0,
            bytes_in: 0,
            bytes_out: 0,
            uptime_ms: 0,
        }
    }

    #[test]
    fn clients_sum_their_connections_busiest_first() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(2);
        let prev = poll(
            vec![conn(1, "10.0.0.1", 100, 0), conn(2, "10.0.0.2", 5, 0)],
            t0,
        );
        // 10.0.0.1: 20 more on conn 1, and a new conn 3 with 40; 10.0.0.2 idle.
        let cur = poll(
            vec![
                conn(1, "10.0.0.1", 120, 1 << 20),
                conn(2, "10.0.0.2", 5, 0),
                conn(3, "10.0.0.1", 40, 1 << 20),
            ],
            t1,
        );
        let rows = client_rows(&prev, &cur, 2.0);
        assert_eq!(rows[0].client, "10.0.0.1");
        assert_eq!((rows[0].conns, rows[0].calls), (2, 30.0));
        assert_eq!((rows[0].mib_in, rows[0].mib_out), (1.0, 2.0));
        assert_eq!((rows[1].client.as_str(), rows[1].calls), ("10.0.0.2", 0.0));
    }
}
