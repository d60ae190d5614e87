//! Parsing and printing of durations with units (`160us`, `2.5ms`, `30s`).

/// Parses a duration such as `160us`, `2.5ms`, `30s`, `1m`, `500ns` into nanoseconds. A bare
/// number is read in `default_unit` (`"ns"`, `"us"`, `"ms"` or `"s"`).
pub fn parse_duration_ns(text: &str, default_unit: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic() || c == 'µ').unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 =
        num.trim().parse().map_err(|_| format!("`{text}` is not a duration (expected e.g. 160us, 2.5ms, 30s)"))?;
    let unit = if unit.is_empty() { default_unit } else { unit.trim() };
    let scale = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        _ => {
            return Err(format!("`{text}`: unknown time unit `{unit}` (use ns, us, ms, s, min or h)"));
        }
    };
    let ns = value * scale;
    if !(ns.is_finite() && ns >= 0.0) {
        return Err(format!("`{text}` is not a non-negative duration"));
    }
    if ns > u64::MAX as f64 / 2.0 {
        return Err(format!("`{text}` is too long"));
    }
    Ok(ns.round() as u64)
}

/// Formats nanoseconds with a readable unit (`1.50 ms`).
pub fn format_ns(ns: f64) -> String {
    let a = ns.abs();
    if a >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if a >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if a >= 1e3 {
        format!("{:.1} us", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration_ns("160us", "ns"), Ok(160_000));
        assert_eq!(parse_duration_ns("2.5ms", "ns"), Ok(2_500_000));
        assert_eq!(parse_duration_ns("30s", "ns"), Ok(30_000_000_000));
        assert_eq!(parse_duration_ns("1m", "s"), Ok(60_000_000_000));
        assert_eq!(parse_duration_ns("42", "us"), Ok(42_000));
    }

    #[test]
    fn rejects_garbage_and_negatives() {
        assert!(parse_duration_ns("fast", "s").is_err());
        assert!(parse_duration_ns("-3s", "s").is_err());
        assert!(parse_duration_ns("3 parsecs", "s").is_err());
    }
}
