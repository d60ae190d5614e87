//! Arrival processes of inference requests, and seeded generators of arrival times.

use crate::error::{Location, Result, TraceError};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// How a client's requests arrive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ArrivalProcess {
    /// Open loop, exponential inter-arrival times at `rate` requests per second.
    Poisson {
        /// Mean requests per second.
        rate: f64,
    },
    /// Open loop, a constant interval of `1 / rate` seconds.
    Uniform {
        /// Requests per second.
        rate: f64,
    },
    /// Open loop, inter-arrival times (seconds) from a list, repeated when exhausted.
    Trace {
        /// Inter-arrival times in seconds.
        inter_arrival_s: Vec<f64>,
    },
    /// The next request (or training iteration) starts as soon as the previous one finishes.
    ClosedLoop,
}

impl ArrivalProcess {
    /// Checks rates and intervals; the error names the offending field.
    pub fn validate(&self) -> std::result::Result<(), (&'static str, String)> {
        match self {
            ArrivalProcess::Poisson { rate } | ArrivalProcess::Uniform { rate } => {
                if !(rate.is_finite() && *rate > 0.0) {
                    return Err(("rate", format!("must be a positive number of requests per second, got {rate}")));
                }
            }
            ArrivalProcess::Trace { inter_arrival_s } => {
                if inter_arrival_s.is_empty() {
                    return Err(("inter_arrival_s", "the list of inter-arrival times is empty".into()));
                }
                if let Some((i, v)) = inter_arrival_s.iter().enumerate().find(|(_, v)| !(v.is_finite() && **v >= 0.0)) {
                    return Err(("inter_arrival_s", format!("entry {i} is {v}, not a non-negative number of seconds")));
                }
                if inter_arrival_s.iter().all(|v| *v == 0.0) {
                    return Err(("inter_arrival_s", "all inter-arrival times are zero".into()));
                }
            }
            ArrivalProcess::ClosedLoop => {}
        }
        Ok(())
    }

    /// Whether requests arrive open loop (queueing counts in the latency).
    pub fn is_open_loop(&self) -> bool {
        !matches!(self, ArrivalProcess::ClosedLoop)
    }

    /// Mean arrival rate in requests per second (`None` for closed loop).
    pub fn mean_rate(&self) -> Option<f64> {
        match self {
            ArrivalProcess::Poisson { rate } | ArrivalProcess::Uniform { rate } => Some(*rate),
            ArrivalProcess::Trace { inter_arrival_s } => {
                let total: f64 = inter_arrival_s.iter().sum();
                Some(inter_arrival_s.len() as f64 / total)
            }
            ArrivalProcess::ClosedLoop => None,
        }
    }

    /// A seeded generator of arrival times for client `client` (each client gets its own
    /// independent stream of the same seed).
    pub fn generator(&self, seed: u64, client: u64) -> Arrivals {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(client);
        Arrivals { process: self.clone(), rng, clock_ns: 0.0, index: 0 }
    }
}

impl fmt::Display for ArrivalProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArrivalProcess::Poisson { rate } => write!(f, "poisson({rate}/s)"),
            ArrivalProcess::Uniform { rate } => write!(f, "uniform({rate}/s)"),
            ArrivalProcess::Trace { inter_arrival_s } => {
                write!(f, "trace({} gaps, mean {:.1}/s)", inter_arrival_s.len(), self.mean_rate().unwrap_or(0.0))
            }
            ArrivalProcess::ClosedLoop => f.write_str("closed-loop"),
        }
    }
}

/// A stream of arrival times (nanoseconds from the start of the run).
#[derive(Debug, Clone)]
pub struct Arrivals {
    process: ArrivalProcess,
    rng: ChaCha8Rng,
    clock_ns: f64,
    index: usize,
}

impl Arrivals {
    /// The time of the next arrival, or `None` for a closed-loop process (the caller starts the
    /// next request when the previous one ends).
    pub fn next_ns(&mut self) -> Option<u64> {
        let gap_s = match &self.process {
            ArrivalProcess::Poisson { rate } => {
                let exp = Exp::new(*rate).expect("rate validated positive");
                exp.sample(&mut self.rng)
            }
            ArrivalProcess::Uniform { rate } => 1.0 / rate,
            ArrivalProcess::Trace { inter_arrival_s } => {
                let g = inter_arrival_s[self.index % inter_arrival_s.len()];
                self.index += 1;
                g
            }
            ArrivalProcess::ClosedLoop => return None,
        };
        self.clock_ns += gap_s * 1e9;
        Some(self.clock_ns.round() as u64)
    }

    /// A uniform random number in [0, 1) from this stream (for jitter the caller may need).
    pub fn uniform(&mut self) -> f64 {
        self.rng.random::<f64>()
    }
}

/// Reads inter-arrival times in seconds, one per line (blank lines and `#` comments ignored;
/// a CSV line's first column is used).
pub fn read_inter_arrivals(path: &Path) -> Result<Vec<f64>> {
    let text = std::fs::read_to_string(path).map_err(|e| TraceError::io(path, e))?;
    parse_inter_arrivals(&text, Location::file(path))
}

/// Parses inter-arrival times from text; `origin` names the source in errors.
pub fn parse_inter_arrivals(text: &str, origin: Location) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let first = line.split([',', ' ', '\t']).next().unwrap_or("");
        let v: f64 = first.parse().map_err(|_| {
            TraceError::invalid(
                origin.clone().line(i as u64 + 1).field("inter_arrival_s"),
                format!("`{first}` is not a number of seconds"),
            )
        })?;
        if !(v.is_finite() && v >= 0.0) {
            return Err(TraceError::invalid(
                origin.clone().line(i as u64 + 1).field("inter_arrival_s"),
                format!("{v} is not a non-negative number of seconds"),
            ));
        }
        out.push(v);
    }
    if out.is_empty() {
        return Err(TraceError::invalid(origin.field("inter_arrival_s"), "no inter-arrival times in the file"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_mean_rate_matches() {
        let mut g = ArrivalProcess::Poisson { rate: 100.0 }.generator(7, 0);
        let mut last = 0;
        for _ in 0..20_000 {
            last = g.next_ns().unwrap();
        }
        let rate = 20_000.0 / (last as f64 / 1e9);
        assert!((rate - 100.0).abs() < 3.0, "measured rate {rate}");
    }

    #[test]
    fn same_seed_same_times_different_clients_differ() {
        let p = ArrivalProcess::Poisson { rate: 15.0 };
        let a: Vec<_> = (0..5)
            .map({
                let mut g = p.generator(1, 0);
                move |_| g.next_ns()
            })
            .collect();
        let b: Vec<_> = (0..5)
            .map({
                let mut g = p.generator(1, 0);
                move |_| g.next_ns()
            })
            .collect();
        let c: Vec<_> = (0..5)
            .map({
                let mut g = p.generator(1, 1);
                move |_| g.next_ns()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn uniform_is_constant_interval() {
        let mut g = ArrivalProcess::Uniform { rate: 4.0 }.generator(0, 0);
        assert_eq!(g.next_ns(), Some(250_000_000));
        assert_eq!(g.next_ns(), Some(500_000_000));
    }

    #[test]
    fn trace_repeats_when_exhausted() {
        let mut g = ArrivalProcess::Trace { inter_arrival_s: vec![0.001, 0.002] }.generator(0, 0);
        let t: Vec<_> = (0..4).map(|_| g.next_ns().unwrap()).collect();
        assert_eq!(t, vec![1_000_000, 3_000_000, 4_000_000, 6_000_000]);
    }

    #[test]
    fn negative_rate_is_rejected_by_field() {
        let err = ArrivalProcess::Poisson { rate: -1.0 }.validate().unwrap_err();
        assert_eq!(err.0, "rate");
    }

    #[test]
    fn bad_line_in_inter_arrival_file_is_located() {
        let err = parse_inter_arrivals("0.1\n# c\nabc\n", Location::file("gaps.txt")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("gaps.txt") && msg.contains("line 3") && msg.contains("abc"), "{msg}");
    }
}

/// A bursty sequence of `n` inter-arrival times (seconds) with mean rate `mean_rate`: a
/// two-state Markov-modulated Poisson process that alternates between a calm state (mean dwell
/// 2 s) and a burst state (mean dwell 0.5 s) arriving 5x faster. Seeded, so the same seed gives
/// the same trace.
pub fn bursty_inter_arrivals(seed: u64, mean_rate: f64, n: usize) -> Vec<f64> {
    const CALM_DWELL_S: f64 = 2.0;
    const BURST_DWELL_S: f64 = 0.5;
    const BURST_FACTOR: f64 = 5.0;
    // Time-weighted mean rate = calm * (CALM_DWELL + BURST_FACTOR * BURST_DWELL) / (sum of dwells).
    let calm = mean_rate * (CALM_DWELL_S + BURST_DWELL_S) / (CALM_DWELL_S + BURST_FACTOR * BURST_DWELL_S);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(u64::MAX);
    let exp = |rate: f64, rng: &mut ChaCha8Rng| Exp::new(rate).expect("positive rate").sample(rng);
    let mut out = Vec::with_capacity(n);
    let mut burst = false;
    let mut state_left = exp(1.0 / CALM_DWELL_S, &mut rng);
    let mut since_last = 0.0;
    while out.len() < n {
        let rate = if burst { calm * BURST_FACTOR } else { calm };
        let gap = exp(rate, &mut rng);
        if gap <= state_left {
            state_left -= gap;
            out.push(since_last + gap);
            since_last = 0.0;
        } else {
            // The state changes before the next arrival; memorylessness lets us redraw.
            since_last += state_left;
            burst = !burst;
            state_left = exp(1.0 / if burst { BURST_DWELL_S } else { CALM_DWELL_S }, &mut rng);
        }
    }
    out
}

#[cfg(test)]
mod bursty_tests {
    use super::*;

    #[test]
    fn bursty_trace_has_the_mean_rate_and_is_burstier_than_poisson() {
        let gaps = bursty_inter_arrivals(3, 15.0, 20_000);
        let total: f64 = gaps.iter().sum();
        let rate = gaps.len() as f64 / total;
        assert!((rate - 15.0).abs() / 15.0 < 0.1, "rate {rate}");
        // Coefficient of variation of inter-arrival times: 1 for Poisson, above 1 when bursty.
        let mean = total / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        let cv = var.sqrt() / mean;
        assert!(cv > 1.2, "cv {cv}");
        assert_eq!(gaps, bursty_inter_arrivals(3, 15.0, 20_000));
        assert_ne!(gaps[..10], bursty_inter_arrivals(4, 15.0, 10)[..]);
    }
}
