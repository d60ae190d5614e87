#!/usr/bin/env python3
"""Correctness and overhead of liborion_preload.so for one client (one thread).

    python3 sched_check.py run --out FILE [--model resnet50] [--requests 200] [--iters 30]
    python3 sched_check.py compare BASE.pt OTHER.pt ...

`run` (under LD_PRELOAD or not) registers the thread as client 0 when the interposer is there,
brackets every step with request marks, and records: the outputs of one inference request and
the losses of three training iterations (same seeds; deterministic algorithms), then the wall
time of `--requests` back-to-back inference requests (batch 4) and `--iters` training
iterations (batch 32). `compare` prints the largest output difference and each run's
throughput against the first file's.
"""

import argparse
import ctypes
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = os.path.join(HERE, "..", "..", "workloads")


def load_driver():
    import importlib.util

    spec = importlib.util.spec_from_file_location("orion_workload_driver", os.path.join(WORKLOADS, "driver.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Marks:
    def __init__(self):
        lib = ctypes.CDLL(None)
        try:
            self.reg, self.b, self.e = lib.orion_register_client, lib.orion_request_begin, lib.orion_request_end
            self.b.argtypes = [ctypes.c_int, ctypes.c_uint64]
            self.stats_json = lib.orion_stats_json
            self.stats_json.restype = ctypes.c_size_t
            self.stats_json.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
            self.present = True
        except AttributeError:
            self.present = False

    def step(self, wl):
        if self.present:
            self.b(0, time.clock_gettime_ns(time.CLOCK_MONOTONIC))
        r = wl.step()
        if self.present:
            self.e(0)
        return r

    def stats(self):
        if not self.present:
            return None
        buf = ctypes.create_string_buffer(1 << 20)
        self.stats_json(buf, 1 << 20)
        return json.loads(buf.value.decode())


def run(args):
    drv = load_driver()
    models = drv.load_models()
    ns = argparse.Namespace(deterministic=True)
    torch = drv.import_torch(ns)
    marks = Marks()
    reg = int(marks.reg(0)) if marks.present else None
    res = {"preload": marks.present, "register": reg, "env": {k: os.environ.get(k) for k in
                                                              ("LD_PRELOAD", "ORION_PRELOAD_MODE", "ORION_PRELOAD_CONFIG")}}
    wl = models.build(args.model, "inference", 4, device="cuda", seed=1)
    for _ in range(10):
        marks.step(wl)
    res["infer_out"] = [t.clone() for t in marks.step(wl)]
    t = time.perf_counter()
    for _ in range(args.requests):
        marks.step(wl)
    res["infer_s"] = time.perf_counter() - t
    res["infer_per_s"] = args.requests / res["infer_s"]
    wl.close()
    wl = models.build(args.model, "training", 32, device="cuda", seed=1)
    res["losses"] = [marks.step(wl) for _ in range(3)]
    for _ in range(3):
        marks.step(wl)
    t = time.perf_counter()
    for _ in range(args.iters):
        marks.step(wl)
    res["train_s"] = time.perf_counter() - t
    res["train_per_s"] = args.iters / res["train_s"]
    res["stats"] = marks.stats()
    torch.save(res, args.out)
    print(json.dumps({k: v for k, v in res.items() if k not in ("infer_out", "stats")}), flush=True)
    if res["stats"]:
        print("stats: captured %s uncaptured %s schedule %s" % (res["stats"]["captured"], res["stats"].get("uncaptured"),
                                                              json.dumps(res["stats"].get("schedule"))), flush=True)
    return 0


def compare(args):
    import torch

    base = torch.load(args.files[0], weights_only=False)
    rows = []
    for f in args.files:
        r = torch.load(f, weights_only=False)
        diff = max(float((a - b).abs().max()) for a, b in zip(base["infer_out"], r["infer_out"]))
        loss_diff = max(abs(a - b) for a, b in zip(base["losses"], r["losses"]))
        row = {"file": os.path.basename(f), "mode": (r["env"] or {}).get("ORION_PRELOAD_MODE"),
               "preload": r["preload"], "max_abs_output_diff": diff, "max_abs_loss_diff": loss_diff,
               "infer_per_s": r["infer_per_s"], "train_per_s": r["train_per_s"],
               "infer_vs_base": r["infer_per_s"] / base["infer_per_s"] - 1,
               "train_vs_base": r["train_per_s"] / base["train_per_s"] - 1,
               "losses": r["losses"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", required=True)
    r.add_argument("--model", default="resnet50")
    r.add_argument("--requests", type=int, default=200)
    r.add_argument("--iters", type=int, default=30)
    c = sub.add_parser("compare")
    c.add_argument("files", nargs="+")
    c.add_argument("--out", default=None)
    args = p.parse_args()
    return run(args) if args.cmd == "run" else compare(args)


if __name__ == "__main__":
    sys.exit(main())
