//! Tests of liborion_preload.so as a preloaded library.
//!
//! * CPU tests (need a C compiler, `cc`; reported ignored by name without one): a program
//!   shaped like PyTorch + cuBLAS runs against fake `libcudart.so.13` and `libcuda.so.1`
//!   (`tests/fake/`): every launch path is captured exactly once, the real functions still run,
//!   `RTLD_NEXT` still works through the interposed `dlsym`, and every failure (bad mode, bad
//!   configuration, panics at start-up and inside a hook) writes one line and passes through.
//! * GPU test (reported ignored by name without an NVIDIA GPU and PyTorch): `tests/coverage.py`
//!   over the five models, inference and one training iteration: captured launches equal the
//!   kernels PyTorch's profiler records.
//!
//! The library is found through `ORION_PRELOAD_LIB`, else next to this test binary or one
//! folder up (cargo's layout, and `.carry/` on the GPU machine).

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

type TestResult = Result<(), Failed>;
type TestFn = fn() -> TestResult;

fn fail(msg: impl std::fmt::Display) -> Failed {
    Failed::from(msg.to_string())
}

fn preload_lib() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ORION_PRELOAD_LIB") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [dir.join("liborion_preload.so"), dir.parent()?.join("liborion_preload.so")].into_iter().find(|p| p.exists())
}

fn source_dir() -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    if built.exists() { built } else { PathBuf::from("gpu-backend/preload/tests") }
}

/// The fake CUDA libraries and the app, compiled once into a temporary folder.
struct Fakes {
    dir: PathBuf,
}

fn cc(args: &[&str]) -> Result<(), String> {
    let out = Command::new("cc").args(args).output().map_err(|e| format!("cc: {e}"))?;
    if out.status.success() { Ok(()) } else { Err(format!("cc {args:?}: {}", String::from_utf8_lossy(&out.stderr))) }
}

fn fakes() -> &'static Result<Fakes, String> {
    static FAKES: OnceLock<Result<Fakes, String>> = OnceLock::new();
    FAKES.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("orion-preload-fakes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let src = source_dir().join("fake");
        let s = |f: &str| src.join(f).to_string_lossy().into_owned();
        let d = |f: &str| dir.join(f).to_string_lossy().into_owned();
        std::fs::write(dir.join("cudart.map"), "libcudart.so.13 { global: *; };\n").map_err(|e| e.to_string())?;
        cc(&["-shared", "-fPIC", "-O1", "-o", &d("libcuda.so.1"), &s("fake_cuda.c")])?;
        cc(&[
            "-shared",
            "-fPIC",
            "-O1",
            "-Wl,-soname,libcudart.so.13",
            &format!("-Wl,--version-script={}", d("cudart.map")),
            "-o",
            &d("libcudart.so.13"),
            &s("fake_cudart.c"),
            "-ldl",
        ])?;
        cc(&[
            "-O1",
            "-o",
            &d("app"),
            &s("app.c"),
            &format!("-L{}", d("")),
            "-l:libcudart.so.13",
            &format!("-Wl,-rpath,{}", d("")),
            "-Wl,--disable-new-dtags",
            "-ldl",
        ])?;
        Ok(Fakes { dir })
    })
}

struct AppRun {
    ok: bool,
    stderr: String,
    stats: Value,
    /// launches, driver copies, driver syncs, runtime copies the fakes really executed.
    real: [i64; 4],
}

fn run_app(preload: bool, env: &[(&str, &str)], n: u32) -> Result<AppRun, Failed> {
    let fakes = fakes().as_ref().map_err(fail)?;
    let mut cmd = Command::new(fakes.dir.join("app"));
    cmd.arg(n.to_string()).env("FAKE_LIBCUDA", fakes.dir.join("libcuda.so.1"));
    // A real CUDA on the library path must not replace the fake runtime.
    cmd.env_remove("LD_LIBRARY_PATH");
    for k in ["ORION_PRELOAD_MODE", "ORION_PRELOAD_CONFIG", "ORION_PRELOAD_FAULT"] {
        cmd.env_remove(k);
    }
    if preload {
        cmd.env("LD_PRELOAD", preload_lib().ok_or_else(|| fail("liborion_preload.so not found"))?);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().map_err(fail)?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stats = stdout
        .lines()
        .find_map(|l| l.strip_prefix("STATS "))
        .map(|s| serde_json::from_str(s).unwrap_or(Value::Null))
        .unwrap_or(Value::Null);
    let mut real = [-1; 4];
    if let Some(l) = stdout.lines().find_map(|l| l.strip_prefix("REAL ")) {
        for (i, v) in l.split_whitespace().take(4).enumerate() {
            real[i] = v.parse().unwrap_or(-1);
        }
    }
    Ok(AppRun { ok: out.status.success(), stderr, stats, real })
}

fn n(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

const N: u32 = 5;
/// Per iteration: four launches (runtime; driver via cuGetProcAddress; via dlsym; Ex).
const LAUNCHES: i64 = 4 * N as i64;

fn every_launch_path_is_captured_once() -> TestResult {
    let r = run_app(true, &[("ORION_PRELOAD_MODE", "count")], N)?;
    if !r.ok || !r.stderr.is_empty() {
        return Err(fail(format!("app failed or logged: {}", r.stderr)));
    }
    let cap = &r.stats["captured"];
    let want = [("kernels", LAUNCHES), ("memcpy", 2 * N as i64), ("sync", 1)];
    for (k, v) in want {
        if n(&cap[k]) != v {
            return Err(fail(format!("captured {k} = {} (want {v}); stats {}", cap[k], r.stats)));
        }
    }
    // The runtime's own call of the driver is nested, not a second launch.
    if n(&r.stats["nested"]["cuLaunchKernel"]) != N as i64 {
        return Err(fail(format!("nested cuLaunchKernel: {}", r.stats["nested"])));
    }
    if n(&r.stats["calls"]["__cudaLaunchKernel"]) != N as i64 || n(&r.stats["calls"]["cuLaunchKernelEx"]) != N as i64 {
        return Err(fail(format!("per-path calls: {}", r.stats["calls"])));
    }
    if r.real != [LAUNCHES, N as i64, 0, N as i64] {
        return Err(fail(format!("the real functions ran {:?} times", r.real)));
    }
    Ok(())
}

fn pass_through_mode_counts_nothing_and_runs_everything() -> TestResult {
    let r = run_app(true, &[("ORION_PRELOAD_MODE", "passthrough")], N)?;
    if !r.ok || !r.stderr.is_empty() {
        return Err(fail(format!("app failed or logged: {}", r.stderr)));
    }
    if n(&r.stats["captured"]["kernels"]) != 0 || n(&r.stats["mode"]) != 0 {
        return Err(fail(format!("stats {}", r.stats)));
    }
    if r.real != [LAUNCHES, N as i64, 0, N as i64] {
        return Err(fail(format!("the real functions ran {:?} times", r.real)));
    }
    Ok(())
}

fn without_the_interposer() -> TestResult {
    let r = run_app(false, &[], N)?;
    if !r.ok || r.real != [LAUNCHES, N as i64, 0, N as i64] {
        return Err(fail(format!("app: {:?} {}", r.real, r.stderr)));
    }
    Ok(())
}

/// A failure writes exactly one line starting `orion-preload:` containing `needle`, the
/// program still finishes, and every real function ran.
fn one_line_and_pass_through(env: &[(&str, &str)], needle: &str) -> TestResult {
    let r = run_app(true, env, N)?;
    let lines: Vec<&str> = r.stderr.lines().collect();
    if lines.len() != 1 || !lines[0].starts_with("orion-preload: ") || !lines[0].contains(needle) {
        return Err(fail(format!("want one line with `{needle}`, got: {:?}", r.stderr)));
    }
    if !r.ok || r.real != [LAUNCHES, N as i64, 0, N as i64] {
        return Err(fail(format!("app ok {} ran {:?}", r.ok, r.real)));
    }
    if n(&r.stats["mode"]) != 0 {
        return Err(fail(format!("mode after the failure: {}", r.stats["mode"])));
    }
    Ok(())
}

/// A config file written to a temporary folder: its path.
fn config_file(name: &str, text: &str) -> Result<String, Failed> {
    let dir = std::env::temp_dir().join(format!("orion-preload-configs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(fail)?;
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(fail)?;
    Ok(path.to_string_lossy().into_owned())
}

/// A config whose client names a profile (trace) file that does not exist.
fn missing_profile_file() -> TestResult {
    let missing = "/nonexistent/profiles/resnet50-inference-b4.csv";
    let cfg = config_file(
        "missing-profile.json",
        &format!(
            r#"{{"policy": "streams", "device": {{"name": "H100", "sm_count": 132}},
               "clients": [{{"name": "a", "role": "hp", "kind": "inference", "trace": "{missing}"}}]}}"#
        ),
    )?;
    one_line_and_pass_through(&[("ORION_PRELOAD_CONFIG", &cfg)], missing)
}

/// A config file that is not JSON.
fn malformed_config() -> TestResult {
    let cfg = config_file("malformed.json", "{\"policy\": \"streams\", \"clients\": [")?;
    one_line_and_pass_through(&[("ORION_PRELOAD_CONFIG", &cfg)], "malformed.json")
}

fn gpu_available() -> Result<(), String> {
    if !Path::new("/dev/nvidia0").exists() && !Path::new("/dev/nvidiactl").exists() {
        return Err("no /dev/nvidia0".into());
    }
    let out = Command::new("python3")
        .args(["-c", "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"])
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if !out.status.success() {
        return Err("PyTorch sees no CUDA GPU".into());
    }
    Ok(())
}

fn coverage_on_the_five_models() -> TestResult {
    let lib = preload_lib().ok_or_else(|| fail("liborion_preload.so not found"))?;
    let script = source_dir().join("coverage.py");
    let out_json = std::env::var("ORION_COVERAGE_OUT").unwrap_or_else(|_| "/tmp/orion-coverage.json".into());
    let status = Command::new("python3")
        .arg(&script)
        .args(["--out", &out_json])
        .env("LD_PRELOAD", &lib)
        .env("ORION_PRELOAD_MODE", "count")
        .env("PYTHONUNBUFFERED", "1")
        .status()
        .map_err(fail)?;
    if !status.success() {
        return Err(fail(format!("coverage.py failed ({status}); see {out_json}")));
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let cpu: Vec<(&str, TestFn)> = vec![
        ("every_launch_path_is_captured_once", every_launch_path_is_captured_once),
        ("pass_through_mode_counts_nothing_and_runs_everything", pass_through_mode_counts_nothing_and_runs_everything),
        ("the_fake_program_runs_without_the_interposer", without_the_interposer),
        ("bad_mode_logs_one_line_and_passes_through", || {
            one_line_and_pass_through(&[("ORION_PRELOAD_MODE", "bogus")], "ORION_PRELOAD_MODE=`bogus`")
        }),
        ("missing_config_logs_one_line_and_passes_through", || {
            one_line_and_pass_through(&[("ORION_PRELOAD_CONFIG", "/nonexistent/orion.json")], "/nonexistent/orion.json")
        }),
        ("missing_profile_file_logs_one_line_and_passes_through", missing_profile_file),
        ("malformed_config_logs_one_line_and_passes_through", malformed_config),
        ("panic_at_start_logs_one_line_and_passes_through", || {
            one_line_and_pass_through(&[("ORION_PRELOAD_FAULT", "panic-init")], "internal panic while starting")
        }),
        ("panic_in_a_hook_logs_one_line_and_passes_through", || {
            one_line_and_pass_through(&[("ORION_PRELOAD_FAULT", "panic-hook")], "internal panic in counting")
        }),
    ];
    let have_lib = preload_lib()
        .is_none()
        .then(|| "liborion_preload.so not found (run `cargo build -p orion-preload` first)".to_string());
    let mut trials: Vec<Trial> = cpu
        .into_iter()
        .map(|(name, f)| {
            let lib_missing = have_lib.clone();
            Trial::ignorable_test(name, move || {
                if let Some(r) = lib_missing {
                    return Ok(Completion::ignored_with(r));
                }
                if let Err(e) = fakes() {
                    return Ok(Completion::ignored_with(format!("no C compiler: {e}")));
                }
                f().map(|()| Completion::Completed)
            })
        })
        .collect();
    trials.push(Trial::ignorable_test("gpu_coverage_on_the_five_models", || match gpu_available() {
        Err(e) => Ok(Completion::ignored_with(format!("no CUDA GPU: {e}"))),
        Ok(()) => coverage_on_the_five_models().map(|()| Completion::Completed),
    }));
    libtest_mimic::run(&args, trials).exit();
}
