//! Reading policy parameters from a name -> value map (command line or scenario file), with
//! errors that name the parameter, and a check that no unknown parameter was given.

use crate::policy::PolicyError;
use orion_traces::Scenario;
use orion_traces::units::parse_duration_ns;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Policy parameters as given by the user: name -> JSON value (numbers, strings with units,
/// booleans).
pub type ParamMap = BTreeMap<String, Value>;

/// Parses a `key=value` command-line assignment into a map entry; numbers and booleans become
/// JSON numbers and booleans, anything else a string.
pub fn parse_assignment(text: &str) -> Result<(String, Value), String> {
    let (k, v) =
        text.split_once('=').ok_or_else(|| format!("`{text}` is not a parameter assignment (expected key=value)"))?;
    let key = k.trim().replace('-', "_");
    if key.is_empty() {
        return Err(format!("`{text}`: empty parameter name"));
    }
    let v = v.trim();
    let value = if let Ok(b) = v.parse::<bool>() {
        Value::Bool(b)
    } else if let Ok(n) = v.parse::<f64>() {
        serde_json::Number::from_f64(n).map(Value::Number).unwrap_or_else(|| Value::String(v.into()))
    } else {
        Value::String(v.to_string())
    };
    Ok((key, value))
}

/// A typed reader over a parameter map that remembers which keys it consumed.
pub struct Params<'a> {
    policy: &'static str,
    map: &'a ParamMap,
    known: BTreeSet<&'static str>,
}

impl<'a> Params<'a> {
    /// A reader for `policy`'s parameters.
    pub fn new(policy: &'static str, map: &'a ParamMap) -> Self {
        Params { policy, map, known: BTreeSet::new() }
    }

    fn err(&self, key: &str, message: impl Into<String>) -> PolicyError {
        PolicyError::Param { policy: self.policy.into(), key: key.into(), message: message.into() }
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.known.insert(key);
        self.map.get(key)
    }

    /// A duration; strings take units (`160us`), bare numbers are microseconds.
    pub fn duration_ns(&mut self, key: &'static str) -> Result<Option<u64>, PolicyError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => parse_duration_ns(s, "us").map(Some).map_err(|m| self.err(key, m)),
            Some(Value::Number(n)) => {
                let us = n.as_f64().unwrap_or(f64::NAN);
                if !(us.is_finite() && us >= 0.0) {
                    return Err(self.err(key, format!("{n} is not a non-negative duration")));
                }
                Ok(Some((us * 1e3).round() as u64))
            }
            Some(v) => Err(self.err(key, format!("{v} is not a duration (e.g. \"160us\")"))),
        }
    }

    /// A non-negative integer.
    pub fn uint(&mut self, key: &'static str) -> Result<Option<u64>, PolicyError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(v) => Ok(Some(v)),
                None => match n.as_f64() {
                    Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 9e15 => Ok(Some(f as u64)),
                    _ => Err(self.err(key, format!("{n} is not a non-negative integer"))),
                },
            },
            Some(Value::String(s)) => {
                s.trim().parse().map(Some).map_err(|_| self.err(key, format!("`{s}` is not a non-negative integer")))
            }
            Some(v) => Err(self.err(key, format!("{v} is not a non-negative integer"))),
        }
    }

    /// A boolean.
    pub fn boolean(&mut self, key: &'static str) -> Result<Option<bool>, PolicyError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => {
                s.trim().parse().map(Some).map_err(|_| self.err(key, format!("`{s}` is not true or false")))
            }
            Some(v) => Err(self.err(key, format!("{v} is not true or false"))),
        }
    }

    /// One of a fixed set of words.
    pub fn choice(&mut self, key: &'static str, choices: &[&'static str]) -> Result<Option<&'static str>, PolicyError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => choices
                .iter()
                .find(|c| c.eq_ignore_ascii_case(s.trim()))
                .copied()
                .map(Some)
                .ok_or_else(|| self.err(key, format!("`{s}` is not one of: {}", choices.join(", ")))),
            Some(v) => Err(self.err(key, format!("{v} is not one of: {}", choices.join(", ")))),
        }
    }

    /// Fails if the map holds a key this policy did not read.
    pub fn finish(self) -> Result<(), PolicyError> {
        if let Some(k) = self.map.keys().find(|k| !self.known.contains(k.as_str())) {
            let known: Vec<_> = self.known.iter().copied().collect();
            let expected = if known.is_empty() {
                "this policy takes no parameters".to_string()
            } else {
                format!("known: {}", known.join(", "))
            };
            return Err(self.err(k, format!("not a parameter of this policy ({expected})")));
        }
        Ok(())
    }
}

/// A duration as a report value (microseconds, as a number).
pub fn us_value(ns: u64) -> Value {
    serde_json::json!(ns as f64 / 1e3)
}

/// The policy and parameters a command line picks for `scenario`: `policy`, else the scenario's,
/// else `default`; the scenario's parameters, each overridden by a `key=value` of `assignments`
/// (`-P`). Errors name the option.
pub fn resolve_policy(
    scenario: &Scenario,
    policy: Option<&str>,
    assignments: &[String],
    default: &str,
) -> Result<(String, ParamMap), String> {
    let mut params = scenario.policy_params.clone();
    for a in assignments {
        let (k, v) = parse_assignment(a).map_err(|e| format!("--param: {e}"))?;
        params.insert(k, v);
    }
    let name = policy.or(scenario.policy.as_deref()).unwrap_or(default).to_string();
    Ok((name, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_parse_numbers_bools_strings() {
        assert_eq!(parse_assignment("reef-depth=12").unwrap(), ("reef_depth".into(), serde_json::json!(12.0)));
        assert_eq!(parse_assignment("reset=true").unwrap(), ("reset".into(), Value::Bool(true)));
        assert_eq!(parse_assignment("dur_threshold=160us").unwrap().1, Value::String("160us".into()));
        assert!(parse_assignment("novalue").is_err());
    }

    #[test]
    fn the_command_line_overrides_the_scenario_which_overrides_the_default() {
        let mut s = orion_traces::builtin::workload_scenario(
            "resnet50_bert",
            None,
            orion_traces::DeviceSpec::preset("h100").unwrap(),
            "builtin:h100".into(),
        )
        .unwrap();
        let (name, params) = resolve_policy(&s, None, &[], "orion").unwrap();
        assert_eq!((name.as_str(), params.len()), ("orion", 0));
        s.policy = Some("reef".into());
        s.policy_params.insert("reef_depth".into(), serde_json::json!(4.0));
        s.policy_params.insert("round".into(), Value::String("1ms".into()));
        let (name, params) = resolve_policy(&s, None, &["reef-depth=8".into()], "orion").unwrap();
        assert_eq!(name, "reef");
        assert_eq!(params["reef_depth"], serde_json::json!(8.0));
        assert_eq!(params["round"], Value::String("1ms".into()));
        assert_eq!(resolve_policy(&s, Some("streams"), &[], "orion").unwrap().0, "streams");
        let e = resolve_policy(&s, None, &["novalue".into()], "orion").unwrap_err();
        assert!(e.starts_with("--param:") && e.contains("novalue"), "{e}");
    }

    #[test]
    fn unknown_key_is_reported() {
        let mut m = ParamMap::new();
        m.insert("bogus".into(), Value::Bool(true));
        let mut p = Params::new("orion", &m);
        p.uint("sm_threshold").unwrap();
        let e = p.finish().unwrap_err().to_string();
        assert!(e.contains("bogus") && e.contains("sm_threshold"), "{e}");
    }

    #[test]
    fn durations_take_units_or_microseconds() {
        let mut m = ParamMap::new();
        m.insert("a".into(), Value::String("2.5ms".into()));
        m.insert("b".into(), serde_json::json!(160));
        let mut p = Params::new("x", &m);
        assert_eq!(p.duration_ns("a").unwrap(), Some(2_500_000));
        assert_eq!(p.duration_ns("b").unwrap(), Some(160_000));
    }
}
