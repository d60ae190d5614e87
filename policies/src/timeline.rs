//! Timelines in the Chrome trace-event format (the JSON that Perfetto's UI and
//! `chrome://tracing` open), so that a simulated and a real run can be opened side by side.
//!
//! The input is backend-neutral: a plain list of [`Span`]s (client, track, op name, kind, start
//! and end in ns, an `args` map) plus optional [`CounterSample`]s and free-form metadata. Each
//! client becomes a process (`pid`), each of its tracks a thread (`tid`), each span a complete
//! event (`"ph": "X"`) with its kind as category and its args; counters become counter events
//! (`"ph": "C"`) of a separate `GPU` process; the metadata goes to `otherData`. Timestamps are
//! microseconds (the format's unit) with nanosecond decimals.
//!
//! [`validate`] checks a file against the format (required fields per phase, numeric
//! timestamps, timestamps non-decreasing per track, spans of a track nested, not partially
//! overlapping), for the tests of both backends.
//!
//! [`Window`] picks the part of a run a timeline keeps; [`report_metadata`] is the provenance
//! of a report in the form both backends put in `otherData`.
//!
//! Everything here is backend-neutral: `orion_sim::timeline::from_sim_run` turns a simulated run
//! into a [`Timeline`], `orion_gpu::replay` a real one.

use crate::client::ProfileRef;
use crate::report::{Report, round6};
use orion_traces::{ClientSpec, Scenario};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

/// One slice of a timeline: an op that ran on a track of a client.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// Client name (one process per client).
    pub client: String,
    /// Track within the client (one thread per track), e.g. its stream.
    pub track: String,
    /// What ran (the kernel's name).
    pub name: String,
    /// Kind of op (`kernel`, `copy_h2d`, ...): the event's category.
    pub kind: String,
    /// Start, ns.
    pub start_ns: u64,
    /// End, ns (at least `start_ns`).
    pub end_ns: u64,
    /// Details shown when the slice is selected (the op's profile, timings).
    pub args: BTreeMap<String, Value>,
}

/// A value of one or more counters at one time (a step: it holds until the next sample).
#[derive(Debug, Clone, PartialEq)]
pub struct CounterSample {
    /// Counter track name, e.g. `SMs busy`.
    pub name: String,
    /// Time, ns.
    pub ts_ns: u64,
    /// Series name -> value (stacked in the viewer), e.g. one per client.
    pub values: BTreeMap<String, f64>,
}

/// A whole timeline.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    /// Provenance and anything else worth keeping (tool version, device, traces, seed...),
    /// written to the file's `otherData`.
    pub metadata: BTreeMap<String, Value>,
    /// Process order: clients named here get the first process ids, in this order; the others
    /// follow in order of first appearance.
    pub clients: Vec<String>,
    /// The slices.
    pub spans: Vec<Span>,
    /// Counter samples.
    pub counters: Vec<CounterSample>,
}

/// Name of the process holding the counter tracks.
pub const COUNTER_PROCESS: &str = "GPU";

/// Nanoseconds as microseconds (the format's unit).
pub fn us(ns: u64) -> f64 {
    ns as f64 / 1e3
}

impl Timeline {
    /// Process and thread ids: client -> (pid, track -> tid).
    fn ids(&self) -> Vec<(String, Vec<String>)> {
        let mut procs: Vec<(String, Vec<String>)> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for c in self.clients.iter().chain(self.spans.iter().map(|s| &s.client)) {
            index.entry(c.as_str()).or_insert_with(|| {
                procs.push((c.clone(), Vec::new()));
                procs.len() - 1
            });
        }
        for s in &self.spans {
            let tracks = &mut procs[index[s.client.as_str()]].1;
            if !tracks.contains(&s.track) {
                tracks.push(s.track.clone());
            }
        }
        procs
    }

    /// Writes the timeline as trace-event JSON (`{"traceEvents": [...], ...}`): metadata events
    /// naming processes and threads first, then spans and counters in time order.
    pub fn write_json(&self, w: &mut dyn Write) -> io::Result<()> {
        let procs = self.ids();
        let mut pid_of: HashMap<&str, (u64, HashMap<&str, u64>)> = HashMap::new();
        let mut events: Vec<Value> = Vec::new();
        for (i, (client, tracks)) in procs.iter().enumerate() {
            let pid = i as u64 + 1;
            events.push(
                json!({"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "ts": 0, "args": {"name": client}}),
            );
            events.push(
                json!({"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0, "ts": 0, "args": {"sort_index": pid}}),
            );
            let mut tids = HashMap::new();
            for (j, track) in tracks.iter().enumerate() {
                let tid = j as u64 + 1;
                events.push(
                    json!({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "ts": 0, "args": {"name": track}}),
                );
                events.push(json!({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid, "ts": 0, "args": {"sort_index": tid}}));
                tids.insert(track.as_str(), tid);
            }
            pid_of.entry(client.as_str()).or_insert((pid, tids));
        }
        let counter_pid = procs.len() as u64 + 1;
        if !self.counters.is_empty() {
            events.push(json!({"ph": "M", "name": "process_name", "pid": counter_pid, "tid": 0, "ts": 0, "args": {"name": COUNTER_PROCESS}}));
            events.push(json!({"ph": "M", "name": "process_sort_index", "pid": counter_pid, "tid": 0, "ts": 0, "args": {"sort_index": counter_pid}}));
        }
        let mut out = io::BufWriter::new(w);
        out.write_all(b"{\"traceEvents\": [\n")?;
        let mut first = true;
        let mut emit = |out: &mut io::BufWriter<&mut dyn Write>, v: &Value| -> io::Result<()> {
            if !first {
                out.write_all(b",\n")?;
            }
            first = false;
            serde_json::to_writer(&mut *out, v).map_err(io::Error::other)
        };
        for e in &events {
            emit(&mut out, e)?;
        }
        // Spans and counters merged in time order (spans stable in input order at equal times).
        let mut order: Vec<(u64, u8, usize)> = self.spans.iter().enumerate().map(|(i, s)| (s.start_ns, 0, i)).collect();
        order.extend(self.counters.iter().enumerate().map(|(i, c)| (c.ts_ns, 1, i)));
        order.sort();
        for (_, what, i) in order {
            let v = if what == 0 {
                let s = &self.spans[i];
                let (pid, tids) = &pid_of[s.client.as_str()];
                json!({
                    "ph": "X",
                    "name": s.name,
                    "cat": s.kind,
                    "ts": us(s.start_ns),
                    "dur": us(s.end_ns.saturating_sub(s.start_ns)),
                    "pid": pid,
                    "tid": tids[s.track.as_str()],
                    "args": s.args,
                })
            } else {
                let c = &self.counters[i];
                json!({"ph": "C", "name": c.name, "ts": us(c.ts_ns), "pid": counter_pid, "tid": 0, "args": c.values})
            };
            emit(&mut out, &v)?;
        }
        out.write_all(b"\n],\n\"displayTimeUnit\": \"ns\",\n\"otherData\": ")?;
        serde_json::to_writer(&mut out, &self.metadata).map_err(io::Error::other)?;
        out.write_all(b"}\n")?;
        out.flush()
    }

    /// The timeline as a JSON string (see [`write_json`](Self::write_json)).
    pub fn to_json_string(&self) -> String {
        let mut buf = Vec::new();
        self.write_json(&mut buf).expect("writing to memory cannot fail");
        String::from_utf8(buf).expect("JSON is UTF-8")
    }
}

/// What [`validate`] found in a valid trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TraceSummary {
    /// Events of every phase.
    pub events: usize,
    /// Complete (`X`) events.
    pub slices: usize,
    /// Counter (`C`) events.
    pub counters: usize,
    /// Distinct (pid, tid) tracks holding slices.
    pub tracks: usize,
}

fn field<'a>(e: &'a serde_json::Map<String, Value>, key: &str, i: usize) -> Result<&'a Value, String> {
    e.get(key).ok_or_else(|| format!("event {i}: missing `{key}`"))
}

fn number(e: &serde_json::Map<String, Value>, key: &str, i: usize) -> Result<f64, String> {
    let v = field(e, key, i)?;
    v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| format!("event {i}: `{key}` is {v}, not a number"))
}

fn id(e: &serde_json::Map<String, Value>, key: &str, i: usize) -> Result<String, String> {
    match field(e, key, i)? {
        Value::Number(n) if n.is_u64() || n.is_i64() => Ok(n.to_string()),
        Value::String(s) => Ok(s.clone()),
        v => Err(format!("event {i}: `{key}` is {v}, not an integer or string id")),
    }
}

/// Checks `trace` against the trace-event format as Perfetto's and Chrome's JSON loaders read
/// it: a JSON array of events or an object with a `traceEvents` array; every event an object
/// with a known phase `ph` and that phase's required fields (`X`: `name`, numeric `ts`, numeric
/// non-negative `dur`, `pid`, `tid`; `B`/`E`/`i`/`I`: `ts`, `pid`, `tid`; `C`: `name`, `ts`,
/// `pid`, numeric `args`; `M`: `name`, `pid`, `args`); timestamps non-decreasing per track in
/// file order (per counter for `C`); and slices of one track nested, never partially
/// overlapping.
pub fn validate(trace: &Value) -> Result<TraceSummary, String> {
    let events = match trace {
        Value::Array(a) => a,
        Value::Object(o) => match o.get("traceEvents") {
            Some(Value::Array(a)) => a,
            Some(v) => return Err(format!("`traceEvents` is {}, not an array", kind_of(v))),
            None => return Err("an object trace needs a `traceEvents` array".into()),
        },
        v => return Err(format!("a trace is an array or an object, not {}", kind_of(v))),
    };
    let mut summary = TraceSummary { events: events.len(), ..TraceSummary::default() };
    // Per track: last timestamp seen, and the end times of the open slices (a stack).
    let mut tracks: HashMap<(String, String), (f64, Vec<f64>)> = HashMap::new();
    let mut counters: HashMap<(String, String), f64> = HashMap::new();
    // Slack for microsecond decimals printed from integer nanoseconds.
    const EPS: f64 = 1e-6;
    for (i, ev) in events.iter().enumerate() {
        let e = ev.as_object().ok_or_else(|| format!("event {i}: not an object"))?;
        let ph = field(e, "ph", i)?.as_str().ok_or_else(|| format!("event {i}: `ph` is not a string"))?;
        match ph {
            "X" | "B" | "E" | "i" | "I" => {
                if ph != "E" {
                    field(e, "name", i)?.as_str().ok_or_else(|| format!("event {i}: `name` is not a string"))?;
                }
                let ts = number(e, "ts", i)?;
                let key = (id(e, "pid", i)?, id(e, "tid", i)?);
                let (last, open) = tracks.entry(key.clone()).or_insert((f64::NEG_INFINITY, Vec::new()));
                if ts + EPS < *last {
                    return Err(format!(
                        "event {i}: ts {ts} goes back in time on track pid {} tid {} (previous {last})",
                        key.0, key.1
                    ));
                }
                *last = ts;
                if ph == "X" {
                    let dur = number(e, "dur", i)?;
                    if dur < 0.0 {
                        return Err(format!("event {i}: negative `dur` {dur}"));
                    }
                    while open.last().is_some_and(|&end| end <= ts + EPS) {
                        open.pop();
                    }
                    if let Some(&end) = open.last()
                        && ts + dur > end + EPS
                    {
                        return Err(format!(
                            "event {i}: slice {ts}..{} overlaps the end {end} of an enclosing slice on track pid {} tid {}",
                            ts + dur,
                            key.0,
                            key.1
                        ));
                    }
                    open.push(ts + dur);
                    summary.slices += 1;
                }
            }
            "C" => {
                let name = field(e, "name", i)?.as_str().ok_or_else(|| format!("event {i}: `name` is not a string"))?;
                let ts = number(e, "ts", i)?;
                let pid = id(e, "pid", i)?;
                let args =
                    field(e, "args", i)?.as_object().ok_or_else(|| format!("event {i}: `args` is not an object"))?;
                if let Some((k, v)) = args.iter().find(|(_, v)| !v.is_number()) {
                    return Err(format!("event {i}: counter `{name}` series `{k}` is {v}, not a number"));
                }
                let last = counters.entry((pid, name.to_string())).or_insert(f64::NEG_INFINITY);
                if ts + EPS < *last {
                    return Err(format!("event {i}: counter `{name}` goes back in time ({ts} after {last})"));
                }
                *last = ts;
                summary.counters += 1;
            }
            "M" => {
                field(e, "name", i)?.as_str().ok_or_else(|| format!("event {i}: `name` is not a string"))?;
                id(e, "pid", i)?;
                field(e, "args", i)?.as_object().ok_or_else(|| format!("event {i}: `args` is not an object"))?;
            }
            other => return Err(format!("event {i}: unknown phase `{other}`")),
        }
    }
    summary.tracks = tracks.values().filter(|(last, _)| last.is_finite()).count();
    Ok(summary)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Which part of a run a timeline keeps: spans overlapping `[from_ns, to_ns)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Start, ns.
    pub from_ns: u64,
    /// End, ns (`u64::MAX`: the end of the run).
    pub to_ns: u64,
}

impl Window {
    /// The whole run.
    pub const ALL: Window = Window { from_ns: 0, to_ns: u64::MAX };

    /// Parses `FROM..TO` (durations with units, e.g. `1s..1.5s`; either side may be empty).
    pub fn parse(text: &str) -> Result<Window, String> {
        let (a, b) = text
            .split_once("..")
            .ok_or_else(|| format!("`{text}` is not a window (expected FROM..TO, e.g. 1s..1.5s)"))?;
        let parse = |s: &str, default: u64| -> Result<u64, String> {
            if s.trim().is_empty() { Ok(default) } else { orion_traces::units::parse_duration_ns(s, "s") }
        };
        let w = Window { from_ns: parse(a, 0)?, to_ns: parse(b, u64::MAX)? };
        if w.to_ns <= w.from_ns {
            return Err(format!("`{text}`: the window ends before it starts"));
        }
        Ok(w)
    }

    /// Records the window in a timeline's metadata (`window_s`: from and to in seconds, `null`
    /// for an open end); nothing for the whole run.
    pub fn note_in(&self, metadata: &mut BTreeMap<String, Value>) {
        if *self != Window::ALL {
            let to = (self.to_ns != u64::MAX).then(|| self.to_ns as f64 / 1e9);
            metadata.insert("window_s".into(), json!([self.from_ns as f64 / 1e9, to]));
        }
    }

    /// Whether `[start, end]` overlaps the window.
    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        end >= self.from_ns && start < self.to_ns
    }
}

/// The process name of each client of a scenario in a timeline: `NAME (hp)`, `NAME (be)`.
pub fn client_names(scenario: &Scenario) -> Vec<String> {
    scenario.clients.iter().map(|c| format!("{} ({})", c.name, c.role.as_str())).collect()
}

/// One op of a run as a slice of its client's `stream` track: the op's profile record (found
/// through `profile` in the client's tables, the steady-state trace or the first iteration's)
/// goes to `args` with `seq`, `request`, `op_index`, `ran_ns` and `slowdown` (time on the GPU
/// over the record's standalone duration). `None` for an op that does not use the GPU (host
/// work, allocations, syncs) or whose record is missing. Both backends build their slices here
/// and add their own host times.
pub fn op_span(
    client: &ClientSpec,
    client_name: &str,
    profile: ProfileRef,
    (start_ns, end_ns): (u64, u64),
    seq: u64,
    request: u64,
) -> Option<Span> {
    let table = if profile.table == 0 { Some(&client.trace) } else { client.first_trace.as_ref() };
    let rec = table.and_then(|t| t.ops.get(profile.row as usize))?;
    if !rec.kind.uses_gpu() {
        return None;
    }
    let mut args: BTreeMap<String, Value> = match serde_json::to_value(rec) {
        Ok(Value::Object(m)) => m.into_iter().filter(|(k, _)| k != "name" && k != "kind").collect(),
        _ => BTreeMap::new(),
    };
    let ran = end_ns.saturating_sub(start_ns);
    args.insert("seq".into(), json!(seq));
    args.insert("request".into(), json!(request));
    args.insert("op_index".into(), json!(profile.row));
    args.insert("ran_ns".into(), json!(ran));
    if rec.duration_ns > 0 {
        args.insert("slowdown".into(), json!(round6(ran as f64 / rec.duration_ns as f64)));
    }
    Some(Span {
        client: client_name.to_string(),
        track: "stream".into(),
        name: rec.name.clone(),
        kind: rec.kind.as_str().into(),
        start_ns,
        end_ns,
        args,
    })
}

/// Provenance of a report for a timeline's metadata: tool, backend, scenario, policy and its
/// parameters, device and its source, traces and their sources, seed.
pub fn report_metadata(report: &Report) -> BTreeMap<String, Value> {
    let mut m = BTreeMap::new();
    m.insert("tool".into(), json!(report.tool));
    m.insert("backend".into(), json!(report.backend));
    m.insert("scenario".into(), json!(report.scenario));
    m.insert("policy".into(), json!(report.policy.name));
    m.insert("policy_params".into(), json!(report.policy.params));
    m.insert("device".into(), json!(report.device.name));
    m.insert("device_source".into(), json!(report.device.source));
    let traces: BTreeMap<&str, &str> =
        report.clients.iter().map(|c| (c.trace.name.as_str(), c.trace.source.as_str())).collect();
    m.insert("traces".into(), json!(traces));
    m.insert("seed".into(), json!(report.seed));
    m.insert("duration_s".into(), json!(report.duration_s));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(client: &str, start: u64, end: u64) -> Span {
        Span {
            client: client.into(),
            track: "stream".into(),
            name: "k".into(),
            kind: "kernel".into(),
            start_ns: start,
            end_ns: end,
            args: BTreeMap::new(),
        }
    }

    #[test]
    fn writes_valid_trace_events_in_time_order() {
        let t = Timeline {
            metadata: BTreeMap::from([("seed".to_string(), json!(1))]),
            clients: vec!["b".into(), "a".into()],
            spans: vec![span("a", 2000, 3000), span("b", 500, 1500), span("a", 3000, 3500)],
            counters: vec![CounterSample {
                name: "SMs busy".into(),
                ts_ns: 0,
                values: BTreeMap::from([("a".to_string(), 1.5)]),
            }],
        };
        let v: Value = serde_json::from_str(&t.to_json_string()).unwrap();
        let s = validate(&v).unwrap();
        assert_eq!((s.slices, s.counters, s.tracks), (3, 1, 2));
        assert_eq!(v["otherData"]["seed"], json!(1));
        // `b` is listed first, so it is process 1.
        let names: Vec<_> = v["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["name"] == "process_name")
            .map(|e| (e["pid"].as_u64().unwrap(), e["args"]["name"].as_str().unwrap().to_string()))
            .collect();
        assert_eq!(names, [(1, "b".to_string()), (2, "a".to_string()), (3, "GPU".to_string())]);
        let x: Vec<_> = v["traceEvents"].as_array().unwrap().iter().filter(|e| e["ph"] == "X").collect();
        assert_eq!(x[0]["ts"], json!(0.5));
        assert_eq!(x[0]["dur"], json!(1.0));
    }

    #[test]
    fn invalid_traces_are_refused_with_the_event_and_reason() {
        let bad = |v: Value, why: &str| {
            let e = validate(&v).unwrap_err();
            assert!(e.contains(why), "{e:?} should say {why:?}");
        };
        let x =
            |ts: f64, dur: f64, tid: u64| json!({"ph": "X", "name": "k", "ts": ts, "dur": dur, "pid": 1, "tid": tid});
        assert!(validate(&json!([x(0.0, 1.0, 1), x(1.0, 1.0, 1), x(0.5, 1.0, 2)])).is_ok());
        bad(json!([x(2.0, 1.0, 1), x(1.0, 0.5, 1)]), "event 1: ts 1 goes back in time");
        bad(json!([x(0.0, 2.0, 1), x(1.0, 2.0, 1)]), "overlaps the end 2");
        bad(json!([x(0.0, -1.0, 1)]), "negative `dur`");
        bad(json!([{"ph": "X", "name": "k", "dur": 1.0, "pid": 1, "tid": 1}]), "event 0: missing `ts`");
        bad(json!([{"ph": "X", "name": "k", "ts": "0", "dur": 1.0, "pid": 1, "tid": 1}]), "`ts`");
        bad(json!([{"ph": "Q", "ts": 0}]), "unknown phase `Q`");
        bad(json!([{"ph": "C", "name": "c", "ts": 0, "pid": 1, "args": {"a": "x"}}]), "not a number");
        bad(json!({"events": []}), "`traceEvents`");
        bad(json!(3), "not a number");
    }

    #[test]
    fn windows_parse() {
        assert_eq!(Window::parse("1s..1.5s").unwrap(), Window { from_ns: 1_000_000_000, to_ns: 1_500_000_000 });
        assert_eq!(Window::parse("..2ms").unwrap(), Window { from_ns: 0, to_ns: 2_000_000 });
        assert_eq!(Window::parse("3s..").unwrap().to_ns, u64::MAX);
        assert!(Window::parse("2s..1s").is_err());
        assert!(Window::parse("2s").is_err());
        assert!(Window::parse("x..1s").is_err());
    }
}
