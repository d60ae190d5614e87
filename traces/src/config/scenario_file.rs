//! The project's scenario file: a JSON object saying explicitly who shares which device, for
//! how long, under which policy.
//!
//! ```json
//! {
//!   "name": "resnet50_bert",                 // optional; default: the file's stem
//!   "device": "h100",                        // a preset, or {"file": "devices/my_gpu.json"}
//!   "seed": 42,
//!   "duration": "30s",                       // and/or "requests": 1000 (measured HP requests)
//!   "warmup": 10,
//!   "policy": "orion",
//!   "policy_params": {"dur_threshold": "160us"},
//!   "clients": [
//!     {"name": "hp", "role": "hp", "model": "resnet50", "mode": "inference", "batch": 4,
//!      "arrival": {"type": "poisson", "rate": 15}},
//!     {"name": "be", "role": "be", "trace": "traces/bert_train.csv", "mode": "training"}
//!   ]
//! }
//! ```
//!
//! Top level: only `clients` is required. `device`, `seed` and `warmup` default to the
//! [`LoadOptions`]; without `duration` and `requests` the run lasts [`Stop::DEFAULT`].
//! `duration` is a string with a unit (`30s`, `500ms`) or a number of seconds.
//! `policy_params` are passed through to the policy unchecked.
//!
//! A client gives either `model` (a built-in model, with `batch` defaulting to the paper's batch
//! size for the mode) or `trace` (a trace file of any format [`crate::format::read_trace`]
//! reads), and may add `first_trace` (the first request or iteration, when it differs).
//! `mode` (`inference` or `training`) is required unless the trace's metadata says it. `role`
//! is `hp` or `be` (default `be`); at most one client is `hp`. `arrival` is
//! `{"type": "poisson", "rate": R}`, `{"type": "uniform", "rate": R}`,
//! `{"type": "trace", "file": "gaps.json"}` (a JSON list of inter-arrival seconds, or one a
//! line), `{"type": "trace", "inter_arrival_s": [...]}` or `{"type": "closed_loop"}`; training
//! clients default to closed loop, inference clients must say. `max_requests` (optional) caps
//! the client's requests, warm-up included. `name` defaults to the model or trace name.
//!
//! `//` and `/* */` comments are allowed. Relative paths are taken from the file's folder.

use super::{LoadOptions, TraceCache, base_dir, existing, read_inter_arrival_file, validated};
use crate::arrival::ArrivalProcess;
use crate::device::DeviceSpec;
use crate::error::{Location, Result, TraceError};
use crate::format::{json_error, json_message, origin_stem};
use crate::scenario::{ClientSpec, Scenario, Stop};
use crate::trace::Trace;
use crate::units::parse_duration_ns;
use crate::workload::{Model, Role, WorkKind};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

/// A scenario file as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Name for reports; default: the file's stem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The device; default: the load options' device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceRef>,
    /// Seed of every random choice; default: the load options' seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Run length in nanoseconds (written `"30s"`, `"500ms"` or a number of seconds).
    #[serde(
        rename = "duration",
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_duration",
        deserialize_with = "de_duration"
    )]
    pub duration_ns: Option<u64>,
    /// Stop after this many measured requests of the HP client (of the first, without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// Warm-up requests per client; default: the load options' warm-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<u32>,
    /// Policy to run (the command line may override it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Policy parameters, passed through to the policy.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policy_params: BTreeMap<String, Value>,
    /// The clients sharing the device.
    pub clients: Vec<ClientEntry>,
}

/// Where a scenario's device comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceRef {
    /// A built-in preset, written as its name (`"h100"`).
    Preset(String),
    /// A device file, written `{"file": "path"}` (relative to the scenario's folder).
    File(String),
}

/// One client of a scenario file, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ClientEntry {
    /// Display name; default: the model's or the trace's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `hp` or `be`; default `be`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// A built-in model (`resnet50`, `mobilenet_v2`, `resnet101`, `bert`, `transformer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `inference` or `training`; required unless the trace's metadata says it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<WorkKind>,
    /// Batch size of a built-in model; default: the paper's for the mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    /// A trace file (instead of `model`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// A trace file of the first request or iteration, when it differs from the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_trace: Option<String>,
    /// How requests arrive; default closed loop for training, required for inference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival: Option<ArrivalEntry>,
    /// Stop issuing after this many requests or iterations (warm-up included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u64>,
}

/// An arrival process as written: the serde form of [`ArrivalProcess`], plus `file` for
/// inter-arrival times kept in a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArrivalEntry {
    /// Which process.
    #[serde(rename = "type")]
    pub kind: ArrivalKind,
    /// Requests per second (`poisson`, `uniform`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// File of inter-arrival times in seconds (`trace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Inter-arrival times in seconds (`trace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inter_arrival_s: Option<Vec<f64>>,
}

/// The kinds of arrival process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArrivalKind {
    /// Exponential inter-arrival times.
    Poisson,
    /// A constant interval.
    Uniform,
    /// Inter-arrival times from a list.
    Trace,
    /// The next request starts when the previous one ends.
    ClosedLoop,
}

impl ArrivalKind {
    fn as_str(self) -> &'static str {
        match self {
            ArrivalKind::Poisson => "poisson",
            ArrivalKind::Uniform => "uniform",
            ArrivalKind::Trace => "trace",
            ArrivalKind::ClosedLoop => "closed_loop",
        }
    }
}

/// Reads a scenario file.
pub fn load_scenario_file(path: &Path, opts: &LoadOptions) -> Result<Scenario> {
    let text = std::fs::read_to_string(path).map_err(|e| TraceError::io(path, e))?;
    parse_scenario_file(&text, path, opts)
}

/// Parses a scenario file from text; `path` names it in errors and anchors relative paths.
pub fn parse_scenario_file(text: &str, path: &Path, opts: &LoadOptions) -> Result<Scenario> {
    let origin = Location::file(path);
    let file = ScenarioFile::parse(text, &origin)?;
    file.resolve(path, opts)
}

impl ScenarioFile {
    /// Parses the file's JSON (comments allowed) without reading anything it refers to;
    /// `origin` names it in errors.
    pub fn parse(text: &str, origin: &Location) -> Result<ScenarioFile> {
        let text = super::strip_json_comments(text);
        let mut de = serde_json::Deserializer::from_str(&text);
        let file: ScenarioFile = serde_path_to_error::deserialize(&mut de).map_err(|e| json_error(origin, e))?;
        de.end().map_err(|e| TraceError::invalid(origin.clone().line(e.line() as u64), json_message(&e)))?;
        Ok(file)
    }

    /// Resolves the file into a scenario: reads the device and traces it names (relative to
    /// `path`'s folder), fills defaults from `opts`, and checks everything. Errors name `path`
    /// and the field (`clients[1].arrival.rate`).
    pub fn resolve(&self, path: &Path, opts: &LoadOptions) -> Result<Scenario> {
        let origin = Location::file(path);
        let at = |field: &str| origin.clone().field(field);
        let base = base_dir(path);

        let name = match &self.name {
            Some(n) if n.trim().is_empty() => {
                return Err(TraceError::invalid(at("name"), "the name is empty"));
            }
            Some(n) => n.clone(),
            None => origin_stem(&origin).unwrap_or_else(|| "scenario".into()),
        };
        let (device, device_source) = match &self.device {
            None => (opts.device.clone(), opts.device_source.clone()),
            Some(DeviceRef::Preset(p)) => {
                let d = DeviceSpec::preset(p).map_err(|e| TraceError::invalid(at("device"), e.to_string()))?;
                let source = format!("builtin:{}", d.name);
                (d, source)
            }
            Some(DeviceRef::File(f)) => {
                let p = existing(&base, f, &at("device.file"), "device file")?;
                (DeviceSpec::from_file(&p)?, p.display().to_string())
            }
        };
        if self.duration_ns == Some(0) {
            return Err(TraceError::invalid(at("duration"), "the duration must be positive"));
        }
        if self.requests == Some(0) {
            return Err(TraceError::invalid(at("requests"), "the request count must be at least 1"));
        }
        let stop = if self.duration_ns.is_none() && self.requests.is_none() {
            Stop::DEFAULT
        } else {
            Stop { duration_ns: self.duration_ns, requests: self.requests }
        };
        if self.clients.is_empty() {
            return Err(TraceError::invalid(at("clients"), "the scenario has no clients"));
        }

        let mut cache = TraceCache::default();
        let mut clients = Vec::with_capacity(self.clients.len());
        let mut hp: Option<usize> = None;
        for (i, entry) in self.clients.iter().enumerate() {
            let spec = ClientResolver { index: i, origin: &origin, base: &base, device: &device }
                .resolve(entry, &mut cache)?;
            if spec.role == Role::Hp {
                if let Some(first) = hp {
                    return Err(TraceError::invalid(
                        at(&format!("clients[{i}].role")),
                        format!("clients[{first}] is already high-priority; at most one client may be"),
                    ));
                }
                hp = Some(i);
            }
            clients.push(spec);
        }
        name_clients(&self.clients, &mut clients, &origin)?;

        let scenario = Scenario {
            name,
            clients,
            device,
            device_source,
            seed: self.seed.unwrap_or(opts.seed),
            stop,
            warmup: self.warmup.unwrap_or(opts.warmup),
            policy: self.policy.clone(),
            policy_params: self.policy_params.clone(),
        };
        validated(scenario, &origin)
    }
}

/// Gives clients without a `name` their default (model or trace name, with the client's index
/// appended where two would clash) and checks that names are unique.
fn name_clients(entries: &[ClientEntry], clients: &mut [ClientSpec], origin: &Location) -> Result<()> {
    for (i, e) in entries.iter().enumerate() {
        if let Some(n) = &e.name {
            if n.trim().is_empty() {
                return Err(TraceError::invalid(
                    origin.clone().field(format!("clients[{i}].name")),
                    "the name is empty",
                ));
            }
            if let Some(j) = entries[..i].iter().position(|o| o.name.as_ref() == Some(n)) {
                return Err(TraceError::invalid(
                    origin.clone().field(format!("clients[{i}].name")),
                    format!("`{n}` is also the name of clients[{j}]"),
                ));
            }
        }
    }
    let defaults: Vec<String> = clients.iter().map(|c| c.name.clone()).collect();
    for (i, (e, c)) in entries.iter().zip(clients.iter_mut()).enumerate() {
        if e.name.is_some() {
            continue;
        }
        let clash = defaults.iter().enumerate().any(|(j, d)| j != i && *d == defaults[i])
            || entries.iter().any(|o| o.name.as_deref() == Some(&defaults[i]));
        if clash {
            c.name = format!("{}_{i}", defaults[i]);
        }
    }
    Ok(())
}

struct ClientResolver<'a> {
    index: usize,
    origin: &'a Location,
    base: &'a Path,
    device: &'a DeviceSpec,
}

impl ClientResolver<'_> {
    fn at(&self, field: &str) -> Location {
        let path = if field.is_empty() {
            format!("clients[{}]", self.index)
        } else {
            format!("clients[{}].{field}", self.index)
        };
        self.origin.clone().field(path)
    }

    fn err(&self, field: &str, message: impl Into<String>) -> TraceError {
        TraceError::invalid(self.at(field), message)
    }

    fn read(&self, field: &str, raw: &str, cache: &mut TraceCache) -> Result<Trace> {
        let path = existing(self.base, raw, &self.at(field), "trace file")?;
        cache.get(&path)
    }

    /// The client's spec; its `name` is the default one when the entry has none.
    fn resolve(&self, e: &ClientEntry, cache: &mut TraceCache) -> Result<ClientSpec> {
        let (trace, kind, default_name) = match (&e.model, &e.trace) {
            (Some(_), Some(_)) => {
                return Err(self.err("", "give either `model` or `trace`, not both"));
            }
            (None, None) => {
                return Err(self.err("", "give `model` (a built-in model) or `trace` (a trace file)"));
            }
            (Some(m), None) => {
                let model = Model::from_str(m).map_err(|err| self.err("model", err.to_string()))?;
                let Some(kind) = e.mode else {
                    return Err(self.err("mode", "missing: say `inference` or `training`"));
                };
                let batch = e.batch.unwrap_or_else(|| model.default_batch(kind));
                if batch == 0 {
                    return Err(self.err("batch", "the batch size must be at least 1"));
                }
                let trace = crate::builtin::builtin_trace(model, kind, batch, self.device);
                (trace, kind, model.to_string())
            }
            (None, Some(t)) => {
                if e.batch.is_some() {
                    return Err(self.err("batch", "`batch` applies to `model` only: a trace file fixes its batch size"));
                }
                let trace = self.read("trace", t, cache)?;
                let kind = match (e.mode, trace.meta.mode) {
                    (Some(k), Some(m)) if k != m => {
                        return Err(self.err("mode", format!("is {k}, but trace `{t}` is a {m} trace")));
                    }
                    (Some(k), _) | (None, Some(k)) => k,
                    (None, None) => {
                        return Err(self.err(
                            "mode",
                            format!(
                                "missing, and trace `{t}` does not say: say `inference` or \
                                 `training`"
                            ),
                        ));
                    }
                };
                let name = trace.meta.name.clone();
                (trace, kind, name)
            }
        };
        let first_trace = match &e.first_trace {
            Some(f) => Some(Arc::new(self.read("first_trace", f, cache)?)),
            None => None,
        };
        let arrival = self.arrival(e.arrival.as_ref(), kind)?;
        if e.max_requests == Some(0) {
            return Err(self.err("max_requests", "must be at least 1"));
        }
        Ok(ClientSpec {
            name: e.name.clone().unwrap_or(default_name),
            role: e.role.unwrap_or(Role::Be),
            kind,
            trace: Arc::new(trace),
            first_trace,
            arrival,
            max_requests: e.max_requests,
        })
    }

    fn arrival(&self, entry: Option<&ArrivalEntry>, kind: WorkKind) -> Result<ArrivalProcess> {
        let Some(a) = entry else {
            return match kind {
                WorkKind::Training => Ok(ArrivalProcess::ClosedLoop),
                WorkKind::Inference => Err(self.err(
                    "arrival",
                    "an inference client needs an arrival process, e.g. \
                     {\"type\": \"poisson\", \"rate\": 15} or {\"type\": \"closed_loop\"}",
                )),
            };
        };
        let t = a.kind.as_str();
        let unused = |field: &str, present: bool| -> Result<()> {
            if present {
                Err(self.err(&format!("arrival.{field}"), format!("not used by a `{t}` arrival")))
            } else {
                Ok(())
            }
        };
        let mut file_field = None;
        let process = match a.kind {
            ArrivalKind::Poisson | ArrivalKind::Uniform => {
                unused("file", a.file.is_some())?;
                unused("inter_arrival_s", a.inter_arrival_s.is_some())?;
                let Some(rate) = a.rate else {
                    return Err(self
                        .err("arrival.rate", format!("missing: a `{t}` arrival needs a rate in requests per second")));
                };
                if a.kind == ArrivalKind::Poisson {
                    ArrivalProcess::Poisson { rate }
                } else {
                    ArrivalProcess::Uniform { rate }
                }
            }
            ArrivalKind::Trace => {
                unused("rate", a.rate.is_some())?;
                match (&a.file, &a.inter_arrival_s) {
                    (Some(_), Some(_)) => {
                        return Err(self.err("arrival", "give either `file` or `inter_arrival_s`, not both"));
                    }
                    (None, None) => {
                        return Err(self.err("arrival", "a `trace` arrival needs `file` or `inter_arrival_s`"));
                    }
                    (Some(f), None) => {
                        let path = existing(self.base, f, &self.at("arrival.file"), "inter-arrival file")?;
                        file_field = Some("arrival.file");
                        ArrivalProcess::Trace { inter_arrival_s: read_inter_arrival_file(&path)? }
                    }
                    (None, Some(v)) => ArrivalProcess::Trace { inter_arrival_s: v.clone() },
                }
            }
            ArrivalKind::ClosedLoop => {
                unused("rate", a.rate.is_some())?;
                unused("file", a.file.is_some())?;
                unused("inter_arrival_s", a.inter_arrival_s.is_some())?;
                ArrivalProcess::ClosedLoop
            }
        };
        process.validate().map_err(|(field, msg)| {
            let f = file_field.map(str::to_string).unwrap_or_else(|| format!("arrival.{field}"));
            self.err(&f, msg)
        })?;
        if kind == WorkKind::Training && process.is_open_loop() {
            return Err(self.err("arrival", format!("a training client runs closed loop, not {process}")));
        }
        Ok(process)
    }
}

impl Serialize for DeviceRef {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            DeviceRef::Preset(p) => s.serialize_str(p),
            DeviceRef::File(f) => {
                let mut m = BTreeMap::new();
                m.insert("file", f);
                m.serialize(s)
            }
        }
    }
}

impl<'de> Deserialize<'de> for DeviceRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DeviceRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a device preset name (v100, a100, h100) or {\"file\": \"path\"}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<DeviceRef, E> {
                Ok(DeviceRef::Preset(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<DeviceRef, A::Error> {
                let mut file = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key != "file" {
                        return Err(de::Error::unknown_field(&key, &["file"]));
                    }
                    if file.is_some() {
                        return Err(de::Error::duplicate_field("file"));
                    }
                    file = Some(map.next_value::<String>()?);
                }
                file.map(DeviceRef::File).ok_or_else(|| de::Error::missing_field("file"))
            }
        }
        d.deserialize_any(V)
    }
}

fn ser_duration<S: Serializer>(ns: &Option<u64>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match ns {
        None => s.serialize_none(),
        Some(ns) => {
            let text = [(1_000_000_000, "s"), (1_000_000, "ms"), (1_000, "us")]
                .iter()
                .find(|(scale, _)| ns % scale == 0)
                .map(|(scale, unit)| format!("{}{unit}", ns / scale))
                .unwrap_or_else(|| format!("{ns}ns"));
            s.serialize_str(&text)
        }
    }
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u64>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as \"30s\" or \"500ms\", or a number of seconds")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<u64, E> {
            parse_duration_ns(v, "s").map_err(E::custom)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<u64, E> {
            parse_duration_ns(&v.to_string(), "s").map_err(E::custom)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<u64, E> {
            parse_duration_ns(&v.to_string(), "s").map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<u64, E> {
            parse_duration_ns(&v.to_string(), "s").map_err(E::custom)
        }
    }
    d.deserialize_any(V).map(Some)
}
