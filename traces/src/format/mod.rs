//! Trace file formats (being written).
