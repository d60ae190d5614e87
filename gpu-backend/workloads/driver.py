#!/usr/bin/env python3
"""orion-rs Python workload driver: real PyTorch models on a real GPU.

    python3 gpu-backend/workloads/driver.py measure [options]   # standalone latency + kernel profile
    python3 gpu-backend/workloads/driver.py serve   [options]   # clients as threads, open/closed loop

See gpu-backend/workloads/README.md for the options, the output formats and examples.
"""

import argparse
import ctypes
import datetime
import faulthandler
import gc
import json
import math
import os
import platform
import random
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))

MEASURE_FORMAT = "orion-rs-workload-measure/1"
SERVE_FORMAT = "orion-rs-workload-serve/1"


# ----------------------------------------------------------------------------------------------
# Small helpers (no torch)
# ----------------------------------------------------------------------------------------------

def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def percentile(sorted_vals, q):
    """Linear-interpolated percentile (numpy's default) of an ascending list; q in [0, 100]."""
    n = len(sorted_vals)
    if n == 0:
        return None
    if n == 1:
        return sorted_vals[0]
    pos = (n - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * frac


def summary(vals, pcts=(5, 50, 90, 95, 99)):
    """n, mean, std, min, max and percentiles of a list of numbers (None-safe when empty)."""
    s = sorted(vals)
    n = len(s)
    out = {"n": n}
    if n == 0:
        return out
    mean = sum(s) / n
    var = sum((v - mean) ** 2 for v in s) / (n - 1) if n > 1 else 0.0
    out.update({"mean": mean, "std": math.sqrt(var), "min": s[0], "max": s[-1]})
    for p in pcts:
        out["p%d" % p] = percentile(s, p)
    out["median"] = out.get("p50", percentile(s, 50))
    return out


def rounded(obj, digits=4):
    """Rounds floats in nested dicts/lists for a readable JSON file."""
    if isinstance(obj, float):
        if math.isnan(obj) or math.isinf(obj):
            return str(obj)
        return round(obj, digits)
    if isinstance(obj, dict):
        return {k: rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [rounded(v, digits) for v in obj]
    return obj


def write_json(path, doc):
    """Writes ``doc`` to ``path`` atomically (``-`` or None: stdout)."""
    text = json.dumps(rounded(doc), indent=1, sort_keys=False) + "\n"
    if path in (None, "", "-"):
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def parse_duration_s(text):
    """`30s`, `500ms`, `2min`, `1.5` (seconds) -> seconds."""
    t = str(text).strip().lower()
    units = (("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9), ("min", 60.0), ("s", 1.0), ("m", 60.0), ("h", 3600.0))
    for u, scale in units:
        if t.endswith(u):
            num = t[: -len(u)].strip()
            break
    else:
        num, scale = t, 1.0
    try:
        v = float(num) * scale
    except ValueError:
        raise ValueError("`%s` is not a duration (expected e.g. 30s, 500ms, 2min)" % text)
    if not (v > 0 and math.isfinite(v)):
        raise ValueError("`%s` is not a positive duration" % text)
    return v


def now_ns():
    """CLOCK_MONOTONIC in ns: the clock of every time this driver records or passes to the
    preload library (``scheduled_arrival_ns``)."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def run_cmd(args, timeout=10):
    try:
        r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                           universal_newlines=True)
        if r.returncode == 0:
            return r.stdout.strip()
    except Exception:
        pass
    return None


def environment(torch, device):
    """Facts about the machine, the software and the command line."""
    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [sys.executable] + sys.argv),
        "cwd": os.getcwd(),
        "hostname": socket.gethostname(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": None,
        "cuda_available": torch.cuda.is_available(),
    }
    try:
        env["cudnn"] = torch.backends.cudnn.version()
    except Exception:
        pass
    for mod in ("torchvision", "transformers", "numpy"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception:
            env[mod] = None
    env["git_commit"] = run_cmd(["git", "-C", HERE, "rev-parse", "HEAD"])
    env["CUDA_VISIBLE_DEVICES"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    env["LD_PRELOAD"] = os.environ.get("LD_PRELOAD")
    if torch.cuda.is_available():
        dev = torch.device(device)
        idx = dev.index if dev.index is not None else torch.cuda.current_device()
        p = torch.cuda.get_device_properties(idx)
        env["gpu"] = {
            "index": idx,
            "name": p.name,
            "capability": "%d.%d" % (p.major, p.minor),
            "sms": p.multi_processor_count,
            "memory_mib": p.total_memory // (1 << 20),
            "l2_cache_bytes": getattr(p, "L2_cache_size", None),
        }
        try:
            env["gpu"]["cuda_driver_api_version"] = torch._C._cuda_getDriverVersion()
        except Exception:
            pass
        smi = run_cmd(["nvidia-smi", "--query-gpu=index,name,driver_version,memory.total,clocks.max.sm,"
                       "clocks.sm,power.limit,persistence_mode,compute_mode", "--format=csv,noheader"])
        if smi:
            env["nvidia_smi"] = smi.splitlines()
            for line in smi.splitlines():
                parts = [x.strip() for x in line.split(",")]
                if parts and parts[0] == str(idx) and len(parts) > 2:
                    env["gpu"]["driver"] = parts[2]
        env["settings"] = {
            "cudnn.benchmark": torch.backends.cudnn.benchmark,
            "cudnn.deterministic": torch.backends.cudnn.deterministic,
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        }
        # Read only (nothing here sets a TF32 flag); the new API first, then the legacy one.
        for key, getter in (("cuda.matmul.fp32_precision", lambda: torch.backends.cuda.matmul.fp32_precision),
                            ("cudnn.conv.fp32_precision", lambda: torch.backends.cudnn.conv.fp32_precision),
                            ("float32_matmul_precision", torch.get_float32_matmul_precision),
                            ("cuda.matmul.allow_tf32", lambda: torch.backends.cuda.matmul.allow_tf32),
                            ("cudnn.allow_tf32", lambda: torch.backends.cudnn.allow_tf32)):
            try:
                env["settings"][key] = getter()
            except Exception:
                pass
    return env


def load_models():
    """models.py next to this file, under a name no installed package can shadow."""
    import importlib.util

    name = "orion_workload_models"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, "models.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def import_torch(args):
    """Imports torch after the environment the flags ask for is set."""
    if getattr(args, "deterministic", False):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    torch.backends.cudnn.benchmark = False
    if getattr(args, "deterministic", False):
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)
    return torch


# ----------------------------------------------------------------------------------------------
# measure
# ----------------------------------------------------------------------------------------------

def parse_configs(args, models_mod):
    """The (model, mode, batch) list to measure."""
    out = []
    if args.configs:
        for item in args.configs.split(","):
            item = item.strip()
            if not item:
                continue
            parts = item.split(":")
            if len(parts) not in (2, 3):
                raise ValueError("config `%s`: expected MODEL:MODE or MODEL:MODE:BATCH" % item)
            m = models_mod.canonical_model(parts[0])
            mode = models_mod.canonical_mode(parts[1])
            b = int(parts[2]) if len(parts) == 3 else models_mod.default_batch(m, mode)
            out.append((m, mode, b))
        return out
    models = [models_mod.canonical_model(m) for m in args.models.split(",") if m.strip()]
    modes = [models_mod.canonical_mode(m) for m in args.modes.split(",") if m.strip()]
    for mode in modes:
        for m in models:
            out.append((m, mode, models_mod.default_batch(m, mode)))
    return out


def _cat(ev):
    return str(ev.get("cat", "")).lower()


def parse_chrome_trace(path):
    """GPU ops (kernels, memcpys, memsets) and CUDA API calls of a Kineto chrome trace."""
    with open(path) as f:
        doc = json.load(f)
    events = doc["traceEvents"] if isinstance(doc, dict) else doc
    gpu, api = [], []
    for ev in events:
        if ev.get("ph") != "X":
            continue
        c = _cat(ev)
        if c == "kernel":
            gpu.append(("kernel", ev))
        elif c in ("gpu_memcpy", "memcpy"):
            gpu.append(("memcpy", ev))
        elif c in ("gpu_memset", "memset"):
            gpu.append(("memset", ev))
        elif c in ("cuda_runtime", "cuda_driver", "runtime", "driver"):
            api.append(ev)
    return gpu, api


def profile_summary_from_ops(gpu, api, keep_ops):
    """Counts, kernel time, top kernels, API call counts and (optionally) the op sequence."""
    gpu.sort(key=lambda kv: float(kv[1].get("ts", 0.0)))
    kernels = [ev for kind, ev in gpu if kind == "kernel"]
    memcpys = [ev for kind, ev in gpu if kind == "memcpy"]
    memsets = [ev for kind, ev in gpu if kind == "memset"]
    per_name = {}
    for ev in kernels:
        d = float(ev.get("dur", 0.0))
        e = per_name.setdefault(ev.get("name", "?"), [0, 0.0])
        e[0] += 1
        e[1] += d
    top = sorted(per_name.items(), key=lambda kv: -kv[1][1])[:10]
    kernel_us = sum(float(ev.get("dur", 0.0)) for ev in kernels)
    res = {
        "kernels": len(kernels),
        "distinct_kernels": len(per_name),
        "memcpy": len(memcpys),
        "memset": len(memsets),
        "kernel_time_us": kernel_us,
        "memcpy_time_us": sum(float(ev.get("dur", 0.0)) for ev in memcpys),
        "memset_time_us": sum(float(ev.get("dur", 0.0)) for ev in memsets),
        "top_kernels": [{"name": n, "count": c, "total_us": t} for n, (c, t) in top],
        "memcpys": [{"name": ev.get("name"), "bytes": (ev.get("args") or {}).get("bytes"),
                     "dur_us": float(ev.get("dur", 0.0))} for ev in memcpys],
        "streams": sorted({str((ev.get("args") or {}).get("stream")) for _, ev in gpu}),
    }
    if gpu:
        first = float(gpu[0][1].get("ts", 0.0))
        last = max(float(ev.get("ts", 0.0)) + float(ev.get("dur", 0.0)) for _, ev in gpu)
        res["gpu_first_to_last_us"] = last - first
    calls = {}
    for ev in api:
        n = ev.get("name", "?")
        calls[n] = calls.get(n, 0) + 1
    res["api_calls"] = dict(sorted(calls.items(), key=lambda kv: -kv[1]))
    if keep_ops:
        launch = {}
        for ev in api:
            corr = (ev.get("args") or {}).get("correlation")
            if corr is not None:
                launch[corr] = ev
        starts = [float(ev.get("ts", 0.0)) for ev in api] + [float(ev.get("ts", 0.0)) for _, ev in gpu]
        t0 = min(starts) if starts else 0.0
        ops = []
        for kind, ev in gpu:
            a = dict(ev.get("args") or {})
            op = {"kind": kind, "name": ev.get("name"), "start_us": float(ev.get("ts", 0.0)) - t0,
                  "dur_us": float(ev.get("dur", 0.0))}
            call = launch.get(a.get("correlation"))
            if call is not None:
                op["api"] = call.get("name")
                op["api_start_us"] = float(call.get("ts", 0.0)) - t0
                op["api_dur_us"] = float(call.get("dur", 0.0))
            for k in ("device", "context", "External id", "external id"):
                a.pop(k, None)
            op["args"] = a
            ops.append(op)
        res["ops"] = ops
    return res


def profile_summary_from_events(prof):
    """Fallback when the chrome trace cannot be exported or read: torch's event list."""
    from torch.autograd import DeviceType

    kernels, memcpys, memsets = [], [], []
    for e in prof.events():
        if getattr(e, "device_type", None) != DeviceType.CUDA:
            continue
        name = e.name
        dur = e.time_range.elapsed_us()
        low = name.lower()
        if low.startswith("memcpy"):
            memcpys.append((name, dur))
        elif low.startswith("memset"):
            memsets.append((name, dur))
        else:
            kernels.append((name, dur))
    per_name = {}
    for n, d in kernels:
        e = per_name.setdefault(n, [0, 0.0])
        e[0] += 1
        e[1] += d
    top = sorted(per_name.items(), key=lambda kv: -kv[1][1])[:10]
    return {
        "kernels": len(kernels), "distinct_kernels": len(per_name), "memcpy": len(memcpys),
        "memset": len(memsets), "kernel_time_us": sum(d for _, d in kernels),
        "memcpy_time_us": sum(d for _, d in memcpys), "memset_time_us": sum(d for _, d in memsets),
        "top_kernels": [{"name": n, "count": c, "total_us": t} for n, (c, t) in top],
        "source": "profiler.events()",
    }


def profile_one(torch, wl, keep_ops):
    """Runs one step under torch.profiler (CPU + CUDA) and summarises its GPU ops."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    t = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        wl.step()
        torch.cuda.synchronize()
    wall_ms = (time.perf_counter() - t) * 1e3
    res = None
    fd, path = tempfile.mkstemp(prefix="orion-prof-", suffix=".json")
    os.close(fd)
    try:
        prof.export_chrome_trace(path)
        gpu, api = parse_chrome_trace(path)
        res = profile_summary_from_ops(gpu, api, keep_ops)
        res["source"] = "chrome_trace"
    except Exception as e:
        res = profile_summary_from_events(prof)
        res["chrome_trace_error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
    res["profiled_step_wall_ms"] = wall_ms
    return res


def cleanup(torch):
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def measure_timing(torch, models_mod, args, model, mode, batch, n_req, n_events, warmup):
    """Pass 1: build, warm up, time ``n_req`` back-to-back steps, then ``n_events`` steps with
    CUDA events around each. Never raises: errors go into the record."""
    rec = {"model": model, "mode": mode, "batch": batch}
    t_all = time.perf_counter()
    wl = None
    try:
        torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        wl = models_mod.build(model, mode, batch, device=args.device, seed=args.seed, bert_attn=args.bert_attn)
        torch.cuda.synchronize()
        rec["build_s"] = time.perf_counter() - t
        rec["model_info"] = wl.info
        rec["input_bytes"] = wl.input_bytes()
        rec["output_bytes"] = wl.output_bytes()
        t = time.perf_counter()
        first = None
        for i in range(warmup):
            t1 = time.perf_counter()
            r = wl.step()
            if i == 0:
                first = (time.perf_counter() - t1) * 1e3
                if mode == "training":
                    rec["first_loss"] = r
        torch.cuda.synchronize()
        rec["warmup"] = {"n": warmup, "s": time.perf_counter() - t, "first_ms": first}
        gc.collect()
        lat = []
        last = None
        for _ in range(n_req):
            t0 = time.perf_counter()
            last = wl.step()
            lat.append((time.perf_counter() - t0) * 1e3)
        if mode == "training":
            rec["last_loss"] = last
            if not (isinstance(last, float) and math.isfinite(last)):
                rec["warning"] = "non-finite training loss (timings are still valid)"
        rec["latency_ms"] = summary(lat)
        if args.keep_samples:
            rec["latency_ms"]["samples"] = lat
        spans = []
        for _ in range(n_events):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            wl.step()
            end.record()
            end.synchronize()
            spans.append(start.elapsed_time(end))
        rec["gpu_span_ms"] = summary(spans)
        rec["gpu_span_ms"]["note"] = ("CUDA events on the current stream just before the input copy and "
                                      "just after the output reached the host: GPU-side span of one "
                                      "request, idle gaps while the host launches included")
        rec["memory_mib"] = {"max_allocated": torch.cuda.max_memory_allocated() / 2 ** 20,
                             "max_reserved": torch.cuda.max_memory_reserved() / 2 ** 20}
    except Exception as e:
        rec["error"] = "%s: %s" % (type(e).__name__, e)
        rec["traceback"] = traceback.format_exc().splitlines()[-12:]
    finally:
        if wl is not None:
            wl.close()
        wl = None
        try:
            cleanup(torch)
        except Exception as e:
            rec.setdefault("error", "cleanup: %s: %s" % (type(e).__name__, e))
    rec["elapsed_s"] = time.perf_counter() - t_all
    return rec


def measure_profile(torch, models_mod, args, model, mode, batch, warmup, keep_ops):
    """Pass 2: rebuild (same seed, same weights), warm up, profile one step."""
    res = {}
    t_all = time.perf_counter()
    wl = None
    try:
        wl = models_mod.build(model, mode, batch, device=args.device, seed=args.seed, bert_attn=args.bert_attn)
        for _ in range(warmup):
            wl.step()
        torch.cuda.synchronize()
        res = profile_one(torch, wl, keep_ops)
    except Exception as e:
        res["error"] = "%s: %s" % (type(e).__name__, e)
        res["traceback"] = traceback.format_exc().splitlines()[-12:]
    finally:
        if wl is not None:
            wl.close()
        wl = None
        try:
            cleanup(torch)
        except Exception:
            pass
    res["elapsed_s"] = time.perf_counter() - t_all
    return res


def short(name, n):
    name = str(name)
    return name if len(name) <= n else name[: n - 3] + "..."


def table_header():
    return "%-12s %-9s %5s %8s %8s %8s %8s %8s %7s %6s %6s %9s  %s" % (
        "model", "mode", "batch", "p50 ms", "p5 ms", "p95 ms", "mean ms", "span ms", "kernels", "memcpy",
        "memset", "kern ms", "note")


def table_row(rec):
    lat = rec.get("latency_ms") or {}
    span = rec.get("gpu_span_ms") or {}
    prof = rec.get("profile") or {}

    def f(v, fmt="%8.3f"):
        if isinstance(v, (int, float)):
            return fmt % v
        width = len(fmt % 0)
        return "-".rjust(width)

    note = ""
    if rec.get("error"):
        note = "ERROR " + short(rec["error"], 70)
    elif prof.get("error"):
        note = "profile ERROR " + short(prof["error"], 60)
    elif rec.get("warning"):
        note = rec["warning"]
    kt = prof.get("kernel_time_us")
    return "%-12s %-9s %5d %s %s %s %s %s %s %s %s %s  %s" % (
        rec["model"], rec["mode"], rec["batch"], f(lat.get("median")), f(lat.get("p5")), f(lat.get("p95")),
        f(lat.get("mean")), f(span.get("median")), f(prof.get("kernels"), "%7d"), f(prof.get("memcpy"), "%6d"),
        f(prof.get("memset"), "%6d"), f(kt / 1e3 if isinstance(kt, (int, float)) else None, "%9.3f"), note)


def cmd_measure(args):
    models_mod = load_models()
    if args.quick:
        warmup, n_inf, n_train, ev_inf, ev_train, pwarm = 5, 30, 10, 5, 3, 3
    else:
        warmup, n_inf, n_train, ev_inf, ev_train, pwarm = 20, 200, 50, 20, 5, 5
    warmup = args.warmup if args.warmup is not None else warmup
    n_inf = args.requests_inference if args.requests_inference is not None else n_inf
    n_train = args.requests_training if args.requests_training is not None else n_train
    ev_inf = args.events_inference if args.events_inference is not None else ev_inf
    ev_train = args.events_training if args.events_training is not None else ev_train
    pwarm = args.profile_warmup if args.profile_warmup is not None else pwarm

    configs = parse_configs(args, models_mod)
    torch = import_torch(args)
    if not torch.cuda.is_available():
        log("measure: no CUDA GPU visible to PyTorch (torch %s, CUDA %s)" % (torch.__version__, torch.version.cuda))
        return 1
    torch.cuda.init()
    dev = torch.device(args.device)
    if dev.index is not None:
        torch.cuda.set_device(dev)
    env = environment(torch, args.device)
    gpu = env.get("gpu", {})
    log("orion-rs workload driver: measure | %s | driver %s | torch %s CUDA %s cuDNN %s | %d configs" % (
        gpu.get("name"), gpu.get("driver"), env["torch"], env["cuda"], env["cudnn"], len(configs)))
    doc = {
        "format": MEASURE_FORMAT,
        "env": env,
        "settings": {
            "warmup": warmup, "requests_inference": n_inf, "requests_training": n_train,
            "events_inference": ev_inf, "events_training": ev_train, "profile": not args.no_profile,
            "profile_warmup": pwarm, "seed": args.seed, "bert_attn": args.bert_attn,
            "deterministic": bool(args.deterministic), "quick": bool(args.quick), "device": args.device,
            "order": "pass 1 times every config (no profiler active), pass 2 rebuilds each config and "
                     "profiles one step (a profiler session slows later launches, so it comes last)",
        },
        "records": [],
        "complete": False,
    }
    t_run = time.perf_counter()
    ops_dir = args.ops_dir
    if ops_dir:
        os.makedirs(ops_dir, exist_ok=True)

    # Pass 1: timings.
    log("pass 1: latency and CUDA-event spans")
    for model, mode, batch in configs:
        n = n_inf if mode == "inference" else n_train
        ne = ev_inf if mode == "inference" else ev_train
        rec = measure_timing(torch, models_mod, args, model, mode, batch, n, ne, warmup)
        doc["records"].append(rec)
        lat = rec.get("latency_ms") or {}
        log("  %-12s %-9s b%-3d %s" % (model, mode, batch,
            ("ERROR " + rec["error"]) if rec.get("error") else
            "p50 %.3f ms p95 %.3f ms (n=%d), span %.3f ms, %.1f s" % (
                lat.get("median", float("nan")), lat.get("p95", float("nan")), lat.get("n", 0),
                (rec.get("gpu_span_ms") or {}).get("median", float("nan")), rec["elapsed_s"])))
        doc["elapsed_s"] = time.perf_counter() - t_run
        if args.out not in (None, "", "-"):
            write_json(args.out, doc)

    # Pass 2: one profiled step per config.
    if not args.no_profile:
        log("pass 2: torch.profiler, one step per config")
        for rec in doc["records"]:
            model, mode, batch = rec["model"], rec["mode"], rec["batch"]
            prof = measure_profile(torch, models_mod, args, model, mode, batch, pwarm, bool(ops_dir))
            ops = prof.pop("ops", None)
            if ops is not None:
                path = os.path.join(ops_dir, "%s-%s-b%d.json" % (model, mode, batch))
                write_json(path, {"format": "orion-rs-workload-ops/1", "model": model, "mode": mode,
                                  "batch": batch, "env": {k: env.get(k) for k in ("date", "torch", "cuda",
                                                                                   "cudnn", "gpu")},
                                  "note": "one steady-state step under torch.profiler; times in us from "
                                          "the first CUDA API call or GPU op of the step",
                                  "ops": ops})
                prof["ops_file"] = path
            rec["profile"] = prof
            log("  %-12s %-9s b%-3d %s" % (model, mode, batch,
                ("ERROR " + prof["error"]) if prof.get("error") else
                "%d kernels (%.3f ms), %d memcpy, %d memset, %.1f s" % (
                    prof.get("kernels", 0), prof.get("kernel_time_us", 0.0) / 1e3, prof.get("memcpy", 0),
                    prof.get("memset", 0), prof["elapsed_s"])))
            doc["elapsed_s"] = time.perf_counter() - t_run
            if args.out not in (None, "", "-"):
                write_json(args.out, doc)

    doc["elapsed_s"] = time.perf_counter() - t_run
    doc["complete"] = True
    write_json(args.out, doc)
    log("")
    log(table_header())
    for rec in doc["records"]:
        log(table_row(rec))
        prof = rec.get("profile") or {}
        for k in (prof.get("top_kernels") or [])[:3]:
            log("%30s %6d x %10.1f us  %s" % ("", k["count"], k["total_us"], short(k["name"], 90)))
    log("")
    log("p50/p5/p95/mean: wall latency of back-to-back steps (input copy to output on the host); span: "
        "CUDA-event span of one step (median); kernels/memcpy/memset/kern ms: one profiled step")
    log("total %.1f s%s" % (doc["elapsed_s"], "" if args.out in (None, "", "-") else ", written to " + args.out))
    failed = [r for r in doc["records"] if r.get("error") or (r.get("profile") or {}).get("error")]
    if failed:
        log("%d of %d configs had errors (recorded in their records)" % (len(failed), len(doc["records"])))
    return 1 if failed else 0


# ----------------------------------------------------------------------------------------------
# serve
# ----------------------------------------------------------------------------------------------

class PreloadABI:
    """The C ABI of ``liborion_preload.so`` (the interposer), when it is loaded:

        int  orion_register_client(int client_id);
        void orion_request_begin(int client_id, uint64_t scheduled_arrival_ns);  // CLOCK_MONOTONIC
        void orion_request_end(int client_id);

    Symbols are looked up in the process (``dlopen(NULL)``: the program and every library
    loaded so far, LD_PRELOADed ones included) or, when ``ORION_PRELOAD_LIB`` is set, in that
    library (which then must have them). Interposing CUDA calls still needs ``LD_PRELOAD``.
    """

    def __init__(self, lib, source):
        self.source = source
        self.register = lib.orion_register_client
        self.register.argtypes = [ctypes.c_int]
        self.register.restype = ctypes.c_int
        self.begin = lib.orion_request_begin
        self.begin.argtypes = [ctypes.c_int, ctypes.c_uint64]
        self.begin.restype = None
        self.end = lib.orion_request_end
        self.end.argtypes = [ctypes.c_int]
        self.end.restype = None

    @staticmethod
    def load(disabled):
        if disabled:
            return None, "disabled (--no-preload)"
        path = os.environ.get("ORION_PRELOAD_LIB")
        if path:
            lib = ctypes.CDLL(path)  # an explicit library that does not load is an error
            try:
                return PreloadABI(lib, path), "loaded from ORION_PRELOAD_LIB=" + path
            except AttributeError as e:
                raise RuntimeError("ORION_PRELOAD_LIB=%s lacks the orion_* symbols: %s" % (path, e))
        try:
            lib = ctypes.CDLL(None)
            return PreloadABI(lib, "process"), "found in the process"
        except (AttributeError, OSError):
            return None, "absent (no liborion_preload.so in the process): running without it"


class Arrivals:
    """Seeded arrival times, the semantics of ``traces/src/arrival.rs``: Poisson gaps are
    exponential with mean 1/rate, uniform gaps 1/rate, trace gaps come from the list (repeated
    when exhausted); the first arrival comes after the first gap. Each client has its own
    stream of the run's seed. (Python's Mersenne Twister, not Rust's ChaCha8: same
    distribution, not the same numbers.)"""

    def __init__(self, spec, seed, client_id):
        self.kind = spec["type"]
        self.rate = spec.get("rate")
        self.gaps = spec.get("inter_arrival_s")
        self.rng = random.Random("orion-rs:%d:%d" % (seed, client_id))
        self.clock_s = 0.0
        self.index = 0

    def next_s(self):
        """Seconds from the start of the measured phase to the next arrival (None: closed loop)."""
        if self.kind == "poisson":
            gap = self.rng.expovariate(self.rate)
        elif self.kind == "uniform":
            gap = 1.0 / self.rate
        elif self.kind == "trace":
            gap = self.gaps[self.index % len(self.gaps)]
            self.index += 1
        else:
            return None
        self.clock_s += gap
        return self.clock_s


def read_inter_arrivals(path):
    """A JSON list of inter-arrival seconds, or one a line (`#` comments, CSV first column)."""
    with open(path) as f:
        text = f.read()
    if text.lstrip().startswith("["):
        gaps = [float(v) for v in json.loads(text)]
    else:
        gaps = []
        for i, line in enumerate(text.splitlines()):
            line = line.split("#")[0].strip()
            if not line:
                continue
            first = line.replace("\t", " ").replace(",", " ").split()[0]
            try:
                gaps.append(float(first))
            except ValueError:
                raise ValueError("%s:%d: `%s` is not a number of seconds" % (path, i + 1, first))
    validate_gaps(gaps, path)
    return gaps


def validate_gaps(gaps, origin):
    if not gaps:
        raise ValueError("%s: no inter-arrival times" % origin)
    for i, v in enumerate(gaps):
        if not (math.isfinite(v) and v >= 0):
            raise ValueError("%s: entry %d is %s, not a non-negative number of seconds" % (origin, i, v))
    if all(v == 0 for v in gaps):
        raise ValueError("%s: all inter-arrival times are zero" % origin)


def parse_arrival(text, base_dir="."):
    """`poisson:RATE`, `uniform:RATE`, `trace:FILE`, `closed` -> arrival dict."""
    t = text.strip()
    kind, _, val = t.partition(":")
    kind = kind.strip().lower()
    if kind in ("closed", "closed_loop", "closed-loop"):
        return {"type": "closed_loop"}
    if kind in ("poisson", "uniform"):
        rate = float(val)
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError("arrival `%s`: the rate must be a positive number of requests per second" % text)
        return {"type": kind, "rate": rate}
    if kind == "trace":
        path = val if os.path.isabs(val) else os.path.join(base_dir, val)
        return {"type": "trace", "file": path, "inter_arrival_s": read_inter_arrivals(path)}
    raise ValueError("arrival `%s`: expected poisson:RATE, uniform:RATE, trace:FILE or closed" % text)


def arrival_from_json(a, base_dir):
    kind = str(a.get("type", "")).lower()
    if kind in ("poisson", "uniform"):
        return parse_arrival("%s:%s" % (kind, a.get("rate")))
    if kind == "trace":
        if a.get("file") is not None:
            return parse_arrival("trace:" + str(a["file"]), base_dir)
        gaps = [float(v) for v in a.get("inter_arrival_s") or []]
        validate_gaps(gaps, "arrival.inter_arrival_s")
        return {"type": "trace", "inter_arrival_s": gaps}
    if kind == "closed_loop":
        return {"type": "closed_loop"}
    raise ValueError("arrival type `%s`: expected poisson, uniform, trace or closed_loop" % kind)


def make_client(models_mod, d, base_dir="."):
    """A client from a dict with name, model, mode, batch, arrival, role, max_requests."""
    if d.get("trace") is not None:
        raise ValueError("client `%s`: trace clients are not runnable here (give a model)" % d.get("name"))
    if d.get("model") is None:
        raise ValueError("client %s: needs a model" % d)
    model = models_mod.canonical_model(d["model"])
    mode = models_mod.canonical_mode(d.get("mode", "inference"))
    role = str(d.get("role", "be")).lower()
    if role not in ("hp", "be"):
        raise ValueError("client `%s`: role must be hp or be" % d.get("name", model))
    batch = int(d["batch"]) if d.get("batch") not in (None, "") else models_mod.default_batch(model, mode)
    arr = d.get("arrival")
    if arr is None:
        if mode == "training":
            arrival = {"type": "closed_loop"}
        else:
            rate = models_mod.default_hp_rate(model) if role == "hp" else models_mod.default_be_rate(model)
            arrival = {"type": "poisson", "rate": rate}
    elif isinstance(arr, dict):
        arrival = arrival_from_json(arr, base_dir)
    else:
        arrival = parse_arrival(str(arr), base_dir)
    if mode == "training" and arrival["type"] != "closed_loop":
        raise ValueError("client `%s`: a training client runs closed loop, not %s" % (d.get("name", model),
                                                                                     arrival["type"]))
    mr = d.get("max_requests")
    sid = d.get("seed_id")
    if sid not in (None, "") and (not str(sid).isdigit()):
        raise ValueError("client `%s`: seed_id must be a non-negative integer" % d.get("name", model))
    return {"name": str(d.get("name") or model), "model": model, "mode": mode, "batch": batch, "role": role,
            "arrival": arrival, "max_requests": int(mr) if mr not in (None, "") else None,
            "seed_id": int(sid) if sid not in (None, "") else None}


def parse_client_spec(text):
    """`model=resnet50,mode=inference,batch=4,arrival=poisson:15,role=hp,name=hp` -> dict."""
    d = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        k, sep, v = part.partition("=")
        if not sep:
            if "model" not in d:  # a bare first item is the model
                d["model"] = k
                continue
            raise ValueError("client `%s`: `%s` is not KEY=VALUE" % (text, part))
        k = k.strip().lower()
        if k not in ("name", "model", "mode", "batch", "arrival", "role", "max_requests", "seed_id"):
            raise ValueError("client `%s`: unknown key `%s`" % (text, k))
        d[k] = v.strip()
    return d


def strip_json_comments(text):
    """Removes // and /* */ comments outside strings (the scenario files allow them)."""
    out, i, n, in_str = [], 0, len(text), False
    while i < n:
        c = text[i]
        if in_str:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                in_str = False
            i += 1
        elif c == '"':
            in_str = True
            out.append(c)
            i += 1
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


class ProcessSync:
    """Start and stop shared by several driver processes (one client each, e.g. under MPS):
    each process, once its clients are built and warm, creates ``DIR/ready-PID`` and waits
    until ``count`` such files exist, so the measured phases start together (within the 1 ms
    polling step); a process that ends the run (its stopping client completed ``--requests``,
    or a client failed) creates ``DIR/stop``, which the others' clients check before each
    request."""

    POLL_S = 0.001

    def __init__(self, directory, count, timeout_s=600.0):
        self.dir = directory
        self.count = count
        self.timeout_s = timeout_s
        self.stop_path = os.path.join(directory, "stop")
        os.makedirs(directory, exist_ok=True)

    def wait_ready(self):
        with open(os.path.join(self.dir, "ready-%d" % os.getpid()), "w") as f:
            f.write("%d\n" % now_ns())
        deadline = time.monotonic() + self.timeout_s
        while True:
            ready = [n for n in os.listdir(self.dir) if n.startswith("ready-")]
            if len(ready) >= self.count:
                return
            if self.stopped():
                raise RuntimeError("another process stopped the run before the measured phase")
            if time.monotonic() > deadline:
                raise RuntimeError("--sync-dir %s: %d of %d processes ready after %.0f s" % (
                    self.dir, len(ready), self.count, self.timeout_s))
            time.sleep(self.POLL_S)

    def stop(self):
        try:
            with open(self.stop_path, "a"):
                pass
        except OSError:
            pass

    def stopped(self):
        return os.path.exists(self.stop_path)


class Client:
    """One client thread's state and results."""

    def __init__(self, cid, spec):
        self.id = cid
        self.spec = spec
        self.registered = None
        self.build_s = None
        self.warmup_ms = []
        self.requests = []  # (scheduled_ns, start_ns, end_ns) of measured requests
        self.error = None
        self.traceback = None
        self.stop_ns = None
        self.stream = None


def client_main(ctx, c):
    """Body of one client thread: register, build, warm up, wait for the others, run."""
    torch, models_mod, args, abi = ctx["torch"], ctx["models"], ctx["args"], ctx["abi"]
    spec, stop, barrier = c.spec, ctx["stop"], ctx["barrier"]
    cid = c.id
    # Weights, inputs and arrivals are seeded by the client's seed id (default: its index), so a
    # client run alone or in its own process sees what it sees in company.
    sid = spec["seed_id"] if spec.get("seed_id") is not None else cid
    try:
        if abi is not None:
            c.registered = int(abi.register(cid))
        with ctx["build_lock"]:
            t = time.perf_counter()
            wl = models_mod.build(spec["model"], spec["mode"], spec["batch"], device=args.device,
                                  seed=args.seed * 1000 + sid, bert_attn=args.bert_attn)
            torch.cuda.synchronize()
            c.build_s = time.perf_counter() - t
        stream = torch.cuda.Stream(device=torch.device(args.device)) if args.stream_per_client else None
        c.stream = "own stream" if stream is not None else "default stream (shared by every thread)"
        with torch.cuda.stream(stream) if stream is not None else _Null():
            for _ in range(ctx["warmup"]):
                if stop.is_set():
                    break
                t0 = now_ns()
                if abi is not None:
                    abi.begin(cid, t0)
                wl.step()
                if abi is not None:
                    abi.end(cid)
                c.warmup_ms.append((now_ns() - t0) / 1e6)
            barrier.wait()  # every client is built and warm; the action set ctx["t0"]
            t0 = ctx["t0"]
            t_end = ctx["t_end"]
            gen = Arrivals(spec["arrival"], args.seed, sid)
            open_loop = spec["arrival"]["type"] != "closed_loop"
            limit = None
            if spec["max_requests"] is not None:
                limit = max(0, spec["max_requests"] - ctx["warmup"])
            while not stop.is_set():
                if limit is not None and len(c.requests) >= limit:
                    break
                if ctx["sync"] is not None and ctx["sync"].stopped():
                    ctx["stop_reason"] = ctx["stop_reason"] or "another process stopped the run"
                    break
                if open_loop:
                    sched = t0 + int(round(gen.next_s() * 1e9))
                    if t_end is not None and sched > t_end:
                        break
                    while True:
                        delay = (sched - now_ns()) / 1e9
                        if delay <= 0 or stop.is_set():
                            break
                        stop.wait(delay)
                    if stop.is_set():
                        break
                    start = now_ns()
                else:
                    start = now_ns()
                    if t_end is not None and start >= t_end:
                        break
                    sched = start
                if abi is not None:
                    abi.begin(cid, sched)
                wl.step()
                end = now_ns()
                if abi is not None:
                    abi.end(cid)
                c.requests.append((sched, start, end))
                if ctx["stopper"] == cid and ctx["requests"] is not None and len(c.requests) >= ctx["requests"]:
                    ctx["stop_reason"] = "client %s completed %d measured requests" % (spec["name"], ctx["requests"])
                    if ctx["sync"] is not None:
                        ctx["sync"].stop()
                    stop.set()
    except threading.BrokenBarrierError:
        if c.error is None and not stop.is_set():
            c.error = "another client failed before the measured phase"
    except Exception as e:
        c.error = "%s: %s" % (type(e).__name__, e)
        c.traceback = traceback.format_exc().splitlines()[-12:]
        barrier.abort()
        if ctx.get("stop_reason") is None:
            ctx["stop_reason"] = "client %s failed" % spec["name"]
        if ctx["sync"] is not None:
            ctx["sync"].stop()
        stop.set()
    finally:
        c.stop_ns = now_ns()
        try:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
        except Exception:
            pass


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def client_report(c, t0, warmup):
    spec = c.spec
    rel = lambda ns: (ns - t0) / 1e6 if t0 is not None else None  # noqa: E731
    lat = [(e - s) / 1e6 for s, _, e in c.requests]
    service = [(e - st) / 1e6 for _, st, e in c.requests]
    queue = [(st - s) / 1e6 for s, st, _ in c.requests]
    window_s = (c.stop_ns - t0) / 1e9 if (t0 is not None and c.stop_ns is not None) else None
    arrival = dict(spec["arrival"])
    if arrival.get("type") == "trace":
        arrival["gaps"] = len(arrival.pop("inter_arrival_s", []) or [])
    rep = {
        "id": c.id, "name": spec["name"], "role": spec["role"], "model": spec["model"], "mode": spec["mode"],
        "batch": spec["batch"], "arrival": arrival, "open_loop": spec["arrival"]["type"] != "closed_loop",
        "max_requests": spec["max_requests"], "stream": c.stream, "preload_register": c.registered,
        "build_s": c.build_s, "warmup": {"n": len(c.warmup_ms), "ms": c.warmup_ms},
        "completed": len(c.requests), "window_s": window_s,
        "throughput_per_s": (len(c.requests) / window_s) if window_s else None,
        "latency_ms": summary(lat, (50, 90, 95, 99)),
        "service_ms": summary(service, (50, 90, 95, 99)),
        "queue_ms": summary(queue, (50, 90, 95, 99)),
        "requests_ms": [[rel(s), rel(st), rel(e)] for s, st, e in c.requests],
    }
    if c.error:
        rep["error"] = c.error
        rep["traceback"] = c.traceback
    return rep


def cmd_serve(args):
    models_mod = load_models()
    specs = []
    seed, duration_s, requests, warmup = 1, None, None, 10
    if args.scenario:
        with open(args.scenario) as f:
            sc = json.loads(strip_json_comments(f.read()))
        base = os.path.dirname(os.path.abspath(args.scenario))
        for d in sc.get("clients") or []:
            specs.append(make_client(models_mod, d, base))
        if sc.get("seed") is not None:
            seed = int(sc["seed"])
        if sc.get("duration") is not None:
            duration_s = parse_duration_s(sc["duration"])
        if sc.get("requests") is not None:
            requests = int(sc["requests"])
        if sc.get("warmup") is not None:
            warmup = int(sc["warmup"])
    for text in args.client or []:
        specs.append(make_client(models_mod, parse_client_spec(text), os.getcwd()))
    if not specs:
        log("serve: no clients (give --client ... or --scenario FILE)")
        return 2
    if args.seed is not None:
        seed = args.seed
    if args.duration is not None:
        duration_s = parse_duration_s(args.duration)
    if args.requests is not None:
        requests = args.requests
    if args.warmup is not None:
        warmup = args.warmup
    if duration_s is None and requests is None and any(s["max_requests"] is None for s in specs):
        duration_s = 20.0  # the Rust side's default (Stop::DEFAULT)
    hp = [i for i, s in enumerate(specs) if s["role"] == "hp"]
    if len(hp) > 1:
        log("serve: %d clients are hp; at most one may be" % len(hp))
        return 2
    args.seed = seed
    stopper = hp[0] if hp else 0

    torch = import_torch(args)
    if not torch.cuda.is_available():
        log("serve: no CUDA GPU visible to PyTorch")
        return 1
    torch.cuda.init()
    dev = torch.device(args.device)
    if dev.index is not None:
        torch.cuda.set_device(dev)
    abi, abi_status = PreloadABI.load(args.no_preload)
    env = environment(torch, args.device)
    log("orion-rs workload driver: serve | %s | %d clients | preload: %s" % (
        env.get("gpu", {}).get("name"), len(specs), abi_status))

    ctx = {"torch": torch, "models": models_mod, "args": args, "abi": abi, "stop": threading.Event(),
           "build_lock": threading.Lock(), "warmup": warmup, "requests": requests, "stopper": stopper,
           "t0": None, "t_end": None, "stop_reason": None,
           "sync": ProcessSync(args.sync_dir, args.sync_count) if args.sync_dir else None}

    def start_measured_phase():
        if ctx["sync"] is not None:
            ctx["sync"].wait_ready()  # raises: the barrier breaks and every client reports it
        ctx["t0"] = now_ns()
        ctx["t_end"] = ctx["t0"] + int(duration_s * 1e9) if duration_s is not None else None

    ctx["barrier"] = threading.Barrier(len(specs), action=start_measured_phase)
    clients = [Client(i, s) for i, s in enumerate(specs)]
    threads = [threading.Thread(target=client_main, args=(ctx, c), name="client-%d" % c.id, daemon=True)
               for c in clients]
    interrupted = False
    t_wall = time.perf_counter()
    for th in threads:
        th.start()
    try:
        while any(th.is_alive() for th in threads):
            for th in threads:
                th.join(timeout=0.2)
    except KeyboardInterrupt:
        interrupted = True
        ctx["stop_reason"] = "interrupted"
        ctx["stop"].set()
        ctx["barrier"].abort()
        for th in threads:
            th.join(timeout=30)
    if ctx["stop_reason"] is None:
        if all(c.spec["max_requests"] is not None
               and len(c.requests) >= c.spec["max_requests"] - warmup for c in clients):
            ctx["stop_reason"] = "every client reached its max_requests"
        else:
            ctx["stop_reason"] = "duration reached"
    t0 = ctx["t0"]
    doc = {
        "format": SERVE_FORMAT,
        "env": env,
        "settings": {"seed": seed, "duration_s": duration_s, "requests": requests, "warmup": warmup,
                     "stop_client": specs[stopper]["name"] if requests is not None else None,
                     "device": args.device, "stream_per_client": bool(args.stream_per_client),
                     "bert_attn": args.bert_attn, "deterministic": bool(args.deterministic),
                     "preload": abi_status, "clock": "CLOCK_MONOTONIC; requests_ms are "
                     "[scheduled arrival, start, end] in ms from the start of the measured phase",
                     "switch_interval_s": sys.getswitchinterval()},
        "interrupted": interrupted,
        "stop_reason": ctx["stop_reason"],
        "measured_phase_s": ((max(c.stop_ns for c in clients if c.stop_ns) - t0) / 1e9) if t0 else None,
        "wall_s": time.perf_counter() - t_wall,
        "clients": [client_report(c, t0, warmup) for c in clients],
    }
    write_json(args.out, doc)
    log("")
    log("%-14s %-4s %-12s %-9s %5s %-22s %7s %9s %8s %8s %8s %8s" % (
        "client", "role", "model", "mode", "batch", "arrival", "done", "thrpt/s", "p50 ms", "p95 ms", "p99 ms",
        "max ms"))
    for rep in doc["clients"]:
        a = rep["arrival"]
        arr = a["type"] + (":%g" % a["rate"] if "rate" in a else "")
        lat = rep["latency_ms"]

        def f(v):
            return "%8.2f" % v if isinstance(v, (int, float)) else "%8s" % "-"

        thr = rep["throughput_per_s"]
        log("%-14s %-4s %-12s %-9s %5d %-22s %7d %9s %s %s %s %s%s" % (
            short(rep["name"], 14), rep["role"], rep["model"], rep["mode"], rep["batch"], short(arr, 22),
            rep["completed"], "%9.2f" % thr if thr is not None else "%9s" % "-", f(lat.get("p50")),
            f(lat.get("p95")), f(lat.get("p99")), f(lat.get("max")),
            ("  ERROR " + rep["error"]) if rep.get("error") else ""))
    log("stop: %s%s" % (ctx["stop_reason"], "" if args.out in (None, "", "-") else "; written to " + args.out))
    if interrupted:
        return 130
    return 1 if any(c.error for c in clients) else 0


# ----------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------

def main(argv=None):
    # SIGUSR1 prints every thread's Python stack to stderr (orion-real sends it to a driver
    # that ran past its time limit before stopping it, so that the log says where it hung).
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    p = argparse.ArgumentParser(prog="driver.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd")

    def common(q):
        q.add_argument("--device", default="cuda:0", help="PyTorch device (default cuda:0)")
        q.add_argument("--seed", type=int, default=None, help="seed of weights, inputs and arrivals (default 1)")
        q.add_argument("--bert-attn", default="eager", choices=("eager", "sdpa", "default"),
                       help="BERT attention implementation (default eager, as NVIDIA's modeling.py)")
        q.add_argument("--deterministic", action="store_true",
                       help="torch.use_deterministic_algorithms(True, warn_only=True), cudnn.deterministic")
        q.add_argument("--out", "-o", default=None, help="JSON output file (default stdout)")

    m = sub.add_parser("measure", help="standalone latency, CUDA-event span and kernel profile of each config")
    common(m)
    m.add_argument("--models", default="resnet50,mobilenetv2,resnet101,bert,transformer")
    m.add_argument("--modes", default="inference,training")
    m.add_argument("--configs", default=None,
                   help="explicit list MODEL:MODE[:BATCH],... (overrides --models/--modes)")
    m.add_argument("--quick", action="store_true",
                   help="warm-up 5, 30 inference / 10 training steps, fewer event samples")
    m.add_argument("--warmup", type=int, default=None, help="warm-up steps per config (default 20)")
    m.add_argument("--requests-inference", type=int, default=None, help="timed requests (default 200)")
    m.add_argument("--requests-training", type=int, default=None, help="timed iterations (default 50)")
    m.add_argument("--events-inference", type=int, default=None, help="CUDA-event samples (default 20)")
    m.add_argument("--events-training", type=int, default=None, help="CUDA-event samples (default 5)")
    m.add_argument("--profile-warmup", type=int, default=None, help="warm-up before the profiled step (5)")
    m.add_argument("--no-profile", action="store_true", help="skip the torch.profiler pass")
    m.add_argument("--ops-dir", default=None,
                   help="also write each profiled step's GPU op sequence (kernels with grid, block, "
                        "registers, shared memory, launch API and times) to DIR/MODEL-MODE-bB.json")
    m.add_argument("--keep-samples", action="store_true", help="keep every latency sample in the JSON")

    s = sub.add_parser("serve", help="clients as threads of one process, open or closed loop")
    common(s)
    s.add_argument("--client", action="append", default=[],
                   help="model=M,mode=inference|training,batch=B,arrival=poisson:R|uniform:R|trace:FILE|closed,"
                        "role=hp|be,name=N,max_requests=K (repeatable)")
    s.add_argument("--scenario", default=None, help="an orion-rs scenario JSON (clients with `model`)")
    s.add_argument("--duration", default=None, help="measured-phase length, e.g. 30s (default 20s)")
    s.add_argument("--requests", type=int, default=None,
                   help="stop when the hp client (else the first) completed N measured requests")
    s.add_argument("--warmup", type=int, default=None, help="warm-up requests per client (default 10)")
    s.add_argument("--stream-per-client", action="store_true",
                   help="run each client on its own CUDA stream (default: PyTorch's default stream)")
    s.add_argument("--no-preload", action="store_true", help="do not call liborion_preload.so even if present")
    s.add_argument("--sync-dir", default=None,
                   help="start the measured phase together with other driver processes using this folder")
    s.add_argument("--sync-count", type=int, default=1, help="processes sharing --sync-dir (default 1)")

    args = p.parse_args(argv)
    if args.cmd is None:
        p.print_help()
        return 2
    try:
        if args.cmd == "measure":
            if args.seed is None:
                args.seed = 1
            return cmd_measure(args)
        return cmd_serve(args)
    except (ValueError, OSError, RuntimeError) as e:
        # Bad input (an unknown model, a missing arrival file, ...) found before any model ran.
        log("driver.py %s: %s" % (args.cmd, e))
        return 2


if __name__ == "__main__":
    sys.exit(main())
