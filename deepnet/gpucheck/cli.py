"""The suite on a real GPU, one prepared check: ``python -m pipeline gpucheck --out DIR``.

Stages, in this order (the CUDA tests first, while this process holds no GPU memory):

``cuda_tests``  ``pytest -m cuda tests/cuda`` in a child process: bf16 autocast of the real ViT-B/16
    against float64, fp16 + GradScaler, channels_last ConvNeXt, ``measure memory --device cuda``
    against the exact accounting, a DDP step over NCCL at world size 1;
``matmul``      the bf16 matrix-product rate of this device, measured now (the MFU denominator);
``methods``     per model x method (random weights, bf16 autocast): images/s, step time and peak
    memory of timed steps, memory of one step at batch 1 in fp32 and bf16, FLOPs per step
    (FlopCounterMode) and MFU; the memory ratios beside the SGD paper's Table 4 (the comparisons
    the caller passes in: ``python -m pipeline gpucheck`` passes the paper's);
``profile``     one step under torch.profiler: a Chrome trace, the top operators, the step split
    into kernel categories (what bounds MFU);
``speed``       the speed options on one model and method: fused optimizer, TF32, pinned memory and
    persistent loader workers, torch.compile, each against its baseline, and the baseline again.

Everything goes under ``--out``: ``summary.json``, ``summary.md``, ``readme_table.md`` (the README
tables, generated), ``methods.jsonl/.csv``, ``speed.jsonl/.csv``, the profile files and the CUDA
tests' log and JUnit XML, each written atomically and the summary rewritten after every stage (a
run cut short keeps what it finished). Past ``--deadline-s`` no new measurement starts. Exit status:
0 when every stage passed, 1 when one failed, 2 on bad input.
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from common.helpformat import HelpFormatter, example_epilog
from common.io import read_json, write_json, write_text
from common.provenance import git_commit
from deepnet.gpucheck import bench, report
from deepnet.gpucheck.cudatests import run_cuda_tests
from deepnet.measure.output import write_rows
from deepnet.results import environment

PROG = "python -m pipeline gpucheck"
STAGES = ("cuda_tests", "matmul", "methods", "profile", "speed")
METHODS = ("sgd", "adamw", "sgd_freeze_embed", "sgd_freeze_embed_no_momentum", "adamw_freeze_embed")


@dataclass(frozen=True)
class Plan:
    """What one check measures.

    ``models`` pairs each model with its timed batch size; ``speed_*`` name the model, method and
    batch the speed options and the profile are measured on; ``loader_*`` size the data-loader
    runs; ``compile_backend`` is torch.compile's; ``deadline_s`` the time after which no new
    measurement starts, and ``compile_needs_s`` the time a compiled variant needs left to start.
    """

    name: str
    models: tuple[tuple[str, int], ...]
    methods: tuple[str, ...]
    steps: int
    warmup: int
    matmul_n: int
    speed_model: str
    speed_method: str
    speed_batch: int
    loader_workers: int
    loader_batches: int
    loader_epochs: int
    compile_backend: str
    deadline_s: float
    compile_needs_s: float


# One H200: ViT-B/16 at batch 256 and ViT-L/14 at 128 keep it busy (about 16 and 30 GB of bf16
# activations); five methods each, the speed options and the profile fit in 6.5 minutes, where
# inductor's compilation of ViT-B/16 (forward and backward) takes one to two of them.
FULL = Plan(name="full", models=(("clip_vit_b16", 256), ("clip_vit_l14", 128)), methods=METHODS, steps=10, warmup=3,
            matmul_n=8192, speed_model="clip_vit_b16", speed_method="sgd", speed_batch=256, loader_workers=8,
            loader_batches=6, loader_epochs=3, compile_backend="inductor", deadline_s=390, compile_needs_s=120)
# Every stage on a CPU in seconds: the two small offline models, two timed steps, torch.compile's
# "eager" backend (graph capture without code generation, which takes minutes on a CPU).
TINY = Plan(name="tiny", models=(("small_vit", 4), ("small_resnet", 4)), methods=METHODS, steps=1, warmup=1,
            matmul_n=256, speed_model="small_vit", speed_method="sgd", speed_batch=4, loader_workers=2,
            loader_batches=2, loader_epochs=2, compile_backend="eager", deadline_s=300, compile_needs_s=0)

SPEED_VARIANTS = (
    bench.Variant("bf16", "bf16"),
    bench.Variant("bf16 + fused optimizer", "bf16", fused=True),
    bench.Variant("fp32", "fp32", amp=False),
    bench.Variant("fp32 + TF32", "fp32", amp=False, tf32=True),
    bench.Variant("bf16 + compile", "bf16", compile=True),
    bench.Variant("bf16 + compile + fused optimizer", "bf16", compile=True, fused=True),
)
# (pinned memory, persistent workers); the first is the others' baseline
LOADER_VARIANTS = ((False, False), (True, False), (True, True))


class Check:
    """One run of the check: its plan, device, output folder, clock and the summary it builds."""

    def __init__(self, plan: Plan, device: torch.device, out: Path, argv: list[str], commit: str | None,
                 memory_claims: Sequence[dict[str, Any]] = ()) -> None:
        self.plan, self.device, self.out = plan, device, out
        self.memory_claims = memory_claims
        self.start = time.perf_counter()
        self.summary: dict[str, Any] = {
            "plan_name": plan.name, "plan": dataclasses.asdict(plan), "commit": commit,
            "command": f"{PROG} " + " ".join(argv), "device": str(device),
            "device_name": bench.device_name(device), "env": environment(device), "stages": {},
        }

    def time_left(self) -> float:
        return self.plan.deadline_s - (time.perf_counter() - self.start)

    def run(self, stages: list[str]) -> bool:
        """Run ``stages`` in :data:`STAGES` order, writing the outputs after each; True if all passed."""
        for name in (s for s in STAGES if s in stages):
            t0 = time.perf_counter()
            print(f"--- {name}", flush=True)
            try:
                status, note = getattr(self, f"stage_{name}")()
                record = {"status": status, "note": note}
            except Exception as err:  # a broken stage must not cost the others their device time
                record = {"status": "error", "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
                print(record["traceback"], file=sys.stderr, flush=True)
            gc.collect()
            bench.release(self.device)
            self.summary["stages"][name] = {**record, "seconds": time.perf_counter() - t0}
            self.summary["seconds"] = time.perf_counter() - self.start
            self.write()
        return all(s["status"] == "ok" for s in self.summary["stages"].values())

    def write(self) -> None:
        """summary.json, summary.md, readme_table.md and the row files, each atomically."""
        s = self.summary
        write_json(self.out / "summary.json", s)
        write_text(self.out / "summary.md", report.render_summary(s))
        write_text(self.out / "readme_table.md", report.render_readme_table(s))
        for stem in ("methods", "speed"):
            if s.get(stem):
                write_rows(self.out, stem, s[stem])

    def _each(self, items: list[Any], measure: Callable[[Any], dict[str, Any]],
              label: Callable[[Any], dict[str, Any]],
              needs_s: Callable[[Any], float] = lambda item: 0.0) -> tuple[list[dict[str, Any]], str]:
        """``measure`` each item while more than ``needs_s(item)`` seconds are left before the
        deadline; an item that raises gives an error row."""
        rows, skipped = [], 0
        for item in items:
            if self.time_left() <= needs_s(item):
                skipped += 1
                continue
            try:
                rows.append(measure(item))
            except Exception as err:
                rows.append({**label(item), "error": f"{type(err).__name__}: {err}"})
                print(traceback.format_exc(), file=sys.stderr, flush=True)
                gc.collect()
                bench.release(self.device)
            print(_row_line(rows[-1]), flush=True)
        return rows, f"{skipped} skipped past the deadline" if skipped else ""

    # --- stages: each returns (status, note) ------------------------------------------------------
    def stage_cuda_tests(self) -> tuple[str, str]:
        result = run_cuda_tests(self.out, timeout_s=max(self.time_left(), 60))
        self.summary["cuda_tests"] = result
        ok = result["returncode"] == 0 and not result["failed"] and not result["errors"]
        note = f"{result['passed']} passed, {result['failed']} failed, {result['errors']} errors, {result['skipped']} skipped"
        return ("ok" if ok else "failed"), note

    def stage_matmul(self) -> tuple[str, str]:
        m = bench.matmul_rate(self.device, self.plan.matmul_n, torch.bfloat16)
        self.summary["matmul"] = m
        return "ok", f"{m['flops_per_s'] / 1e12:.4g} TFLOP/s bf16"

    def stage_methods(self) -> tuple[str, str]:
        rate = self.summary.get("matmul", {}).get("flops_per_s")
        items = [(model, batch, method) for model, batch in self.plan.models for method in self.plan.methods]
        rows, note = self._each(
            items, lambda it: bench.measure_method(it[0], it[2], it[1], self.device, self.plan.steps, self.plan.warmup, rate),
            lambda it: {"model": it[0], "batch_size": it[1], "method": it[2]})
        self.summary["methods"] = rows
        self.summary["memory_ratios"] = report.memory_ratios(rows, self.memory_claims)
        return ("error" if any("error" in r for r in rows) else "ok"), note

    def stage_profile(self) -> tuple[str, str]:
        p = self.plan
        profile = bench.profile_step(p.speed_model, p.speed_method, p.speed_batch, self.device, p.warmup, self.out)
        self.summary["profile"] = profile
        return "ok", f"idle {profile['idle_s'] / profile['wall_s']:.1%} of a {1e3 * profile['wall_s']:.1f} ms step"

    def stage_speed(self) -> tuple[str, str]:
        p = self.plan
        common = dict(model_name=p.speed_model, method_name=p.speed_method, batch_size=p.speed_batch, device=self.device)
        items: list[Any] = [v for v in SPEED_VARIANTS if not v.compile]
        items += list(LOADER_VARIANTS) + [v for v in SPEED_VARIANTS if v.compile] + [bench.Variant("bf16 (again)", "bf16")]

        def measure(item: Any) -> dict[str, Any]:
            if isinstance(item, bench.Variant):
                return bench.speed_variant(item, steps=p.steps, warmup=p.warmup, compile_backend=p.compile_backend, **common)
            pin, persistent = item
            return bench.loader_throughput(workers=p.loader_workers, pin_memory=pin, persistent_workers=persistent,
                                           batches=p.loader_batches, epochs=p.loader_epochs, **common)

        def label(item: Any) -> dict[str, Any]:
            return {"variant": item.name if isinstance(item, bench.Variant) else f"loader {item}"}

        rows, note = self._each(items, measure, label, needs_s=lambda item: p.compile_needs_s
                                if isinstance(item, bench.Variant) and item.compile else 0.0)
        loader_base = next((r["variant"] for r in rows if "pin_memory" in r), None)
        for r in rows:
            r.setdefault("baseline", loader_base)
        by_name = {r["variant"]: r for r in rows if "error" not in r}
        # MFU from images/s, with the FLOPs the methods stage counted for this model, method and batch
        flops = next((m["flops_per_step"] for m in self.summary.get("methods", []) if "error" not in m
                      and (m["model"], m["method"], m["batch_size"]) == (p.speed_model, p.speed_method, p.speed_batch)),
                     None)
        rate = self.summary.get("matmul", {}).get("flops_per_s")
        for r in rows:
            base = by_name.get(r["baseline"])
            r["speedup"] = r["images_per_s"] / base["images_per_s"] if base and "error" not in r else None
            r["mfu"] = (flops * r["images_per_s"] / r["batch_size"] / rate
                        if flops and rate and "error" not in r else None)
        self.summary["speed"] = rows
        return ("error" if any("error" in r for r in rows) else "ok"), note


def _row_line(row: dict[str, Any]) -> str:
    """One printed line per measurement, so the device's output tail shows progress."""
    keys = ("model", "method", "variant", "batch_size", "images_per_s", "step_ms_median", "cuda_peak_bytes", "mfu", "error")
    return "  " + " ".join(f"{k}={row[k]:.4g}" if isinstance(row.get(k), float) else f"{k}={row[k]}"
                           for k in keys if row.get(k) is not None)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=HelpFormatter,
        epilog=example_epilog(
            [f"{PROG} --out /tmp/gpucheck                       # one GPU, about 6.5 minutes",
             f"{PROG} --tiny --device cpu --out /tmp/gpucheck   # every stage on the CPU in seconds",
             f"{PROG} --stages methods speed --out /tmp/again   # a rerun of two stages",
             f"{PROG} --render experiments/results/gpu/summary.json   # print the README tables"],
            notes="On the device machine: scripts/gpu_check.sh \"$OUT\" (packs the folder into the files a call "
                  "returns)."))
    p.add_argument("--out", type=Path, help="output folder (required unless --render)")
    p.add_argument("--device", default="cuda", help="cuda, cuda:1, ... or cpu")
    p.add_argument("--tiny", action="store_true",
                   help=f"small models and few steps: {', '.join(m for m, _ in TINY.models)} instead of "
                        f"{', '.join(m for m, _ in FULL.models)}")
    p.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES), metavar="STAGE",
                   help=f"stages to run, of {', '.join(STAGES)}")
    p.add_argument("--deadline-s", type=float, default=None,
                   help=f"start no measurement after this many seconds (default {FULL.deadline_s:g}, "
                        f"--tiny {TINY.deadline_s:g})")
    p.add_argument("--commit", default=None,
                   help="the code's git commit to record (default: asked of git; a device machine "
                        "receives the working tree without its history)")
    p.add_argument("--render", type=Path, default=None, metavar="SUMMARY_JSON",
                   help="print the README tables generated from a summary.json and exit")
    return p


def main(argv: list[str] | None = None, memory_claims: Sequence[dict[str, Any]] = ()) -> int:
    """Run the check (or ``--render``); ``memory_claims`` are the paper comparisons the methods
    stage's memory ratios are put beside (:func:`deepnet.gpucheck.report.memory_ratios`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    a = parser.parse_args(argv)
    if a.render is not None:
        if not a.render.is_file():
            parser.error(f"--render: no file {a.render}")
        print(report.render_readme_table(read_json(a.render)), end="")
        return 0
    if a.out is None:
        parser.error("--out is required (or --render SUMMARY_JSON)")
    try:
        device = torch.device(a.device)
    except RuntimeError as err:
        parser.error(f"--device {a.device!r}: {err}")
    if device.type not in ("cuda", "cpu"):
        parser.error(f"--device must be cuda[:i] or cpu, got {a.device!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device here: pass --device cpu (with --tiny for a run in seconds)")
    plan = TINY if a.tiny else FULL
    if a.deadline_s is not None:
        if a.deadline_s <= 0:
            parser.error(f"--deadline-s must be > 0, got {a.deadline_s}")
        plan = dataclasses.replace(plan, deadline_s=a.deadline_s)
    check = Check(plan, device, a.out, argv, a.commit or git_commit(), memory_claims)
    ok = check.run(a.stages)
    print(report.render_summary(check.summary), end="")
    return 0 if ok else 1
