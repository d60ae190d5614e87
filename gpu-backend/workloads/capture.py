#!/usr/bin/env python3
"""orion-rs capture harness for `orion-profile`: runs one request/iteration of a workload under
torch.profiler (Kineto) or under Nsight Compute, and writes the raw material of a measured trace.

    python3 capture.py capture --model resnet50 --mode inference --out DIR     # Kineto, K steps
    python3 capture.py ncu-step --model resnet50 --mode inference              # run under ncu
    python3 capture.py capture --out DIR -- my_script.py ARGS...               # any Python program

`orion-profile` (gpu-backend/src/profile/) drives this file; it is rarely run by hand.

How a step is delimited: the workload calls ``torch.cuda.profiler.start()`` just before one
request (or iteration) and ``torch.cuda.profiler.stop()`` just after it (the usual way to mark a
range for Nsight tools). For the built-in models (``--model``, from models.py) this file does it;
any other Python program must do it itself, around each step it wants profiled.

* ``capture``: ``start``/``stop`` are replaced so that each marked step runs inside its own
  torch.profiler session (CUDA activity only, so the host is slowed as little as possible),
  framed by markers; each session's chrome trace is written to
  ``DIR/kineto-N.json`` (N = 0, 1, ...; the first ``--discard`` sessions are dropped: the first
  session in a process pays CUPTI's start-up); the step lies between two ``cudaMemGetInfo``
  marker calls (``torch.cuda.mem_get_info()``, made after a synchronize). For the built-in models it first times
  ``--latency-steps`` unprofiled steps (wall clock, input copy to output on the host, as
  ``driver.py measure``) and with CUDA events. ``DIR/capture.json`` holds the environment (GPU,
  driver, CUDA, PyTorch, date, command), the timings and the files written.
* ``ncu-step``: ``start``/``stop`` are the real cudaProfilerStart/Stop for the first marked step
  only (later ones are ignored), so ``ncu --profile-from-start off`` profiles exactly one step.
"""

import argparse
import datetime
import gc
import json
import os
import runpy
import shlex
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CAPTURE_FORMAT = "orion-rs-capture/1"


def log(msg):
    sys.stderr.write("[capture.py] " + msg + "\n")
    sys.stderr.flush()


def median(vals):
    s = sorted(vals)
    n = len(s)
    if n == 0:
        return None
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def run_cmd(args):
    try:
        r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20,
                           universal_newlines=True)
        return r.stdout.strip() if r.returncode == 0 else None
    except Exception:
        return None


def environment(torch):
    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in [sys.executable] + sys.argv),
        "hostname": socket.gethostname(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }
    try:
        env["cudnn"] = str(torch.backends.cudnn.version())
    except Exception:
        pass
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(torch.cuda.current_device())
        env["gpu"] = p.name
        env["gpu_sms"] = p.multi_processor_count
        env["gpu_capability"] = "%d.%d" % (p.major, p.minor)
        smi = run_cmd(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader",
                       "-i", str(torch.cuda.current_device())])
        if smi:
            env["driver"] = smi.splitlines()[0].strip()
    return env


def load_models():
    import importlib.util

    name = "orion_workload_models"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, "models.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


class KinetoMarker:
    """``torch.cuda.profiler.start/stop`` for the capture phase: one torch.profiler session per
    marked step, each written to its own chrome trace."""

    def __init__(self, torch, out_dir, discard, max_steps):
        self.torch = torch
        self.out_dir = out_dir
        self.discard = discard
        self.max_steps = max_steps
        self.prof = None
        self.index = 0
        self.files = []
        self.step_wall_ms = []
        self.with_cpu = False
        self.preroll = torch.zeros(1, device="cuda")

    def start(self):
        torch = self.torch
        if self.prof is not None or len(self.files) >= self.max_steps:
            return
        from torch.profiler import ProfilerActivity, profile

        torch.cuda.synchronize()
        acts = [ProfilerActivity.CUDA] if not self.with_cpu else [ProfilerActivity.CPU, ProfilerActivity.CUDA]
        self.prof = profile(activities=acts)
        self.prof.__enter__()
        # Pre-roll: one launch and a copy inside the session before the step, so that whatever
        # the profiler does on a session's first GPU activity happens outside the step.
        self.preroll.add_(1.0)
        self.preroll.cpu()
        torch.cuda.synchronize()
        torch.cuda.mem_get_info()  # start marker: cudaMemGetInfo, a call no model makes
        self.t0 = time.perf_counter()

    def stop(self):
        torch = self.torch
        if self.prof is None:
            return
        torch.cuda.mem_get_info()  # end marker
        wall = (time.perf_counter() - self.t0) * 1e3
        torch.cuda.synchronize()
        prof, self.prof = self.prof, None
        prof.__exit__(None, None, None)
        keep = self.index >= self.discard
        self.index += 1
        if self.index == 1 and not self.with_cpu:
            # CUDA API calls must be in the trace (host gaps, markers); if this build of
            # Kineto records them only with CPU activity on, switch it on for later steps.
            tmp = os.path.join(self.out_dir, "probe.json")
            prof.export_chrome_trace(tmp)
            with open(tmp) as f:
                cats = {str(e.get("cat", "")).lower() for e in json.load(f).get("traceEvents", [])}
            os.unlink(tmp)
            if not cats & {"cuda_runtime", "cuda_driver"}:
                self.with_cpu = True
                log("no CUDA API events with CUDA activity alone: profiling CPU activity too")
                if keep:
                    self.index = 0
                    return
        if keep:
            path = os.path.join(self.out_dir, "kineto-%d.json" % len(self.files))
            prof.export_chrome_trace(path)
            self.files.append(os.path.basename(path))
            self.step_wall_ms.append(wall)
            log("captured step %d (%.2f ms wall under the profiler)" % (len(self.files), wall))


class NcuMarker:
    """``torch.cuda.profiler.start/stop`` for the ncu phase: the first marked step only."""

    def __init__(self, torch):
        self.torch = torch
        self.state = "before"
        self.real_start = torch.cuda.profiler.start
        self.real_stop = torch.cuda.profiler.stop

    def start(self):
        if self.state == "before":
            self.torch.cuda.synchronize()
            self.real_start()
            self.state = "in"

    def stop(self):
        if self.state == "in":
            self.torch.cuda.synchronize()
            self.real_stop()
            self.state = "done"
            log("ncu step done")


def install(torch, marker):
    torch.cuda.profiler.start = marker.start
    torch.cuda.profiler.stop = marker.stop


def model_program(torch, args, phase, record):
    """The built-in program for ``--model``: build, warm up, time (capture phase), then mark
    ``steps`` steps with torch.cuda.profiler.start/stop."""
    models = load_models()
    torch.backends.cudnn.benchmark = False
    model = models.canonical_model(args.model)
    mode = models.canonical_mode(args.mode)
    batch = args.batch or models.default_batch(model, mode)
    record.update({"model": model, "mode": mode, "batch": batch})
    t = time.perf_counter()
    wl = models.build(model, mode, batch, device=args.device, seed=args.seed, bert_attn=args.bert_attn)
    torch.cuda.synchronize()
    record["build_s"] = time.perf_counter() - t
    record["model_info"] = wl.info
    for _ in range(args.warmup):
        wl.step()
    torch.cuda.synchronize()
    if phase in ("capture", "time") and args.latency_steps > 0:
        # The same definition as `driver.py measure` (pass 1): warm-up, gc, back-to-back steps
        # timed with perf_counter (input copy to outputs on the host), then CUDA-event spans.
        gc.collect()
        lat = []
        for _ in range(args.latency_steps):
            t0 = time.perf_counter()
            wl.step()
            lat.append((time.perf_counter() - t0) * 1e3)
        spans = []
        for _ in range(max(3, min(20, args.latency_steps // 5))):
            a = torch.cuda.Event(enable_timing=True)
            b = torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            a.record()
            wl.step()
            b.record()
            b.synchronize()
            spans.append(a.elapsed_time(b))
        record["latency_ms"] = {"n": len(lat), "median": median(lat), "min": min(lat), "max": max(lat)}
        if args.keep_samples:
            record["latency_ms"]["samples"] = lat
        record["gpu_span_ms"] = {"n": len(spans), "median": median(spans)}
        log("unprofiled: latency median %.3f ms, CUDA-event span median %.3f ms" % (
            record["latency_ms"]["median"], record["gpu_span_ms"]["median"]))
    steps = {"ncu": 1, "time": 0}.get(phase, args.steps + args.discard)
    for _ in range(steps):
        torch.cuda.profiler.start()
        wl.step()
        torch.cuda.profiler.stop()
    wl.close()


def main(argv=None):
    p = argparse.ArgumentParser(prog="capture.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("phase", choices=("capture", "ncu-step", "time"),
                   help="capture: Kineto steps; ncu-step: one step for ncu; time: only the unprofiled "
                        "timings of a built-in model (JSON on stdout, or --out FILE)")
    p.add_argument("--model", default=None, help="a built-in model (models.py); else give a program after --")
    p.add_argument("--mode", default="inference")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--out", default=None, help="capture: output folder")
    p.add_argument("--steps", type=int, default=5, help="capture: profiled steps kept (default 5)")
    p.add_argument("--discard", type=int, default=1, help="capture: profiled steps dropped first (default 1)")
    p.add_argument("--warmup", type=int, default=10, help="built-in models: warm-up steps (default 10)")
    p.add_argument("--latency-steps", type=int, default=50,
                   help="built-in models, capture: unprofiled timed steps (default 50; 0: none)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", default="cuda:0")
    p.add_argument("--bert-attn", default="eager", choices=("eager", "sdpa", "default"))
    p.add_argument("--keep-samples", action="store_true", help="keep every latency sample")
    argv = list(sys.argv[1:] if argv is None else argv)
    program = []
    if "--" in argv:
        cut = argv.index("--")
        argv, program = argv[:cut], argv[cut + 1:]
    p.epilog = "-- PROGRAM.py ARGS...: a Python program to run instead of --model"
    args = p.parse_args(argv)
    if (args.model is None) == (not program):
        p.error("give exactly one of --model or -- PROGRAM.py ARGS")
    if args.phase == "capture" and not args.out:
        p.error("capture needs --out DIR")
    if args.phase == "time" and args.model is None:
        p.error("time needs --model")

    import torch

    if not torch.cuda.is_available():
        log("no CUDA GPU visible to PyTorch")
        return 1
    torch.cuda.init()
    record = {"format": CAPTURE_FORMAT, "phase": args.phase, "env": environment(torch),
              "settings": {"steps": args.steps, "discard": args.discard, "warmup": args.warmup,
                           "latency_steps": args.latency_steps, "seed": args.seed,
                           "bert_attn": args.bert_attn, "program": program or None,
                           "cudnn.benchmark": False,
                           "kineto_activities": "CUDA (runtime/driver API calls, kernels, copies, memsets)"}}
    if args.phase == "capture":
        os.makedirs(args.out, exist_ok=True)
        marker = KinetoMarker(torch, args.out, args.discard, args.steps)
    else:
        marker = NcuMarker(torch)
    install(torch, marker)
    t = time.perf_counter()
    if args.phase == "time":
        model_program(torch, args, "time", record)
        record["elapsed_s"] = time.perf_counter() - t
        text = json.dumps(record, indent=1)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text)
        else:
            print(text)
        return 0
    if args.model is not None:
        model_program(torch, args, "capture" if args.phase == "capture" else "ncu", record)
    else:
        sys.argv = program
        runpy.run_path(program[0], run_name="__main__")
    record["elapsed_s"] = time.perf_counter() - t
    if args.phase == "capture":
        record["kineto_files"] = marker.files
        record["kineto_cpu_activity"] = marker.with_cpu
        record["profiled_step_wall_ms"] = marker.step_wall_ms
        if not marker.files:
            log("no step was captured: the program never called torch.cuda.profiler.start()/stop()")
            return 1
        with open(os.path.join(args.out, "capture.json"), "w") as f:
            json.dump(record, f, indent=1)
        log("wrote %d step traces and capture.json to %s" % (len(marker.files), args.out))
    elif marker.state != "done":
        log("no step was marked: the program never called torch.cuda.profiler.start()/stop()")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
