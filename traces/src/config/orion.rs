//! Orion's experiment `config.json` (eth-easl/orion, `benchmarking/`): a JSON list of
//! clients, the last of which is the high-priority one.
//!
//! ```json
//! [{"arch": "resnet50", "kernel_file": "model_kernels/resnet50_32_fb0",
//!   "additional_kernel_file": "model_kernels/resnet50_32_fb1",
//!   "num_kernels": 624, "additional_num_kernels": 946, "num_iters": 1200000,
//!   "args": {"model_name": "resnet50", "batchsize": 32, "rps": 0, "uniform": false,
//!            "dummy_data": true, "train": true}},
//!  {"arch": "mobilenet_v2", "kernel_file": "model_kernels/mobilenetv2_4_fwd",
//!   "num_kernels": 152, "num_iters": 12000,
//!   "args": {"model_name": "mobilenet_v2", "batchsize": 4, "rps": 40, "uniform": false,
//!            "dummy_data": true, "train": false}}]
//! ```
//!
//! * `arch` names one of the built-in models; `kernel_file` is the profile of the first
//!   iteration and `additional_kernel_file` (optional) that of every later one, so the steady
//!   state is the additional file when there is one. `num_kernels` and
//!   `additional_num_kernels` must match the files' kernel counts.
//! * `num_iters` bounds each client's requests (warm-up included). The run ends when the HP
//!   client has completed its `num_iters`: the scenario stops after `num_iters - warmup`
//!   measured HP requests.
//! * `args.train` makes a closed-loop training client. An inference client's arrivals come
//!   from `args.input_file` (a JSON list of inter-arrival seconds) when it is non-empty, else
//!   from `args.rps`: uniform at that rate when `args.uniform`, Poisson otherwise, closed loop
//!   at 0.
//! * Keys this reader does not use are ignored (Orion's files carry extra ones). Relative paths
//!   are taken from the config file's folder; Orion's own configs name absolute paths of the
//!   machine they ran on, which have to be edited to point at local copies.

use super::{LoadOptions, TraceCache, base_dir, existing, read_inter_arrival_file, validated};
use crate::arrival::ArrivalProcess;
use crate::error::{Location, Result, TraceError};
use crate::format::json_error;
use crate::scenario::{ClientSpec, Scenario, Stop};
use crate::trace::Trace;
use crate::workload::{Model, Role, WorkKind};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

/// One client of Orion's config, as written (fields this reader ignores left out).
#[derive(Debug, Deserialize)]
struct RawClient {
    arch: String,
    kernel_file: String,
    #[serde(default)]
    additional_kernel_file: Option<String>,
    num_kernels: u64,
    #[serde(default)]
    additional_num_kernels: Option<u64>,
    num_iters: u64,
    args: RawArgs,
}

/// The `args` of a client (passed to the model script in Orion).
#[derive(Debug, Deserialize)]
struct RawArgs {
    #[serde(default)]
    batchsize: Option<u32>,
    #[serde(default)]
    rps: Option<f64>,
    #[serde(default)]
    uniform: bool,
    train: bool,
    #[serde(default)]
    input_file: Option<String>,
}

/// Reads Orion's `config.json` into a scenario named after the file's stem.
pub fn load_orion_config(path: &Path, opts: &LoadOptions) -> Result<Scenario> {
    let text = std::fs::read_to_string(path).map_err(|e| TraceError::io(path, e))?;
    parse_orion_config(&text, path, opts)
}

/// Parses Orion's config from text; `path` names it in errors and anchors relative paths.
pub fn parse_orion_config(text: &str, path: &Path, opts: &LoadOptions) -> Result<Scenario> {
    let origin = Location::file(path);
    let text = super::strip_json_comments(text);
    let mut de = serde_json::Deserializer::from_str(&text);
    let raw: Vec<RawClient> = serde_path_to_error::deserialize(&mut de).map_err(|e| json_error(&origin, e))?;
    de.end().map_err(|e| TraceError::invalid(origin.clone().line(e.line() as u64), crate::format::json_message(&e)))?;
    if raw.is_empty() {
        return Err(TraceError::invalid(origin, "the config lists no clients"));
    }

    let base = base_dir(path);
    let mut cache = TraceCache::default();
    let n = raw.len();
    let mut clients = Vec::with_capacity(n);
    for (i, c) in raw.iter().enumerate() {
        let role = if i + 1 == n { Role::Hp } else { Role::Be };
        clients.push(client(i, c, role, &raw, &base, &origin, &mut cache)?);
    }

    let hp = &raw[n - 1];
    let warmup = opts.warmup as u64;
    if hp.num_iters <= warmup {
        return Err(TraceError::invalid(
            origin.field(format!("[{}].num_iters", n - 1)),
            format!(
                "the high-priority client's num_iters ({}) must exceed the {warmup} warm-up \
                 requests: the run ends when it completes them",
                hp.num_iters
            ),
        ));
    }
    let scenario = Scenario {
        name: crate::format::origin_stem(&origin).unwrap_or_else(|| "orion".into()),
        clients,
        device: opts.device.clone(),
        device_source: opts.device_source.clone(),
        seed: opts.seed,
        stop: Stop { duration_ns: None, requests: Some(hp.num_iters - warmup) },
        warmup: opts.warmup,
        policy: None,
        policy_params: BTreeMap::new(),
    };
    validated(scenario, &origin)
}

/// Resolves client `i` of the config.
fn client(
    i: usize,
    c: &RawClient,
    role: Role,
    all: &[RawClient],
    base: &Path,
    origin: &Location,
    cache: &mut TraceCache,
) -> Result<ClientSpec> {
    let at = |field: &str| origin.clone().field(format!("[{i}].{field}"));
    let model = Model::from_str(&c.arch).map_err(|e| TraceError::invalid(at("arch"), e.to_string()))?;
    let label = format!("client {i} ({})", c.arch);
    let kind = if c.args.train { WorkKind::Training } else { WorkKind::Inference };
    if let Some(rps) = c.args.rps
        && !(rps.is_finite() && rps >= 0.0)
    {
        return Err(TraceError::invalid(
            at("args.rps"),
            format!("{label}: rps is {rps}; it must be a non-negative number of requests per second"),
        ));
    }
    if c.num_iters == 0 {
        return Err(TraceError::invalid(at("num_iters"), format!("{label}: num_iters must be at least 1")));
    }

    let first = kernel_file(&c.kernel_file, "kernel_file", c.num_kernels, "num_kernels", &label, base, &at, cache)?;
    let additional = match c.additional_kernel_file.as_deref().map(str::trim) {
        Some(file) if !file.is_empty() => {
            let Some(count) = c.additional_num_kernels else {
                return Err(TraceError::invalid(
                    at("additional_num_kernels"),
                    format!("{label}: missing; Orion needs it with `additional_kernel_file`"),
                ));
            };
            Some(kernel_file(
                file,
                "additional_kernel_file",
                count,
                "additional_num_kernels",
                &label,
                base,
                &at,
                cache,
            )?)
        }
        _ => None,
    };
    let enrich = |mut t: Trace| {
        t.meta.model.get_or_insert_with(|| model.to_string());
        if t.meta.batch_size.is_none() {
            t.meta.batch_size = c.args.batchsize;
        }
        t.meta.mode.get_or_insert(kind);
        Arc::new(t)
    };
    let (trace, first_trace) = match additional {
        Some(steady) => (enrich(steady), Some(enrich(first))),
        None => (enrich(first), None),
    };

    let arrival = if c.args.train { ArrivalProcess::ClosedLoop } else { arrival(c, &label, base, &at)? };

    let duplicate = all.iter().filter(|o| o.arch == c.arch).count() > 1;
    let name = if duplicate { format!("{}_{i}", c.arch) } else { c.arch.clone() };
    Ok(ClientSpec { name, role, kind, trace, first_trace, arrival, max_requests: Some(c.num_iters) })
}

/// Reads a kernel file named by `field` and checks its kernel count against `count_field`.
#[allow(clippy::too_many_arguments)]
fn kernel_file(
    raw: &str,
    field: &str,
    count: u64,
    count_field: &str,
    label: &str,
    base: &Path,
    at: &dyn Fn(&str) -> Location,
    cache: &mut TraceCache,
) -> Result<Trace> {
    let path = existing(base, raw, &at(field), &format!("{label}: kernel file"))?;
    let trace = cache.get(&path)?;
    let kernels = trace.kernel_count() as u64;
    if kernels != count {
        return Err(TraceError::invalid(
            at(count_field),
            format!("{label}: {count_field} is {count} but `{}` has {kernels} kernel rows", path.display()),
        ));
    }
    Ok(trace)
}

/// The arrival process of an inference client, Orion's way: `input_file`, else `rps`.
fn arrival(c: &RawClient, label: &str, base: &Path, at: &dyn Fn(&str) -> Location) -> Result<ArrivalProcess> {
    let input = c.args.input_file.as_deref().map(str::trim).unwrap_or("");
    let (process, field) = if !input.is_empty() {
        let path = existing(base, input, &at("args.input_file"), &format!("{label}: input file"))?;
        let gaps = read_inter_arrival_file(&path)?;
        (ArrivalProcess::Trace { inter_arrival_s: gaps }, "args.input_file")
    } else {
        let Some(rps) = c.args.rps else {
            return Err(TraceError::invalid(
                at("args.rps"),
                format!("{label}: an inference client needs `rps` (0 for closed loop) or `input_file`"),
            ));
        };
        let p = if rps == 0.0 {
            ArrivalProcess::ClosedLoop
        } else if c.args.uniform {
            ArrivalProcess::Uniform { rate: rps }
        } else {
            ArrivalProcess::Poisson { rate: rps }
        };
        (p, "args.rps")
    };
    process.validate().map_err(|(_, msg)| TraceError::invalid(at(field), format!("{label}: {msg}")))?;
    Ok(process)
}
