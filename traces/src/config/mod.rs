//! Experiment configuration files (being written).
