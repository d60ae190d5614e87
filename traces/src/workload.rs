//! Roles, work kinds and the built-in model catalogue (the seed paper's five models).

use crate::error::TraceError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A client's role in the sharing: at most one high-priority client, the rest best-effort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// High priority (usually latency-critical inference).
    Hp,
    /// Best effort.
    Be,
}

impl Role {
    /// `hp` or `be`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Hp => "hp",
            Role::Be => "be",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "hp" | "high" | "high-priority" => Ok(Role::Hp),
            "be" | "best-effort" | "low" => Ok(Role::Be),
            _ => Err(format!("unknown role `{s}` (expected hp or be)")),
        }
    }
}

/// Whether a client serves requests or trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkKind {
    /// Requests arrive by an arrival process; a request is one forward pass.
    Inference,
    /// Iterations back to back: forward, backward, optimizer update.
    Training,
}

impl WorkKind {
    /// `inference` or `training`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkKind::Inference => "inference",
            WorkKind::Training => "training",
        }
    }
}

impl fmt::Display for WorkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for WorkKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "inference" | "inf" => Ok(WorkKind::Inference),
            "training" | "train" => Ok(WorkKind::Training),
            _ => Err(format!("unknown mode `{s}` (expected inference or training)")),
        }
    }
}

/// The five models of the seed paper's evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    /// torchvision ResNet-50.
    ResNet50,
    /// torchvision MobileNetV2.
    MobileNetV2,
    /// torchvision ResNet-101.
    ResNet101,
    /// BERT-base encoder.
    Bert,
    /// Transformer encoder.
    Transformer,
}

impl Model {
    /// All built-in models in the paper's order.
    pub const ALL: [Model; 5] =
        [Model::ResNet50, Model::MobileNetV2, Model::ResNet101, Model::Bert, Model::Transformer];

    /// Command-line name.
    pub fn as_str(self) -> &'static str {
        match self {
            Model::ResNet50 => "resnet50",
            Model::MobileNetV2 => "mobilenetv2",
            Model::ResNet101 => "resnet101",
            Model::Bert => "bert",
            Model::Transformer => "transformer",
        }
    }

    /// The paper's batch size for this model in a mode (inference 4, BERT 2; training
    /// ResNet50 32, MobileNetV2 64, ResNet101 32, BERT 8, Transformer 8).
    pub fn default_batch(self, kind: WorkKind) -> u32 {
        match (kind, self) {
            (WorkKind::Inference, Model::Bert) => 2,
            (WorkKind::Inference, _) => 4,
            (WorkKind::Training, Model::ResNet50 | Model::ResNet101) => 32,
            (WorkKind::Training, Model::MobileNetV2) => 64,
            (WorkKind::Training, Model::Bert | Model::Transformer) => 8,
        }
    }

    /// The paper's default HP arrival rate (Poisson, requests/s) for a model used as the HP
    /// inference job: ResNet50 15/s, MobileNetV2 40/s. Other models get 15/s.
    pub fn default_hp_rate(self) -> f64 {
        match self {
            Model::MobileNetV2 => 40.0,
            _ => 15.0,
        }
    }

    /// The fixed rate (requests/s) of this model as a BE inference job in the paper's fig10
    /// experiment: ResNet50 80, MobileNetV2 100, ResNet101 40, BERT 8, Transformer 20.
    pub fn fig10_be_rate(self) -> f64 {
        match self {
            Model::ResNet50 => 80.0,
            Model::MobileNetV2 => 100.0,
            Model::ResNet101 => 40.0,
            Model::Bert => 8.0,
            Model::Transformer => 20.0,
        }
    }

    /// Every model's name.
    pub fn names() -> Vec<String> {
        Model::ALL.iter().map(|m| m.as_str().to_string()).collect()
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Model {
    type Err = TraceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key: String = s.trim().to_ascii_lowercase().chars().filter(|c| !matches!(c, '-' | '_')).collect();
        let m = match key.as_str() {
            "resnet50" => Model::ResNet50,
            "mobilenetv2" | "mobilenet" => Model::MobileNetV2,
            "resnet101" => Model::ResNet101,
            "bert" | "bertbase" => Model::Bert,
            "transformer" => Model::Transformer,
            _ => {
                return Err(TraceError::Unknown { what: "model", name: s.to_string(), expected: Model::names() });
            }
        };
        Ok(m)
    }
}

/// A built-in HP/BE pair such as `resnet50_bert`: HP = first model (inference), BE = second
/// model (training).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pair {
    /// The high-priority inference model.
    pub hp: Model,
    /// The best-effort training model.
    pub be: Model,
}

impl Pair {
    /// The pair's name, `hp_be`.
    pub fn name(&self) -> String {
        format!("{}_{}", self.hp, self.be)
    }
}

impl FromStr for Pair {
    type Err = TraceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((a, b)) = s.split_once('_') else {
            return Err(TraceError::Unknown {
                what: "pair",
                name: s.to_string(),
                expected: vec!["HP_BE with two of: ".to_string() + &Model::names().join(", ")],
            });
        };
        Ok(Pair { hp: a.parse()?, be: b.parse()? })
    }
}
