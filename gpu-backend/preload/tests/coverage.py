#!/usr/bin/env python3
"""Coverage of liborion_preload.so on a real GPU: for each model and mode, the number of kernel
launches (and copies, memsets) the interposer captured during one step must equal what
PyTorch's profiler records for the same step.

    LD_PRELOAD=$PWD/.carry/liborion_preload.so ORION_PRELOAD_MODE=count \\
        python3 gpu-backend/preload/tests/coverage.py [--configs resnet50:inference,...] [--out cov.json]

Per config it prints the profiler's counts, the interposer's, and the interposer's calls per
entry point; with --out, the JSON also holds which API the profiler says launched each kernel
(so a missing path can be named). Exit code 0 when every config's kernel counts match.
"""

import argparse
import ctypes
import json
import os
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = os.path.join(HERE, "..", "..", "workloads")


def load_driver():
    import importlib.util

    spec = importlib.util.spec_from_file_location("orion_workload_driver", os.path.join(WORKLOADS, "driver.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Preload:
    def __init__(self):
        lib = ctypes.CDLL(None)
        try:
            self.stats_json = lib.orion_stats_json
            self.reset = lib.orion_stats_reset
            self.mode = lib.orion_mode
        except AttributeError:
            raise SystemExit("coverage.py: liborion_preload.so is not in the process (run it under LD_PRELOAD)")
        self.stats_json.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        self.stats_json.restype = ctypes.c_size_t

    def stats(self):
        n = 1 << 20
        buf = ctypes.create_string_buffer(n)
        self.stats_json(buf, n)
        return json.loads(buf.value.decode())


def profile_step(torch, wl, drv):
    """One step under torch.profiler: kernels, memcpys, memsets and the launching API of each."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        wl.step()
        torch.cuda.synchronize()
    fd, path = tempfile.mkstemp(prefix="orion-cov-", suffix=".json")
    os.close(fd)
    try:
        prof.export_chrome_trace(path)
        gpu, api = drv.parse_chrome_trace(path)
    finally:
        os.unlink(path)
    by_corr = {}
    for ev in api:
        corr = (ev.get("args") or {}).get("correlation")
        if corr is not None:
            by_corr[corr] = ev.get("name")
    counts = {"kernel": 0, "memcpy": 0, "memset": 0}
    launched_by = {}
    names = {}
    for kind, ev in gpu:
        counts[kind] += 1
        if kind == "kernel":
            api_name = by_corr.get((ev.get("args") or {}).get("correlation"), "?")
            launched_by[api_name] = launched_by.get(api_name, 0) + 1
            key = api_name + " | " + str(ev.get("name"))[:80]
            names[key] = names.get(key, 0) + 1
    api_calls = {}
    for ev in api:
        api_calls[ev.get("name")] = api_calls.get(ev.get("name"), 0) + 1
    return counts, launched_by, names, api_calls


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default=None, help="MODEL:MODE[:BATCH],... (default: the five models, both modes)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    drv = load_driver()
    models = drv.load_models()
    pre = Preload()
    import torch

    torch.backends.cudnn.benchmark = False
    if args.configs:
        configs = []
        for item in args.configs.split(","):
            parts = item.split(":")
            m, mode = models.canonical_model(parts[0]), models.canonical_mode(parts[1])
            configs.append((m, mode, int(parts[2]) if len(parts) > 2 else models.default_batch(m, mode)))
    else:
        configs = [(m, mode, models.default_batch(m, mode)) for mode in models.MODES for m in models.MODELS]
    records = []
    ok = True
    print("interposer mode %d" % pre.mode(), flush=True)
    for model, mode, batch in configs:
        rec = {"model": model, "mode": mode, "batch": batch}
        t = time.time()
        try:
            wl = models.build(model, mode, batch, device="cuda", seed=1)
            for _ in range(args.warmup):
                wl.step()
            torch.cuda.synchronize()
            pre.reset()
            counts, launched_by, names, api_calls = profile_step(torch, wl, drv)
            st = pre.stats()
            cap = st["captured"]
            rec.update({"profiler": counts, "captured": cap, "calls": st["calls"], "nested": st["nested"],
                        "failed": st["failed"], "launched_by": launched_by, "api_calls": api_calls,
                        "kernels_by_api_and_name": names, "unwrapped": st["unwrapped"],
                        "wrapped_dlsym": st["wrapped_dlsym"], "wrapped_getproc": st["wrapped_getproc"]})
            rec["kernels_match"] = cap["kernels"] == counts["kernel"]
            rec["memcpy_match"] = cap["memcpy"] == counts["memcpy"]
            rec["memset_match"] = cap["memset"] == counts["memset"]
            ok = ok and rec["kernels_match"]
            wl.close()
            del wl
        except Exception as e:
            rec["error"] = "%s: %s" % (type(e).__name__, e)
            rec["traceback"] = traceback.format_exc().splitlines()[-8:]
            ok = False
        torch.cuda.empty_cache()
        rec["elapsed_s"] = time.time() - t
        records.append(rec)
        if "error" in rec:
            print("%-12s %-9s b%-3d ERROR %s" % (model, mode, batch, rec["error"]), flush=True)
        else:
            print("%-12s %-9s b%-3d kernels profiler %4d captured %4d %s | memcpy %d/%d memset %d/%d | calls %s | "
                  "launched by %s" % (model, mode, batch, counts["kernel"], rec["captured"]["kernels"],
                                      "OK" if rec["kernels_match"] else "MISMATCH", rec["captured"]["memcpy"],
                                      counts["memcpy"], rec["captured"]["memset"], counts["memset"],
                                      json.dumps(rec["calls"]), json.dumps(launched_by)), flush=True)
    final = pre.stats()
    doc = {"format": "orion-rs-preload-coverage/1", "ok": ok, "records": records,
           "lookups": final.get("lookups"), "torch": torch.__version__, "cuda": torch.version.cuda,
           "gpu": torch.cuda.get_device_name(0)}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1)
    print("coverage: %s" % ("every config matches" if ok else "MISMATCH or error"), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
