#!/usr/bin/env python3
"""Correctness and overhead of liborion_preload.so for one client (one thread).

    python3 sched_check.py run --out FILE [--model resnet50] [--requests 200] [--iters 30]
        [--infer-batch 4] [--train-batch 32] [--no-deterministic] [--blocks K]
    python3 sched_check.py compare BASE.pt OTHER.pt ...

`run` (under LD_PRELOAD or not) registers the thread as client 0 for the inference phase and
as client 1 for the training phase when the interposer is there (a scheduling configuration
names two clients: the inference and the training profile), runs each phase on its own CUDA
stream (made to wait for the default stream first: an event record and a stream wait),
brackets every step with request marks, and records: the outputs of one inference request and
the losses of three training iterations (same seeds; deterministic algorithms unless
`--no-deterministic`), then the wall time of `--requests` back-to-back inference requests and
`--iters` training iterations. PyTorch runs `backward()` on its autograd thread, which is not
a registered client: the interposer must give that work to the client of the stream.
`compare` prints the largest output and loss differences and each run's throughput against the
first file's.
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

    def step(self, wl, cid):
        if self.present:
            self.b(cid, time.clock_gettime_ns(time.CLOCK_MONOTONIC))
        r = wl.step()
        if self.present:
            self.e(cid)
        return r

    def stats(self):
        if not self.present:
            return None
        buf = ctypes.create_string_buffer(1 << 20)
        self.stats_json(buf, 1 << 20)
        return json.loads(buf.value.decode())


def timed(res, phase, steps, blocks, step):
    """Times `steps` steps of `phase`: `step(True)` runs one with request marks (scheduled by
    the interposer when it is there), `step(False)` one without (the interposer passes an
    unmarked step's calls straight through: a registered client is captured only inside a
    request). With `blocks` = 0 every step is marked. With `blocks` = K > 0 the steps are
    split into K pairs of blocks, one marked and one not, in the order AB BA AB ... so that a
    drift of the host's speed (seen: 33-63% between processes minutes apart) falls on both
    alike; `res[phase + "_blocks"]` lists [marked, seconds, steps] per block, and
    `<phase>_per_s` / `<phase>_plain_per_s` are the rates of the marked / unmarked blocks."""
    if blocks <= 0:
        t = time.perf_counter()
        for _ in range(steps):
            step(True)
        res[phase + "_s"] = time.perf_counter() - t
        res[phase + "_per_s"] = steps / res[phase + "_s"]
        return
    per = max(1, steps // (2 * blocks))
    rows = []
    for k in range(2 * blocks):
        marked = (k % 2 == 0) == ((k // 2) % 2 == 0)
        t = time.perf_counter()
        for _ in range(per):
            step(marked)
        rows.append([marked, time.perf_counter() - t, per])
    res[phase + "_blocks"] = rows
    for key, want in (("_per_s", True), ("_plain_per_s", False)):
        n = sum(r[2] for r in rows if r[0] == want)
        s = sum(r[1] for r in rows if r[0] == want)
        res[phase + key] = n / s
    res[phase + "_s"] = sum(r[1] for r in rows if r[0])


def run(args):
    drv = load_driver()
    models = drv.load_models()
    ns = argparse.Namespace(deterministic=not args.no_deterministic)
    torch = drv.import_torch(ns)
    marks = Marks()
    res = {"preload": marks.present, "model": args.model, "env": {k: os.environ.get(k) for k in
                                                                  ("LD_PRELOAD", "ORION_PRELOAD_MODE", "ORION_PRELOAD_CONFIG")}}
    res["register"] = int(marks.reg(0)) if marks.present else None
    wl = models.build(args.model, "inference", args.infer_batch, device="cuda", seed=1)
    st = torch.cuda.Stream()
    st.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(st):
        for _ in range(args.infer_warmup):
            marks.step(wl, 0)
        res["infer_out"] = [t.clone() for t in marks.step(wl, 0)]
        timed(res, "infer", args.requests, args.blocks, lambda marked: marks.step(wl, 0) if marked else wl.step())
    torch.cuda.synchronize()
    wl.close()
    if marks.present:
        res["register_train"] = int(marks.reg(1))
    wl = models.build(args.model, "training", args.train_batch, device="cuda", seed=1)
    st = torch.cuda.Stream()
    st.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(st):
        res["losses"] = [marks.step(wl, 1) for _ in range(3)]
        for _ in range(args.train_warmup):
            marks.step(wl, 1)
        timed(res, "train", args.iters, args.blocks, lambda marked: marks.step(wl, 1) if marked else wl.step())
    torch.cuda.synchronize()
    time.sleep(0.1)  # the scheduler publishes its counters every 20 ms
    res["stats"] = marks.stats()
    torch.save(res, args.out)
    print(json.dumps({k: v for k, v in res.items() if k not in ("infer_out", "stats")}), flush=True)
    st = res["stats"]
    if st:
        print("stats: captured %s uncaptured %s failure_logged %s" % (st["captured"], st.get("uncaptured"),
                                                                     st.get("failure_logged")), flush=True)
        sch = st.get("schedule") or {}
        for c in sch.get("clients", []):
            c = dict(c)
            if isinstance(c.get("latency"), dict):
                c["latency"] = {k: v for k, v in c["latency"].items() if k != "requests_ns"}
            print("client: " + json.dumps(c), flush=True)
        print("schedule: " + json.dumps({k: v for k, v in sch.items() if k != "clients"}), flush=True)
    return 0


def compare(args):
    import torch

    base = torch.load(args.files[0], weights_only=False)
    rows = []
    for f in args.files:
        r = torch.load(f, weights_only=False)
        diff = max(float((a - b).abs().max()) for a, b in zip(base["infer_out"], r["infer_out"]))
        loss_diff = max(abs(a - b) for a, b in zip(base["losses"], r["losses"]))
        loss_rel = max(abs(a - b) / max(abs(a), 1e-12) for a, b in zip(base["losses"], r["losses"]))
        row = {"file": os.path.basename(f), "mode": (r["env"] or {}).get("ORION_PRELOAD_MODE"),
               "preload": r["preload"], "max_abs_output_diff": diff, "max_abs_loss_diff": loss_diff, "max_rel_loss_diff": loss_rel,
               "model": r.get("model"), "config": (r["env"] or {}).get("ORION_PRELOAD_CONFIG"),
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
    r.add_argument("--infer-batch", type=int, default=4)
    r.add_argument("--train-batch", type=int, default=32)
    r.add_argument("--infer-warmup", type=int, default=10, help="untimed inference requests first")
    r.add_argument("--train-warmup", type=int, default=3, help="untimed training iterations first (after 3 more)")
    r.add_argument("--no-deterministic", action="store_true")
    r.add_argument("--blocks", type=int, default=0,
                   help="time the steps as this many pairs of blocks, marked (scheduled) and unmarked (passed through), "
                        "alternating AB BA ...; 0: every step marked")
    c = sub.add_parser("compare")
    c.add_argument("files", nargs="+")
    c.add_argument("--out", default=None)
    args = p.parse_args()
    return run(args) if args.cmd == "run" else compare(args)


if __name__ == "__main__":
    sys.exit(main())
