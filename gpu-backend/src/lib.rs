//! The real GPU backend (replay executor, interposer, profiler): built in later issues.
