//! The orion-rs workspace root: it exists to hold the end-to-end and snapshot tests in `tests/`.
//! The code lives in the member crates: `orion-traces`, `orion-policies`, `orion-sim`,
//! `orion-gpu` and `orion-validation`.
