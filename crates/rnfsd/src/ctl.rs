//! `rnfsd ctl`: the client of the control socket (the server's `admin` module), and the `--progress`
//! line of `rnfsd serve`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::CtlArgs;

/// How long `rnfsd ctl` waits for the server (a reload reads files, so not too short).
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest reply accepted.
const REPLY_BYTES_MAX: u64 = 64 << 20;

pub fn run(args: CtlArgs, default_state_dir: fn() -> PathBuf) -> anyhow::Result<()> {
    let (opts, words) = split_options(&args.command)?;
    if opts.help {
        print_help();
        return Ok(());
    }
    let opts = opts.merge(CtlOptions {
        state_dir: args.state_dir,
        socket: args.socket,
        json: args.json,
        help: false,
    })?;
    let json = opts.json;
    let socket = match (opts.socket, opts.state_dir) {
        (Some(s), _) => s,
        (None, Some(d)) => d.join(rnfs_server::CONTROL_SOCKET_NAME),
        (None, None) => default_state_dir().join(rnfs_server::CONTROL_SOCKET_NAME),
    };
    if words.first().is_some_and(|w| w == "top") {
        if json {
            bail!("top prints tables only; `rnfsd ctl --json stats` and `connections` give its counters");
        }
        return crate::top::run(&socket, &crate::top::TopOptions::parse(&words[1..])?);
    }
    let request = request_for(&words)?;
    let reply = call(&socket, &request)?;
    if json {
        println!("{reply}");
    }
    if reply["ok"] != json!(true) {
        let msg = reply["error"]
            .as_str()
            .unwrap_or("the server refused the request");
        if json {
            std::process::exit(1);
        }
        bail!("{msg}");
    }
    if !json {
        let cmd = reply["cmd"].as_str().unwrap_or_default();
        print!("{}", human(cmd, &reply["data"]));
    }
    Ok(())
}

fn print_help() {
    use clap::CommandFactory;
    let mut cli = crate::Cli::command();
    if let Some(ctl) = cli.find_subcommand_mut("ctl") {
        let _ = ctl.print_long_help();
    }
}

/// `rnfsd ctl`'s own options, wherever they stand among the command's words.
#[derive(Debug, Default, PartialEq, Eq)]
struct CtlOptions {
    state_dir: Option<PathBuf>,
    socket: Option<PathBuf>,
    json: bool,
    help: bool,
}

impl CtlOptions {
    /// Both sets of options together (those before the command and those among its words); a
    /// value given in both, or both a state directory and a socket, is refused rather than one
    /// silently winning.
    fn merge(self, other: CtlOptions) -> anyhow::Result<CtlOptions> {
        let one = |a: Option<PathBuf>, b: Option<PathBuf>, name: &str| match (a, b) {
            (Some(_), Some(_)) => bail!("--{name} given twice"),
            (a, b) => Ok(a.or(b)),
        };
        let merged = CtlOptions {
            state_dir: one(self.state_dir, other.state_dir, "state-dir")?,
            socket: one(self.socket, other.socket, "socket")?,
            json: self.json || other.json,
            help: self.help || other.help,
        };
        if merged.state_dir.is_some() && merged.socket.is_some() {
            bail!("give --state-dir or --socket, not both");
        }
        Ok(merged)
    }
}

/// Takes `rnfsd ctl`'s options out of the words after the command, as git and systemctl allow
/// (`rnfsd ctl status --json`). Words after `--` are the command's, verbatim; words that are not
/// ctl options (`log --client IP`) stay the command's too.
fn split_options(words: &[String]) -> anyhow::Result<(CtlOptions, Vec<String>)> {
    let mut opts = CtlOptions::default();
    let mut rest = Vec::new();
    let mut it = words.iter();
    while let Some(w) = it.next() {
        let (name, inline) = match w.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v)),
            _ => (w.as_str(), None),
        };
        let slot = match name {
            "--" => {
                rest.extend(it.by_ref().cloned());
                break;
            }
            "--json" if inline.is_none() => {
                opts.json = true;
                continue;
            }
            "--help" | "-h" if inline.is_none() => {
                opts.help = true;
                continue;
            }
            "--state-dir" => &mut opts.state_dir,
            "--socket" => &mut opts.socket,
            _ => {
                rest.push(w.clone());
                continue;
            }
        };
        if slot.is_some() {
            bail!("{name} given twice");
        }
        match inline.or_else(|| it.next().map(String::as_str)) {
            Some(v) if !v.is_empty() => *slot = Some(PathBuf::from(v)),
            _ => bail!("{name} needs a value"),
        }
    }
    Ok((opts, rest))
}

/// The JSON request for the words after `rnfsd ctl`.
fn request_for(words: &[String]) -> anyhow::Result<Value> {
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    Ok(match w.as_slice() {
        ["log"] => json!({"cmd": "log"}),
        ["log", "--client", ip] => json!({"cmd": "log", "client": ip, "level": "debug"}),
        ["log", "--client", ip, level] => json!({"cmd": "log", "client": ip, "level": level}),
        ["log", "--client", ..] => bail!("usage: rnfsd ctl log --client IP [debug|off]"),
        ["log", filter] => json!({"cmd": "log", "filter": filter}),
        ["log", ..] => bail!("usage: rnfsd ctl log [FILTER | --client IP debug|off]"),
        ["nfs4", "expire", id] => json!({"cmd": "nfs4 expire", "client": id}),
        ["nfs4", "expire", ..] => bail!("usage: rnfsd ctl nfs4 expire CLIENTID"),
        [] => bail!("no command; try `rnfsd ctl status`"),
        words => json!({"cmd": words.join(" ")}),
    })
}

/// Sends one request and reads its one-line reply.
pub fn call(socket: &std::path::Path, request: &Value) -> anyhow::Result<Value> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach rnfsd at {} (is it running with this --state-dir? are you root or its user?)",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
    stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
    let mut line = request.to_string();
    line.push('\n');
    // A server that refuses us answers and closes before reading: read its answer even when the
    // write failed.
    let wrote = stream.write_all(line.as_bytes());
    let mut reply = String::new();
    let read = std::io::Read::take(BufReader::new(&stream), REPLY_BYTES_MAX).read_line(&mut reply);
    if reply.is_empty() {
        wrote.context("sending the request")?;
        read.context("reading the server's reply")?;
        bail!("the server closed the control connection without replying");
    }
    serde_json::from_str(&reply).context("the server's reply is not JSON")
}

// ---- human-readable output ----

fn human(cmd: &str, d: &Value) -> String {
    match cmd {
        "status" => status(d),
        "connections" | "clients" => connections(d),
        "client totals" => client_totals(d),
        "requests" => requests(d),
        "loans" => loans(d),
        "locks" => locks(d),
        "filelocks" => file_locks(d),
        "nfs4 clients" => nfs4_clients(d),
        "nfs4 delegations" => nfs4_delegations(d),
        "nfs4 copies" => nfs4_copies(d),
        "exports" => exports(&d["exports"], d["config"].as_str()),
        "exports reload" | "reload" => reload(d),
        "stats" => stats(d),
        "stalls" => stalls(d),
        "cluster" => cluster(d),
        "log" => log(d),
        _ => format!("{d:#}\n"),
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(x) => x.clone(),
        other => other.to_string(),
    }
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// 850ms, 12.3s, 5m03s, 2h04m.
pub fn dur(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms}ms"),
        1000..=59_999 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..=3_599_999 => format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60),
    }
}

/// 512 B, 1.5 KiB, 3.2 MiB.
pub fn bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn us(v: &Value) -> String {
    v.as_u64().map_or_else(|| "-".into(), micros)
}

/// 850µs, 12.3ms, 1.50s.
pub(crate) fn micros(x: u64) -> String {
    match x {
        0..=999 => format!("{x}µs"),
        1000..=999_999 => format!("{:.1}ms", x as f64 / 1000.0),
        _ => format!("{:.2}s", x as f64 / 1e6),
    }
}

pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                let pad = widths[i] - c.chars().count();
                out.push_str(c);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// `mount_path (id N, backend)` for each export.
fn status_exports(d: &Value) -> String {
    d["exports"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    format!(
                        "{} (id {}, {})",
                        s(&e["mount_path"]),
                        e["id"],
                        s(&e["backend"])
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

fn status(d: &Value) -> String {
    let list = |v: &Value| {
        v.as_array()
            .map(|a| a.iter().map(s).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    let l = &d["loans"];
    let mut out = format!(
        "rnfsd {} (pid {}), up {}\n",
        s(&d["version"]),
        d["pid"],
        dur(n(&d["uptime_ms"]))
    );
    let rows = [
        ("listening", list(&d["listeners"])),
        ("metrics", s(&d["metrics"])),
        ("control socket", s(&d["control_socket"])),
        ("config", s(&d["config"])),
        ("exports", status_exports(d)),
        ("connections", d["connections"].to_string()),
        (
            "requests",
            format!(
                "{} in flight, {} served",
                d["requests_in_flight"], d["requests_total"]
            ),
        ),
        (
            "loans",
            format!(
                "{} outstanding ({}) of {} slots, {} lent in all",
                l["outstanding"],
                bytes(n(&l["bytes_outstanding"])),
                l["slots"],
                l["lent_total"]
            ),
        ),
        (
            "reply memory",
            format!(
                "{} of {} held by replies not yet sent; {} requests waited, {} connections shed",
                bytes(n(&d["reply_memory"]["held"])),
                bytes(n(&d["reply_memory"]["max"])),
                d["reply_memory"]["waits"],
                d["reply_memory"]["connections_shed"]
            ),
        ),
        (
            "READ data",
            format!(
                "{} zero-copy, {} buffered",
                bytes(n(&d["read_bytes"]["zero_copy"])),
                bytes(n(&d["read_bytes"]["buffered"]))
            ),
        ),
        ("WRITE data", bytes(n(&d["write_bytes"]))),
        ("write verifier", s(&d["write_verifier"])),
        ("DRC hits", d["drc_hits"].to_string()),
        (
            "stalls",
            format!(
                "{} (runtime heartbeat {} ago)",
                d["stalls_total"],
                dur(n(&d["heartbeat_age_ms"]))
            ),
        ),
        ("log filter", s(&d["log_filter"])),
    ];
    for (k, v) in rows {
        out.push_str(&format!("{:<16}{v}\n", format!("{k}:")));
    }
    out
}

fn connections(d: &Value) -> String {
    let rows: Vec<Vec<String>> = d
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    vec![
                        s(&c["id"]),
                        s(&c["peer"]),
                        s(&c["transport"]),
                        s(&c["auth"]),
                        s(&c["uid"]),
                        dur(n(&c["age_ms"])),
                        dur(n(&c["idle_ms"])),
                        s(&c["requests_served"]),
                        format!(
                            "{} ({}/{}/{})",
                            c["in_flight"], c["queued"], c["in_fs"], c["sending"]
                        ),
                        bytes(n(&c["bytes_in"])),
                        bytes(n(&c["bytes_out"])),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    table(
        &[
            "ID",
            "PEER",
            "PROTO",
            "AUTH",
            "UID",
            "AGE",
            "IDLE",
            "SERVED",
            "IN FLIGHT (queued/fs/send)",
            "IN",
            "OUT",
        ],
        &rows,
    )
}

fn client_totals(d: &Value) -> String {
    let rows = rows_of(d, |c| {
        vec![
            match (&c["client"], c["transport"].as_str()) {
                (_, Some("udp")) => format!("UDP on {}", s(&c["local"])),
                (Value::Null, _) => "(other clients)".to_owned(),
                (ip, _) => s(ip),
            },
            s(&c["connections_open"]),
            s(&c["connections_closed"]),
            s(&c["requests"]),
            bytes(n(&c["bytes_in"])),
            bytes(n(&c["bytes_out"])),
        ]
    });
    table(
        &["CLIENT", "OPEN", "CLOSED", "REQUESTS", "IN", "OUT"],
        &rows,
    )
}

fn requests(d: &Value) -> String {
    let rows: Vec<Vec<String>> = d
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    vec![
                        s(&r["conn"]),
                        s(&r["peer"]),
                        s(&r["xid"]),
                        s(&r["procedure"]),
                        {
                            // Handles are up to 64 bytes: the table shows the first 20.
                            let fh = s(&r["file_handle"]);
                            fh.get(..40).map_or(fh.clone(), |p| format!("{p}…"))
                        },
                        dur(n(&r["age_ms"])),
                        s(&r["waiting_on"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    if rows.is_empty() {
        return "no requests in flight\n".into();
    }
    table(
        &[
            "CONN",
            "PEER",
            "XID",
            "PROCEDURE",
            "FILE HANDLE",
            "AGE",
            "WAITING ON",
        ],
        &rows,
    )
}

fn loans(d: &Value) -> String {
    let mut out = format!(
        "{} loans outstanding ({}) of {} slots; {} lent in all, {} READs found no free slot\n",
        d["outstanding"],
        bytes(n(&d["bytes_outstanding"])),
        d["slots"],
        d["lent_total"],
        d["exhausted"]
    );
    let rows: Vec<Vec<String>> = d["loans"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|l| {
                    let off = n(&l["offset"]);
                    vec![
                        s(&l["slot"]),
                        s(&l["kind"]),
                        s(&l["state"]),
                        s(&l["owner_conn"]),
                        s(&l["peer"]),
                        s(&l["fileid"]),
                        format!("{off}..{}", off + n(&l["bytes"])),
                        bytes(n(&l["bytes"])),
                        dur(n(&l["age_ms"])),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    if !rows.is_empty() {
        out.push_str(&table(
            &[
                "SLOT", "KIND", "STATE", "CONN", "PEER", "FILEID", "RANGE", "BYTES", "AGE",
            ],
            &rows,
        ));
    }
    out
}

fn locks(d: &Value) -> String {
    let rows: Vec<Vec<String>> = d
        .as_array()
        .map(|a| {
            a.iter()
                .map(|l| {
                    let held = l["held"] == json!(true);
                    vec![
                        s(&l["name"]),
                        if held { "HELD" } else { "free" }.into(),
                        l["holder_thread"]
                            .as_u64()
                            .map_or("-".into(), |t| format!("thread #{t}")),
                        s(&l["site"]),
                        l["held_for_ms"].as_u64().map_or("-".into(), dur),
                        s(&l["waiters"]),
                        s(&l["acquisitions"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    table(
        &[
            "LOCK", "STATE", "HOLDER", "TAKEN AT", "HELD FOR", "WAITERS", "ACQUIRED",
        ],
        &rows,
    )
}

/// One table row per element of the JSON array `v` (none if it is not one).
fn rows_of(v: &Value, row: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    v.as_array().into_iter().flatten().map(row).collect()
}

fn nfs4_clients(d: &Value) -> String {
    let rows = rows_of(&d["clients"], |c| {
        vec![
            s(&c["clientid"]),
            s(&c["owner"]),
            dur(n(&c["lease_age_ms"])),
            if c["courtesy"] == json!(true) {
                "courtesy"
            } else {
                "active"
            }
            .into(),
            s(&c["sessions"]),
            s(&c["slots_in_use"]),
            s(&c["opens"]),
            s(&c["locks"]),
            s(&c["delegations"]),
            s(&c["revoked"]),
            if c["callbacks"] == json!(true) {
                "up"
            } else {
                "down"
            }
            .into(),
        ]
    });
    let mut out = format!("{} NFSv4 clients\n", rows.len());
    out.push_str(&table(
        &[
            "CLIENTID",
            "OWNER",
            "LEASE AGE",
            "STATE",
            "SESSIONS",
            "SLOTS BUSY",
            "OPENS",
            "LOCKS",
            "DELEGS",
            "REVOKED",
            "CALLBACKS",
        ],
        &rows,
    ));
    out
}

fn nfs4_delegations(d: &Value) -> String {
    let rows = rows_of(&d["delegations"], |x| {
        vec![
            s(&x["clientid"]),
            s(&x["kind"]),
            match x["recall_due_in_ms"].as_u64() {
                Some(ms) => format!("recalled, due in {}", dur(ms)),
                None => "held".into(),
            },
            s(&x["file"]),
        ]
    });
    let c = &d["callbacks"];
    let mut out = format!(
        "{} NFSv4 delegations ({} shown); callbacks: {} calls, {} answered, {} timed out, {} failed\n",
        s(&d["total"]),
        rows.len(),
        s(&c["calls"]),
        s(&c["answered"]),
        s(&c["timeouts"]),
        s(&c["failed"]),
    );
    out.push_str(&table(&["CLIENTID", "KIND", "STATE", "FILE HANDLE"], &rows));
    out
}

fn nfs4_copies(d: &Value) -> String {
    let short = |v: &Value| {
        let h = s(v);
        if h.len() > 20 {
            format!("{}…", &h[..20])
        } else {
            h
        }
    };
    let rows = rows_of(&d["copies"], |x| {
        vec![
            s(&x["clientid"]),
            s(&x["state"]),
            format!(
                "{} of {}",
                bytes(x["copied"].as_u64().unwrap_or(0)),
                bytes(x["total"].as_u64().unwrap_or(0))
            ),
            dur(x["age_ms"].as_u64().unwrap_or(0)),
            short(&x["src"]),
            short(&x["dst"]),
        ]
    });
    let c = &d["counters"];
    let mut out = format!(
        "{} NFSv4.2 copies running of {}; {} synchronous, {} asynchronous started, {} refused (NFS4ERR_DELAY), {} cancelled, {} CB_OFFLOAD sent; {} copied\n",
        s(&d["running"]),
        s(&d["limit"]),
        s(&c["sync_copies"]),
        s(&c["async_started"]),
        s(&c["async_refused"]),
        s(&c["cancelled"]),
        s(&c["offloads_sent"]),
        bytes(c["bytes"].as_u64().unwrap_or(0)),
    );
    out.push_str(&table(
        &[
            "CLIENTID",
            "STATE",
            "COPIED",
            "AGE",
            "SOURCE",
            "DESTINATION",
        ],
        &rows,
    ));
    out
}

fn file_locks(d: &Value) -> String {
    let u = &d["usage"];
    let mut out = format!(
        "{} locks, {} shares, {} blocked requests; {} clients, {} files; NSM state {}\n",
        u["locks"], u["shares"], u["waiters"], u["clients"], u["files"], d["nsm_state"]
    );
    let rows: Vec<Vec<String>> = d["rows"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    let len = r["len"].as_u64().unwrap_or(0);
                    vec![
                        s(&r["what"]),
                        s(&r["client"]),
                        s(&r["owner"]),
                        s(&r["mode"]),
                        if len == 0 {
                            format!("{}-EOF", r["offset"])
                        } else {
                            format!("{}+{len}", r["offset"])
                        },
                        r["age_ms"].as_u64().map_or("-".into(), dur),
                        s(&r["file"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&table(
        &[
            "WHAT",
            "CLIENT",
            "OWNER (SVID/OH)",
            "MODE",
            "RANGE",
            "AGE",
            "FILE HANDLE",
        ],
        &rows,
    ));
    out
}

fn exports(list: &Value, config: Option<&str>) -> String {
    let mut out = format!(
        "config: {}\n",
        config.unwrap_or("- (serving a directory given on the command line)")
    );
    for e in list.as_array().into_iter().flatten() {
        out.push_str(&format!(
            "export {} id {} -> {}\n",
            s(&e["mount_path"]),
            e["id"],
            s(&e["backend"])
        ));
        for r in e["rules"].as_array().into_iter().flatten() {
            let mut flags = vec![s(&r["access"])];
            if r["all_squash"] == json!(true) {
                flags.push("all_squash".into());
            } else if r["root_squash"] == json!(true) {
                flags.push("root_squash".into());
            }
            if r["secure"] == json!(true) {
                flags.push("secure".into());
            }
            flags.push(format!("anon {}:{}", r["anonuid"], r["anongid"]));
            out.push_str(&format!(
                "  client {:<20} {}\n",
                s(&r["match"]),
                flags.join(", ")
            ));
        }
    }
    out
}

fn reload(d: &Value) -> String {
    let names = |v: &Value| {
        let a: Vec<String> = v.as_array().into_iter().flatten().map(s).collect();
        if a.is_empty() {
            "none".to_owned()
        } else {
            a.join(", ")
        }
    };
    format!(
        "reloaded {}: added {}; changed {}; removed {}; unchanged {}\n{}",
        s(&d["config"]),
        names(&d["added"]),
        names(&d["changed"]),
        names(&d["removed"]),
        names(&d["unchanged"]),
        exports(&d["exports"], None)
            .split_once('\n')
            .map_or("", |x| x.1)
    )
}

fn stats(d: &Value) -> String {
    let mut out = format!(
        "{} requests in {}; network {} in, {} out; READ {} zero-copy + {} buffered; WRITE {}; DRC hits {}\n",
        d["requests_total"],
        dur(n(&d["uptime_ms"])),
        bytes(n(&d["bytes_in"])),
        bytes(n(&d["bytes_out"])),
        bytes(n(&d["read_bytes_zero_copy"])),
        bytes(n(&d["read_bytes_buffered"])),
        bytes(n(&d["write_bytes"])),
        d["drc_hits"],
    );
    let rows: Vec<Vec<String>> = d["procedures"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    let mut errors: Vec<String> = p["errors"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| format!("{k}×{v}"))
                        .collect();
                    if n(&p["no_reply"]) > 0 {
                        errors.push(format!("no reply×{}", p["no_reply"]));
                    }
                    let l = &p["latency_us"];
                    vec![
                        format!("{} {}", s(&p["program"]), s(&p["procedure"])),
                        s(&p["calls"]),
                        us(&l["mean"]),
                        us(&l["p50"]),
                        us(&l["p90"]),
                        us(&l["p99"]),
                        us(&l["max"]),
                        if errors.is_empty() {
                            "-".into()
                        } else {
                            errors.join(" ")
                        },
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    out.push_str(&table(
        &[
            "PROCEDURE",
            "CALLS",
            "MEAN",
            "P50",
            "P90",
            "P99",
            "MAX",
            "ERRORS",
        ],
        &rows,
    ));
    out
}

fn stalls(d: &Value) -> String {
    let mut out = format!(
        "{} stalls reported (bound {})\n",
        d["stalls_total"],
        dur(n(&d["stall_bound_ms"]))
    );
    for r in d["reports"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "--- {} ago ---\n{}",
            dur(n(&r["ago_ms"])),
            s(&r["text"])
        ));
    }
    out
}

fn cluster(d: &Value) -> String {
    if d["configured"] == Value::Bool(false) {
        return "no [cluster] configured: this head shares no grace period\n".into();
    }
    let mut out = format!(
        "node {} · pool {} · epoch {} · {} · last read {} ago · {} polls, {} errors\n",
        s(&d["node"]),
        s(&d["pool"]),
        s(&d["epoch"]),
        if d["in_grace"] == Value::Bool(true) {
            "IN GRACE: only reclaims granted"
        } else {
            "not in grace"
        },
        dur(n(&d["last_read_ms_ago"])),
        n(&d["polls"]),
        n(&d["poll_errors"]),
    );
    if let Some(w) = d["poll_waiting_ms"].as_u64() {
        out.push_str(&format!("poll waiting on the cluster for {}\n", dur(w)));
    }
    if !d["error"].is_null() {
        out.push_str(&format!("last error: {}\n", s(&d["error"])));
    }
    let rows: Vec<Vec<String>> = d["heads"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            vec![
                s(&h["node"]),
                if h["alive"] == Value::Bool(true) {
                    "yes"
                } else {
                    "no"
                }
                .into(),
                if h["needs_grace"] == Value::Bool(true) {
                    format!("yes ({} left)", dur(n(&h["need_left_ms"])))
                } else {
                    "no".into()
                },
                s(&h["acked_epoch"]),
            ]
        })
        .collect();
    out.push_str(&table(
        &["HEAD", "ALIVE", "NEEDS GRACE", "ACKED EPOCH"],
        &rows,
    ));
    match d["evict_gone_heads_after_ms"].as_u64() {
        Some(ms) => out.push_str(&format!(
            "dead heads' CephFS sessions are evicted {} after their entry ends ({} so far)\n",
            dur(ms),
            n(&d["sessions_evicted"])
        )),
        None => out.push_str(
            "dead heads' CephFS sessions are left to the MDS (evict_gone_heads = false)\n",
        ),
    }
    if d["evicting"].is_object() {
        out.push_str(&format!(
            "evicting the sessions of dead head {} for {}\n",
            s(&d["evicting"]["node"]),
            dur(n(&d["evicting"]["waiting_ms"]))
        ));
    }
    for e in d["evictions"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {} (dead for {}), {} ago: {}{}\n",
            s(&e["node"]),
            dur(n(&e["dead_since_ms_ago"])),
            dur(n(&e["at_ms_ago"])),
            if e["ok"] == Value::Bool(true) {
                ""
            } else {
                "FAILED: "
            },
            s(&e["outcome"]),
        ));
    }
    out
}

fn log(d: &Value) -> String {
    let clients: Vec<String> = d["debug_clients"]
        .as_array()
        .into_iter()
        .flatten()
        .map(s)
        .collect();
    format!(
        "filter: {}\nper-client debug: {}\n",
        s(&d["filter"]),
        if clients.is_empty() {
            "none".to_owned()
        } else {
            clients.join(", ")
        }
    )
}

// ---- --progress ----

/// Prints one summary line every `every` until the process exits.
pub fn progress_loop(running: &rnfs_server::Running, every: Duration) {
    let stats = &running.stats;
    let read = || {
        (
            stats.calls_total(),
            stats.bytes_in.load(Ordering::Relaxed),
            stats.bytes_out.load(Ordering::Relaxed),
        )
    };
    let mut last = read();
    let mut last_t = Instant::now();
    loop {
        std::thread::sleep(every);
        let now = read();
        let t = Instant::now();
        let secs = t.duration_since(last_t).as_secs_f64().max(1e-3);
        let conns = running.registry.connections();
        let tcp = conns
            .iter()
            .filter(|c| c.transport == rnfs_server::Transport::Tcp)
            .count();
        let in_flight: usize = conns.iter().map(|c| c.requests().len()).sum();
        let mib = |b: u64| b as f64 / secs / (1 << 20) as f64;
        println!(
            "rnfsd: {:.0} req/s, in {:.1} MiB/s, out {:.1} MiB/s, {tcp} connections, {in_flight} in flight, {} requests in all",
            now.0.saturating_sub(last.0) as f64 / secs,
            mib(now.1.saturating_sub(last.1)),
            mib(now.2.saturating_sub(last.2)),
            now.0,
        );
        last = now;
        last_t = t;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(words: &[&str]) -> (CtlOptions, Vec<String>) {
        let words: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        split_options(&words).expect("valid words")
    }

    #[test]
    fn options_are_taken_from_anywhere() {
        let (o, w) = split(&["status", "--json"]);
        assert!(o.json);
        assert_eq!(w, ["status"]);
        let (o, w) = split(&["nfs4", "--state-dir", "/s", "clients", "--json"]);
        assert_eq!(o.state_dir, Some(PathBuf::from("/s")));
        assert_eq!(w, ["nfs4", "clients"]);
        let (o, w) = split(&["exports", "--socket=/x.sock"]);
        assert_eq!(o.socket, Some(PathBuf::from("/x.sock")));
        assert_eq!(w, ["exports"]);
        let (o, _) = split(&["status", "--help"]);
        assert!(o.help);
    }

    #[test]
    fn command_words_stay_the_commands() {
        let (o, w) = split(&["log", "--client", "10.0.0.1", "off", "--json"]);
        assert!(o.json);
        assert_eq!(w, ["log", "--client", "10.0.0.1", "off"]);
        let (o, w) = split(&["log", "--", "--json"]);
        assert!(!o.json, "after -- everything is the command's");
        assert_eq!(w, ["log", "--json"]);
    }

    #[test]
    fn bad_options_are_refused() {
        let split_err = |words: &[&str]| {
            let words: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
            split_options(&words).is_err()
        };
        assert!(split_err(&["status", "--socket"]));
        assert!(split_err(&["status", "--state-dir="]));
        assert!(split_err(&["status", "--socket", "a", "--socket", "b"]));
        let before = CtlOptions {
            socket: Some("/a".into()),
            ..CtlOptions::default()
        };
        let (after, _) = split(&["status", "--state-dir", "/s"]);
        assert!(
            before.merge(after).is_err(),
            "state dir and socket conflict"
        );
        let (after, _) = split(&["status", "--socket", "/b"]);
        let before = CtlOptions {
            socket: Some("/a".into()),
            ..CtlOptions::default()
        };
        assert!(before.merge(after).is_err(), "twice, before and after");
    }
}
