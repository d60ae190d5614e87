//! The command-line arguments that say which scenario to run, shared by `orion-sim` and
//! `orion-real replay` (flattened into their own arguments with `#[command(flatten)]`), and the
//! one function that turns them into a [`Scenario`], so both backends read a command line the
//! same way.

use crate::arrival::read_inter_arrivals;
use crate::builtin::workload_scenario;
use crate::config::{LoadOptions, load_scenario};
use crate::scenario::DEFAULT_WARMUP;
use crate::units::parse_duration_ns;
use crate::{ArrivalProcess, DeviceSpec, Scenario, Stop, WorkKind};
use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};

/// Which scenario to run: a scenario file or a built-in workload, the device, the seed, how
/// long, and the HP's arrivals.
#[derive(Debug, Clone, clap::Args)]
pub struct ScenarioArgs {
    /// Scenario file: Orion's config.json (a list of clients, the last one high-priority) or an
    /// orion-rs scenario (JSON object).
    pub config: Option<PathBuf>,
    /// Built-in workload: a pair HP_BE such as resnet50_bert (HP = first model, inference; BE =
    /// second model, training), a single model name, or a trace file.
    #[arg(long, short, conflicts_with = "config")]
    pub trace: Option<String>,
    /// Mode of a single-model or trace-file workload: inference or training.
    #[arg(long, value_parser = parse_mode)]
    pub mode: Option<WorkKind>,
    /// Device preset (v100, a100, h100) [default: the scenario file's, else h100].
    #[arg(long, conflicts_with = "device_file")]
    pub device: Option<String>,
    /// Device description file (JSON, see traces/devices/).
    #[arg(long)]
    pub device_file: Option<PathBuf>,
    /// Seed of every random choice [default: the scenario file's, else 1].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Length of the run (simulated time, or wall time on the GPU), e.g. 30s, 2min (default: the
    /// scenario file's, else 20s, unless --requests is given).
    #[arg(long, conflicts_with = "requests")]
    pub duration: Option<String>,
    /// Stop after the HP client completes this many measured requests.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Warm-up requests per client excluded from statistics (default 10).
    #[arg(long)]
    pub warmup: Option<u32>,
    /// HP arrival rate in requests/s (overrides the workload's).
    #[arg(long, conflicts_with = "inter_arrivals")]
    pub hp_rate: Option<f64>,
    /// HP arrivals at constant intervals instead of Poisson.
    #[arg(long, conflicts_with = "inter_arrivals")]
    pub uniform: bool,
    /// HP inter-arrival times from a file (seconds, one per line, or a JSON list).
    #[arg(long)]
    pub inter_arrivals: Option<PathBuf>,
}

fn parse_mode(s: &str) -> Result<WorkKind, String> {
    s.parse()
}

/// A device preset, or a device file when one is given; with its source (`builtin:NAME` or the
/// file's path) for reports.
pub fn load_device(preset: &str, file: Option<&Path>) -> Result<(DeviceSpec, String)> {
    match file {
        Some(p) => Ok((DeviceSpec::from_file(p)?, p.display().to_string())),
        None => Ok((DeviceSpec::preset(preset)?, format!("builtin:{}", preset.to_ascii_lowercase()))),
    }
}

impl ScenarioArgs {
    /// The scenario the arguments describe. A scenario file's own settings hold unless the
    /// command line states them explicitly (device, seed, warm-up, length, HP arrivals);
    /// without a file, the built-in workload `--trace` (default `resnet50_bert`).
    pub fn scenario(&self) -> Result<Scenario> {
        let preset = self.device.as_deref().unwrap_or("h100");
        let (device, device_source) = load_device(preset, self.device_file.as_deref())?;
        let explicit_device = self.device.is_some() || self.device_file.is_some();
        let mut scenario = if let Some(path) = &self.config {
            let opts = LoadOptions {
                device,
                device_source,
                seed: self.seed.unwrap_or(1),
                warmup: self.warmup.unwrap_or(DEFAULT_WARMUP),
            };
            let mut s = load_scenario(path, &opts).with_context(|| format!("loading {}", path.display()))?;
            // What the command line states explicitly wins over the file.
            if explicit_device {
                s.device = opts.device;
                s.device_source = opts.device_source;
            }
            if let Some(seed) = self.seed {
                s.seed = seed;
            }
            if let Some(w) = self.warmup {
                s.warmup = w;
            }
            s
        } else {
            let name = self.trace.as_deref().unwrap_or("resnet50_bert");
            let mut s = workload_scenario(name, self.mode, device, device_source)?;
            s.seed = self.seed.unwrap_or(s.seed);
            s.warmup = self.warmup.unwrap_or(s.warmup);
            s
        };
        if let Some(d) = &self.duration {
            let ns = parse_duration_ns(d, "s").map_err(|e| anyhow!("--duration: {e}"))?;
            if ns == 0 {
                bail!("--duration: must be positive");
            }
            scenario.stop = Stop { duration_ns: Some(ns), requests: None };
        } else if let Some(n) = self.requests {
            if n == 0 {
                bail!("--requests: must be at least 1");
            }
            scenario.stop = Stop { duration_ns: None, requests: Some(n) };
        }
        let hp_arrival = if let Some(path) = &self.inter_arrivals {
            Some(ArrivalProcess::Trace { inter_arrival_s: read_inter_arrivals(path)? })
        } else {
            let rate = match self.hp_rate {
                Some(r) => Some(r),
                None if self.uniform => {
                    let h = scenario.hp_client();
                    let rate = h.and_then(|h| scenario.clients[h].arrival.mean_rate());
                    Some(rate.ok_or_else(|| {
                        anyhow!("--uniform: the HP's arrivals have no rate to space evenly (give --hp-rate)")
                    })?)
                }
                None => None,
            };
            rate.map(
                |rate| if self.uniform { ArrivalProcess::Uniform { rate } } else { ArrivalProcess::Poisson { rate } },
            )
        };
        if let Some(arrival) = hp_arrival {
            arrival.validate().map_err(|(f, m)| anyhow!("HP arrival {f}: {m}"))?;
            let h = scenario.hp_client().ok_or_else(|| anyhow!("the workload has no HP client to set the rate of"))?;
            if scenario.clients[h].kind == WorkKind::Training {
                bail!("the HP client trains (closed loop); an arrival rate applies to inference only");
            }
            scenario.clients[h].arrival = arrival;
        }
        Ok(scenario)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        s: ScenarioArgs,
    }

    fn args(a: &[&str]) -> Result<ScenarioArgs, clap::Error> {
        Cmd::try_parse_from(std::iter::once("t").chain(a.iter().copied())).map(|c| c.s)
    }

    fn file() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        std::fs::write(
            &path,
            r#"{"device": "v100", "seed": 42, "clients": [
                {"name": "hp", "role": "hp", "model": "resnet50", "mode": "inference",
                 "arrival": {"type": "trace", "inter_arrival_s": [0.01, 0.02]}}]}"#,
        )
        .unwrap();
        let p = path.to_string_lossy().into_owned();
        (dir, p)
    }

    #[test]
    fn the_file_holds_unless_the_command_line_says_otherwise_even_with_default_values() {
        let (_d, f) = file();
        let s = args(&[&f]).unwrap().scenario().unwrap();
        assert_eq!((s.seed, s.device.name.as_str()), (42, "v100"));
        // `--seed 1` and `--device h100` are the defaults, and explicit: they win.
        let s = args(&[&f, "--seed", "1", "--device", "h100"]).unwrap().scenario().unwrap();
        assert_eq!((s.seed, s.device.name.as_str(), s.device_source.as_str()), (1, "h100", "builtin:h100"));
        // Without a file: the defaults.
        let s = args(&["--trace", "resnet50_bert"]).unwrap().scenario().unwrap();
        assert_eq!((s.seed, s.device.name.as_str()), (1, "h100"));
    }

    #[test]
    fn arrival_options_that_cannot_apply_are_refused() {
        let (_d, f) = file();
        // Inter-arrival times from the file: --uniform spaces their mean rate evenly.
        let s = args(&[&f, "--uniform"]).unwrap().scenario().unwrap();
        assert!(matches!(s.clients[0].arrival, ArrivalProcess::Uniform { rate } if (rate - 1.0 / 0.015).abs() < 1e-9));
        let s = args(&[&f, "--uniform", "--hp-rate", "20"]).unwrap().scenario().unwrap();
        assert_eq!(s.clients[0].arrival, ArrivalProcess::Uniform { rate: 20.0 });
        // A training HP runs closed loop: no rate to space.
        let dir = tempfile::tempdir().unwrap();
        let train = dir.path().join("t.json");
        std::fs::write(&train, r#"{"clients": [{"role": "hp", "model": "resnet50", "mode": "training"}]}"#).unwrap();
        match args(&[train.to_str().unwrap(), "--uniform"]).unwrap().scenario() {
            Ok(_) => panic!("--uniform on a closed-loop HP was accepted"),
            Err(e) => assert!(e.to_string().contains("--uniform"), "{e}"),
        }
        // Inter-arrival times and a rate contradict each other.
        assert!(args(&["--inter-arrivals", "x.txt", "--hp-rate", "5"]).is_err());
        assert!(args(&["--inter-arrivals", "x.txt", "--uniform"]).is_err());
    }
}
