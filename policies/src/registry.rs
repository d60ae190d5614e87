//! Policy names -> constructors, so that no backend ever names a policy type.

use crate::ideal::Ideal;
use crate::orion::Orion;
use crate::params::{ParamMap, Params};
use crate::policy::{Policy, PolicyError};
use crate::priority_streams::PriorityStreams;
use crate::reef::Reef;
use crate::streams::Streams;
use crate::temporal::Temporal;

/// A constructor from parameters.
type Constructor = fn(&ParamMap) -> Result<Box<dyn Policy>, PolicyError>;

/// One registered policy.
struct Entry {
    name: &'static str,
    summary: &'static str,
    build: Constructor,
}

const ENTRIES: &[Entry] = &[
    Entry {
        name: "ideal",
        summary: "each client alone on a dedicated GPU (the reference)",
        build: |m| {
            Params::new("ideal", m).finish()?;
            Ok(Box::new(Ideal))
        },
    },
    Entry {
        name: "temporal",
        summary: "time-slicing: one request or iteration at a time owns the GPU",
        build: |m| {
            Params::new("temporal", m).finish()?;
            Ok(Box::new(Temporal::default()))
        },
    },
    Entry {
        name: "streams",
        summary: "every op submitted at once on equal-priority streams",
        build: |m| {
            Params::new("streams", m).finish()?;
            Ok(Box::new(Streams::equal_priority()))
        },
    },
    Entry {
        name: "mps",
        summary: "as streams, one process per client under MPS (same model in the simulator)",
        build: |m| {
            Params::new("mps", m).finish()?;
            Ok(Box::new(Streams::mps()))
        },
    },
    Entry {
        name: "priority-streams",
        summary: "as streams, HP stream at the highest priority",
        build: |m| {
            Params::new("priority-streams", m).finish()?;
            Ok(Box::new(PriorityStreams))
        },
    },
    Entry {
        name: "reef",
        summary: "REEF: BE held while the HP runs, dynamic kernel padding, batched drain (params: reef_depth, padding, reset, round)",
        build: |m| Ok(Box::new(Reef::from_params(m)?)),
    },
    Entry {
        name: "orion",
        summary: "Orion: interference-aware BE admission (params: dur_threshold, sm_threshold, hp_limit, update_start, round)",
        build: |m| Ok(Box::new(Orion::from_params(m)?)),
    },
];

/// Names of all policies, in registry order.
pub fn names() -> Vec<&'static str> {
    ENTRIES.iter().map(|e| e.name).collect()
}

/// `(name, one-line summary)` of every policy.
pub fn summaries() -> Vec<(&'static str, &'static str)> {
    ENTRIES.iter().map(|e| (e.name, e.summary)).collect()
}

/// Builds a policy by name (`priority_streams` and `priority-streams` are the same) with
/// parameters.
pub fn build(name: &str, params: &ParamMap) -> Result<Box<dyn Policy>, PolicyError> {
    let key = name.trim().to_ascii_lowercase().replace('_', "-");
    let entry = ENTRIES
        .iter()
        .find(|e| e.name == key)
        .ok_or_else(|| PolicyError::Unknown { name: name.to_string(), expected: names().join(", ") })?;
    (entry.build)(params)
}
