//! Validation of the simulator against the real GPU: built in a later issue.
