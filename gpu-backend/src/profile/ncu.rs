//! Nsight Compute: the metrics `orion-profile` asks for, and reading them back from
//! `ncu --import REPORT --csv --page raw --print-units base`.
//!
//! The raw page is a CSV with every field quoted: a header row (`ID`, `Kernel Name`, `Block
//! Size`, `Grid Size`, ..., then one column per metric), a units row, then one row per profiled
//! kernel in launch order. A metric that ncu could not collect for a kernel is empty or `n/a`
//! in its row; such a kernel keeps its other metrics and is marked, not dropped.

use super::error::{ProfileError, Result};
use std::path::Path;

/// Kernel duration (ncu's own, used only as a cross-check).
pub const DURATION: &str = "gpu__time_duration.sum";
/// % of peak SM throughput (Orion's "compute" throughput).
pub const SM_PCT: &str = "sm__throughput.avg.pct_of_peak_sustained_elapsed";
/// % of peak DRAM throughput.
pub const DRAM_PCT: &str = "dram__throughput.avg.pct_of_peak_sustained_elapsed";
/// DRAM bytes read.
pub const DRAM_READ: &str = "dram__bytes_read.sum";
/// DRAM bytes written.
pub const DRAM_WRITE: &str = "dram__bytes_write.sum";
/// FP32 adds executed (threads).
pub const FADD: &str = "smsp__sass_thread_inst_executed_op_fadd_pred_on.sum";
/// FP32 multiplies executed (threads).
pub const FMUL: &str = "smsp__sass_thread_inst_executed_op_fmul_pred_on.sum";
/// FP32 fused multiply-adds executed (threads; two FLOPs each).
pub const FFMA: &str = "smsp__sass_thread_inst_executed_op_ffma_pred_on.sum";
/// Tensor-core math operations with TF32 sources (fp32 convolutions and matmuls under TF32).
pub const TENSOR_TF32: &str = "sm__ops_path_tensor_src_tf32_dst_fp32.sum";
/// Occupancy limits (blocks per SM) by block slots, registers, shared memory and warps: the
/// occupancy calculator's inputs as the driver computed them for the launch.
pub const OCCUPANCY_LIMITS: [&str; 4] = [
    "launch__occupancy_limit_blocks",
    "launch__occupancy_limit_registers",
    "launch__occupancy_limit_shared_mem",
    "launch__occupancy_limit_warps",
];
/// Launch shape, for matching ncu's kernels to the captured ones.
pub const GRID_SIZE: &str = "launch__grid_size";
/// Threads per block.
pub const BLOCK_SIZE: &str = "launch__block_size";

/// The light metric list, chosen for few replay passes: what Orion's thresholds need (% of
/// peak SM and DRAM throughput), DRAM bytes (same counters as the DRAM throughput), the
/// occupancy limits and launch shape (free: no replay pass), and ncu's duration. Without FLOPs
/// Orion's rule decides by the two throughputs alone, and on the H100 run of 2026-11-24 that
/// left 97-100% of the kernel time of the CNN inference traces `unknown`: [`default_metrics`]
/// adds the FLOP counters back.
pub fn light_metrics() -> Vec<String> {
    let mut m: Vec<&str> = vec![DURATION, SM_PCT, DRAM_PCT, DRAM_READ, DRAM_WRITE];
    m.extend(OCCUPANCY_LIMITS);
    m.extend([GRID_SIZE, BLOCK_SIZE]);
    m.into_iter().map(String::from).collect()
}

/// The default metric list: [`light_metrics`] and [`flop_metrics`] (the roofline part of
/// Orion's rule; several more replay passes a kernel, affordable now that one launch per
/// distinct launch configuration is profiled).
pub fn default_metrics() -> Vec<String> {
    let mut m = light_metrics();
    m.extend(flop_metrics());
    m
}

/// The FLOP counters (FP32 add, multiply, FMA; TF32 tensor ops), for the roofline part of
/// Orion's rule; several more replay passes per kernel.
pub fn flop_metrics() -> Vec<String> {
    [FADD, FMUL, FFMA, TENSOR_TF32].into_iter().map(String::from).collect()
}

/// One kernel as ncu profiled it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NcuKernel {
    /// ncu's launch ID.
    pub id: u64,
    /// Kernel name as printed (demangled or function base).
    pub name: String,
    /// Blocks in the grid.
    pub blocks: Option<u64>,
    /// Threads per block.
    pub threads: Option<u64>,
    /// Grid extents (the `Grid Size` column), for matching by launch shape across runs.
    pub grid: Option<orion_traces::Dim3>,
    /// Block extents (the `Block Size` column).
    pub block: Option<orion_traces::Dim3>,
    /// ncu's kernel duration, ns.
    pub duration_ns: Option<f64>,
    /// % of peak SM throughput.
    pub sm_pct: Option<f64>,
    /// % of peak DRAM throughput.
    pub dram_pct: Option<f64>,
    /// FLOPs: FP32 add + multiply + 2 x FMA (threads) + TF32 tensor ops; `None` when none of
    /// the counters was collected.
    pub flops: Option<f64>,
    /// DRAM bytes read + written.
    pub bytes: Option<f64>,
    /// Blocks per SM: the smallest occupancy limit.
    pub blocks_per_sm: Option<u32>,
    /// Metrics of this kernel that were requested but not collected.
    pub missing: Vec<String>,
}

impl NcuKernel {
    /// Whether the metrics Orion's rule needs were all collected.
    pub fn complete(&self) -> bool {
        self.sm_pct.is_some() && self.dram_pct.is_some()
    }
}

/// Splits one CSV line into fields (`"a","b,c",d`; `""` inside quotes is a quote).
fn split_csv_line(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => cur.push(c),
            (false, '"') if cur.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                out.push(std::mem::take(&mut cur));
                was_quoted = false;
            }
            (false, c) => cur.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    out.push(cur);
    Ok(out)
}

/// A number as ncu prints it (`1,234.5`, `n/a`, empty) scaled by its unit to the base unit
/// (bytes, nanoseconds, %); `Ok(None)` when not collected.
fn value(cell: &str, unit: &str) -> std::result::Result<Option<f64>, String> {
    let t = cell.trim();
    if t.is_empty() || t.eq_ignore_ascii_case("n/a") || t == "-" {
        return Ok(None);
    }
    let v: f64 = t.replace(',', "").parse().map_err(|_| format!("`{t}` is not a number"))?;
    let u = unit.trim();
    let scale = match u {
        "" | "%" | "byte" | "nsecond" | "inst" | "block" | "thread" | "register/thread" | "warp" | "cycle" => 1.0,
        "Kbyte" | "KB" => 1e3,
        "Mbyte" | "MB" => 1e6,
        "Gbyte" | "GB" => 1e9,
        "Tbyte" => 1e12,
        "usecond" => 1e3,
        "msecond" => 1e6,
        "second" => 1e9,
        "Kinst" => 1e3,
        "Minst" => 1e6,
        "Ginst" => 1e9,
        _ => 1.0,
    };
    if !v.is_finite() {
        return Err(format!("`{t}` is not a finite number"));
    }
    Ok(Some(v * scale))
}

/// Reads ncu's raw CSV page from a file.
pub fn read_ncu_csv(path: &Path, requested: &[String]) -> Result<Vec<NcuKernel>> {
    let text = std::fs::read_to_string(path).map_err(|e| ProfileError::io(path, e))?;
    parse_ncu_csv(&text, path, requested)
}

/// Parses ncu's raw CSV page; lines before the header (ncu's `==PROF==` messages, the
/// program's output) are skipped. `requested` are the metrics asked for: one absent from a
/// row (or from the whole file) is listed in that kernel's `missing`.
pub fn parse_ncu_csv(text: &str, file: &Path, requested: &[String]) -> Result<Vec<NcuKernel>> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(h) = lines.iter().position(|l| l.starts_with("\"ID\"")) else {
        return Err(ProfileError::invalid(
            file,
            None,
            "no ncu raw-page header (a line starting with \"ID\"); expected the output of \
             `ncu --import REPORT --csv --page raw`",
        ));
    };
    let at = |i: usize| Some(format!("line {}", i + 1));
    let header = split_csv_line(lines[h]).map_err(|m| ProfileError::invalid(file, at(h), m))?;
    let col = |name: &str| header.iter().position(|c| c == name);
    let id_col = col("ID").unwrap_or(0);
    let name_col = col("Kernel Name").ok_or_else(|| ProfileError::invalid(file, at(h), "no `Kernel Name` column"))?;
    let units = match lines.get(h + 1) {
        Some(l) if !l.starts_with("\"0\"") && !l.trim().is_empty() => {
            split_csv_line(l).map_err(|m| ProfileError::invalid(file, at(h + 1), m))?
        }
        _ => vec![String::new(); header.len()],
    };
    let first = if units.iter().any(|u| !u.is_empty()) { h + 2 } else { h + 1 };
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate().skip(first) {
        if line.trim().is_empty() || line.starts_with("==") {
            continue;
        }
        let cells = split_csv_line(line).map_err(|m| ProfileError::invalid(file, at(i), m))?;
        if cells.len() != header.len() {
            return Err(ProfileError::invalid(
                file,
                at(i),
                format!("{} fields, but the header has {}", cells.len(), header.len()),
            ));
        }
        let metric = |name: &str| -> Result<Option<f64>> {
            match col(name) {
                None => Ok(None),
                Some(c) => value(&cells[c], units.get(c).map_or("", String::as_str))
                    .map_err(|m| ProfileError::invalid(file, Some(format!("line {}, column `{name}`", i + 1)), m)),
            }
        };
        let id = cells[id_col].trim().parse::<u64>().map_err(|_| {
            ProfileError::invalid(file, Some(format!("line {}, column `ID`", i + 1)), "not a launch ID")
        })?;
        let mut k = NcuKernel { id, name: cells[name_col].clone(), ..Default::default() };
        for m in requested {
            if metric(m)?.is_none() {
                k.missing.push(m.clone());
            }
        }
        k.duration_ns = metric(DURATION)?;
        k.sm_pct = metric(SM_PCT)?.map(|v| v.clamp(0.0, 100.0));
        k.dram_pct = metric(DRAM_PCT)?.map(|v| v.clamp(0.0, 100.0));
        let parts = [metric(FADD)?, metric(FMUL)?, metric(FFMA)?.map(|v| 2.0 * v), metric(TENSOR_TF32)?];
        k.flops = parts.iter().any(Option::is_some).then(|| parts.iter().flatten().sum());
        k.bytes = match (metric(DRAM_READ)?, metric(DRAM_WRITE)?) {
            (None, None) => None,
            (r, w) => Some(r.unwrap_or(0.0) + w.unwrap_or(0.0)),
        };
        let mut limit: Option<f64> = None;
        for m in OCCUPANCY_LIMITS {
            if let Some(v) = metric(m)? {
                limit = Some(limit.map_or(v, |l| l.min(v)));
            }
        }
        k.blocks_per_sm = limit.filter(|v| *v >= 1.0).map(|v| v as u32);
        k.blocks = metric(GRID_SIZE)?.map(|v| v as u64);
        k.threads = metric(BLOCK_SIZE)?.map(|v| v as u64);
        let dim = |name: &str| col(name).and_then(|c| cells[c].parse::<orion_traces::Dim3>().ok());
        k.grid = dim("Grid Size");
        k.block = dim("Block Size");
        out.push(k);
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A hand-made raw page: two kernels, the second with its DRAM metrics not collected.
    pub(crate) fn fixture() -> String {
        let cols = [
            "ID",
            "Process ID",
            "Kernel Name",
            "Block Size",
            "Grid Size",
            DRAM_READ,
            DRAM_WRITE,
            DRAM_PCT,
            DURATION,
            GRID_SIZE,
            BLOCK_SIZE,
            OCCUPANCY_LIMITS[0],
            OCCUPANCY_LIMITS[1],
            OCCUPANCY_LIMITS[2],
            OCCUPANCY_LIMITS[3],
            TENSOR_TF32,
            SM_PCT,
            FADD,
            FFMA,
            FMUL,
        ];
        let q = |v: &[&str]| v.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(",");
        [
            "==PROF== Connected to process 123".to_string(),
            q(&cols),
            q(&[
                "", "", "", "", "", "byte", "byte", "%", "nsecond", "", "", "block", "block", "block", "block", "", "%",
                "inst", "inst", "inst",
            ]),
            q(&[
                "0",
                "123",
                "void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>, std::array<char*, 1ul> >(int, at::native::FillFunctor<float>, std::array<char*, 1ul>)",
                "(128, 1, 1)",
                "(4, 1, 1)",
                "1,024",
                "8,192",
                "0.52",
                "2,400",
                "4",
                "128",
                "32",
                "32",
                "32",
                "16",
                "0",
                "1.5",
                "0",
                "0",
                "0",
            ]),
            q(&[
                "1",
                "123",
                "sm90_xmma_gemm_f32f32_tf32f32_f32_tn_n_tilesize128x128x32_warpgroupsize1x1x1_execute_segment_k_off_kernel__5x_cublas",
                "(384, 1, 1)",
                "(1, 8, 1)",
                "n/a",
                "",
                "n/a",
                "20,100",
                "8",
                "384",
                "32",
                "1",
                "1",
                "5",
                "1,000,000,000",
                "71.25",
                "10",
                "20",
                "30",
            ]),
        ]
        .join("\n")
    }

    #[test]
    fn reads_metrics_and_marks_what_is_missing() {
        let req = default_metrics();
        let ks = parse_ncu_csv(&fixture(), Path::new("ncu.csv"), &req).unwrap();
        assert_eq!(ks.len(), 2);
        let a = &ks[0];
        assert_eq!((a.id, a.blocks, a.threads, a.blocks_per_sm), (0, Some(4), Some(128), Some(16)));
        assert_eq!((a.grid, a.block), (Some(orion_traces::Dim3::linear(4)), Some(orion_traces::Dim3::linear(128))));
        assert_eq!(ks[1].grid, Some(orion_traces::Dim3::new(1, 8, 1)));
        assert_eq!(a.bytes, Some(9216.0));
        assert_eq!(a.flops, Some(0.0));
        assert_eq!(a.duration_ns, Some(2400.0));
        assert!(a.complete() && a.missing.is_empty(), "{:?}", a.missing);
        let b = &ks[1];
        assert_eq!(b.sm_pct, Some(71.25));
        assert_eq!(b.dram_pct, None);
        assert_eq!(b.bytes, None);
        assert_eq!(b.flops, Some(1e9 + 10.0 + 30.0 + 40.0));
        assert_eq!(b.blocks_per_sm, Some(1));
        assert!(!b.complete());
        assert_eq!(b.missing, vec![DRAM_PCT.to_string(), DRAM_READ.to_string(), DRAM_WRITE.to_string()]);
    }

    #[test]
    fn units_are_scaled_to_base() {
        assert_eq!(value("1.5", "Kbyte"), Ok(Some(1500.0)));
        assert_eq!(value("2", "usecond"), Ok(Some(2000.0)));
        assert_eq!(value("n/a", "byte"), Ok(None));
        assert!(value("lots", "byte").is_err());
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let bad = fixture().replace("\"71.25\"", "\"fast\"");
        let msg = parse_ncu_csv(&bad, Path::new("ncu.csv"), &default_metrics()).unwrap_err().to_string();
        assert!(msg.starts_with(&format!("ncu.csv, line 5, column `{SM_PCT}`: `fast` is not a number")), "{msg}");
        let msg = parse_ncu_csv("hello\n", Path::new("ncu.csv"), &[]).unwrap_err().to_string();
        assert!(msg.contains("no ncu raw-page header"), "{msg}");
        let bad = fixture() + "\n\"2\",\"1\"";
        let msg = parse_ncu_csv(&bad, Path::new("ncu.csv"), &[]).unwrap_err().to_string();
        assert!(msg.contains("line 6: 2 fields, but the header has 20"), "{msg}");
    }

    #[test]
    fn csv_line_splitting() {
        assert_eq!(split_csv_line(r#""a","b,c",d,"e""f""#).unwrap(), vec!["a", "b,c", "d", "e\"f"]);
        assert!(split_csv_line("\"open").is_err());
    }
}
