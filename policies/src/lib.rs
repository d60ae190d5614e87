//! The one scheduling-policy trait of orion-rs, the scheduler state every backend keeps, the
//! report every backend writes, and one file per policy.
//!
//! The crate graph points one way: `orion-traces` (data) <- this crate <- `orion-sim` and
//! `orion-gpu` (the two backends). A policy never knows which backend runs it.
#![warn(missing_docs)]

pub mod client;
pub mod driver;
pub mod params;
pub mod policy;
pub mod registry;
pub mod report;
pub mod state;
pub mod timeline;

pub mod ideal;
pub mod orion;
pub mod priority_streams;
pub mod reef;
pub mod streams;
pub mod temporal;

pub use client::{ClientId, ClientInfo, ClientState, InFlightOp, ProfileRef, QueuedOp};
pub use driver::{Command, Driver, DriverClient, DriverOutcome, LoneMode};
pub use params::{ParamMap, Params};
pub use policy::{Backend, Policy, PolicyError, PolicySetup, Sharing, StreamPriority};
pub use report::Report;
pub use state::{Action, Completion, DeviceInfo, RequestDone, SchedContext, SchedState};
