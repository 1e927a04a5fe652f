"""The main job: theory verification, a small real deep-net comparison on offline data, the claims
report and the figures, all into one output folder; re-running resumes the sweep."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import experiments
from common.helpformat import add_command
from experiments.ledger import RESULTS_DIR

DEFAULT_SPEC = Path(experiments.__file__).resolve().parent / "specs" / "main_default.toml"


def _stage(name: str) -> None:
    print(f"\n=== {name} ===", flush=True)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``main`` command and its options to ``sub``; returns its parser."""
    main = add_command(sub, "main", help="the main job: offline deep-net sweep, theory checks, report, figures",
                       description="Runs, into --out: a small real deep-net sweep on offline data (resumes if re-run), "
                                   "the theory checks, the claims ledger (ledger.md / ledger.json) and the figures.",
                       examples=["python -m pipeline main", "python -m pipeline main --quick --out out/quick"])
    main.add_argument("--out", default="out/main", help="output folder")
    main.add_argument("--quick", action="store_true", help="1 theory instance per claim and 10 optimizer steps per run")
    main.add_argument("--instances", type=int, default=None,
                      help="random problems per theory check (default: each claim spec's; C9-C12: 8, fewer is indicative)")
    main.add_argument("--spec", type=Path, default=DEFAULT_SPEC, help="sweep spec for the deep-net stage")
    main.set_defaults(func=run)
    return main


def run_sweep_stage(spec_path: Path, root: Path, quick: bool) -> str:
    """Run (or resume) the deep-net sweep; returns a one-line status."""
    from deepnet.sweep import load_spec
    from deepnet.sweep.launchers import run_sweep

    spec = load_spec(spec_path)
    overrides = {"max_train_steps": 10} if quick else {}
    report = run_sweep(spec.expand(overrides), root, progress=True)
    return report.summary()


def run(args: argparse.Namespace) -> int:
    """The four stages into ``args.out`` (see the module docstring); 2 on a bad ``--instances``."""
    from common.io import write_text
    from experiments.ledger import build_ledger
    from experiments.report import console_table, write_reports

    instances = 1 if args.quick else args.instances
    if instances is not None and instances < 1:
        print(f"error: --instances must be >= 1, got {instances}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    status = {}

    _stage(f"1/4 deep-net comparison on offline data ({args.spec.name})")
    sweep_root = out / "sweep"
    try:
        status["sweep"] = run_sweep_stage(args.spec, sweep_root, args.quick)
    except Exception as err:  # one broken stage must not hide the others' results
        status["sweep"] = f"failed: {type(err).__name__}: {err}"
    print(status["sweep"])

    per_claim = "each claim spec's count of" if instances is None else str(instances)
    _stage(f"2/4 theory verification ({per_claim} instances per claim) + claims ledger")
    results = [RESULTS_DIR, sweep_root]
    rows = build_ledger(results, instances=instances, progress=True)
    print(console_table(rows))

    _stage("3/4 report")
    header = (f"Main job: theory checks with {per_claim} instances per claim; our runs from "
              f"experiments/results/ and this job's sweep ({args.spec.name}: {status['sweep'].splitlines()[0]}).")
    paths = write_reports(rows, out, header=header)
    print(f"wrote {paths['markdown']}, {paths['json']}")

    _stage("4/4 figures and tables")
    try:
        from paper_figs.build import build_figures

        made = build_figures(None, out / "figures", results=results)
        status["figures"] = f"{len(made)} files in {out / 'figures'}"
    except Exception as err:
        status["figures"] = f"failed: {type(err).__name__}: {err}"
    print(status["figures"])

    summary = "\n".join(f"{k}: {v}" for k, v in status.items()) + f"\ntotal time: {time.time() - t0:.0f} s\n"
    write_text(out / "main_status.txt", summary)
    print(f"\n{summary}")
    return 0
