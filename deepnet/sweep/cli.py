"""Command line for sweeps: ``python -m deepnet sweep SPEC`` and ``python -m deepnet collect DIR``.

The same commands run as ``python -m deepnet.sweep sweep ...`` / ``python -m deepnet.sweep collect ...``.
"""
from __future__ import annotations

import argparse
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

from common.helpformat import HelpFormatter, command_parser
from deepnet.plugins import PluginError, add_import_argument, plugins_from_args
from deepnet.sweep.collect import SELECTIONS
from deepnet.sweep.tables import FORMATS
from deepnet.sweep.launchers import DEFAULT_LAUNCHER, LAUNCHERS, plan, run_sweep
from deepnet.sweep.spec import SpecError, load_spec, tomllib
from deepnet.sweep.states import RUN_STATES

SWEEP_EPILOG = """\
Each run gets a directory <root>/<config hash> (config.json, checkpoint.pt, result.json, done);
finished records are appended to <root>/results.jsonl. Re-running the same command skips finished
runs, resumes interrupted ones from their checkpoint and retries failed ones (error.txt).

Two launches on one root share the runs (a run trains only in the process owning its lock; the
other reports it busy). A done run whose record was trained on other data than --data-root gives
now stops the launch (exit 2) unless --accept-data-change. Exit codes: 0 every launched run ended
ok, diverged or busy elsewhere; 1 some run failed; 2 bad input, nothing run; 130 interrupted.

Several specs run as one sweep (their runs together, one root; --root is then required).
--adopt FILE.jsonl rebuilds a lost sweep directory from recorded results (e.g. committed data):
runs with a record are marked done without training, the others train.

examples:
  python -m deepnet sweep experiments/specs/smoke.toml --dry-run
  python -m deepnet sweep experiments/specs/offline_table_*.toml --root out/sweeps/offline_table --cpu-workers 2
  python -m deepnet sweep experiments/specs/offline_table_*.toml --root out/sweeps/offline_table \\
      --adopt experiments/results/offline/superseded/offline_table.jsonl --cpu-workers 2
  python -m deepnet sweep experiments/specs/table1.toml --no-pretrained --max-train-steps 2
  python -m deepnet sweep experiments/specs/table1.toml --launcher slurm \\
      --slurm slurm_partition=gpu --slurm timeout_min=720 --no-wait
  python -m deepnet collect out/sweeps/table1
"""

COLLECT_EPILOG = """\
For each (model, dataset, method) and seed the LR with the best ID-val accuracy is chosen (never on
OOD); accuracies are then averaged over seeds with a two-sided 90% Student-t interval (shown as
"mean ± half-width", in percent; the CSV holds fractions). --diff A-B pairs the two methods' chosen
runs by seed and gives the interval of the per-seed differences (in points). A dataset with several
OOD splits gets one column per split (no equal-weight ood_avg unless --ood-avg). A warning names
each cell whose chosen LR is at the edge of a grid of three or more LRs.

examples:
  python -m deepnet collect out/sweeps/table1 --out table1.md
  python -m deepnet collect out/sweeps/table1 --format latex --out table1.tex
  python -m deepnet collect out/sweeps/table1 --pivot ood_avg --methods sgd adamw sgd_freeze_embed
  python -m deepnet collect out/sweeps/table1 --diff sgd_freeze_embed-sgd --diff adamw-sgd
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sweep`` and ``collect`` subcommands (each sets ``func``: call ``args.func(args)``)."""
    sweep = subparsers.add_parser(
        "sweep",
        help="run a sweep spec (TOML): models x datasets x methods x LRs x seeds, resumable",
        description="Run every run of a sweep spec that is not done yet.",
        epilog=SWEEP_EPILOG,
        formatter_class=HelpFormatter,
    )
    sweep.add_argument("specs", nargs="+", type=Path, metavar="SPEC",
                       help="sweep spec(s), e.g. experiments/specs/table1.toml")
    sweep.add_argument("--root", type=Path,
                       help="sweep directory (default: out/sweeps/<spec name>; required with several specs)")
    sweep.add_argument("--launcher", choices=LAUNCHERS.names(), default=DEFAULT_LAUNCHER,
                       help="; ".join(f"{name}: {entry.help}" for name, entry in LAUNCHERS.items()))
    sweep.add_argument("--dry-run", action="store_true", help="list the runs and their state, run nothing")
    sweep.add_argument("--max-runs", type=int, metavar="N", help="launch at most N (>= 1) of the pending runs")
    sweep.add_argument("--accept-data-change", action="store_true",
                       help="count done runs as done even if their recorded data fingerprint differs from "
                            "the data the current --data-root gives")
    sweep.add_argument("--adopt", action="append", default=[], type=Path, metavar="FILE.jsonl",
                       help="first mark runs done from these result records (same config hash) instead "
                            "of training them, e.g. a lost sweep's committed results.jsonl (repeatable)")
    overrides = sweep.add_argument_group("run overrides (change the config hash unless execution-only)")
    overrides.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                           help="set a RunConfig field for every run (TOML value syntax), repeatable")
    overrides.add_argument("--no-pretrained", action="store_true", help="random weights (offline)")
    overrides.add_argument("--data-root", help="dataset root directory")
    overrides.add_argument("--epochs", type=int, help="epochs for every run (default: spec / paper)")
    overrides.add_argument("--max-train-steps", type=int, help="cap optimizer steps (smoke runs)")
    overrides.add_argument("--device", help="torch device, e.g. cpu or cuda (default: auto)")
    launch = sweep.add_argument_group("launchers")
    launch.add_argument("--gpus", nargs="+", type=int, metavar="ID",
                        help="local: the GPU ids to use, e.g. --gpus 0 2 (default: all visible)")
    launch.add_argument("--cpu-workers", type=int, default=1, metavar="N",
                        help="local without a GPU: N worker processes with cores/N torch threads each "
                             "(1: sequential in this process)")
    launch.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                        help="slurm: submitit AutoExecutor parameter over the spec's [slurm] table, "
                             "e.g. slurm_partition=gpu, timeout_min=720, gpus_per_node=1")
    launch.add_argument("--no-wait", action="store_true", help="slurm: return after submitting")
    launch.add_argument("--cluster", choices=["slurm", "local", "debug"],
                        help="slurm: submitit backend (default: Slurm when available)")
    launch.add_argument("--threads", type=int, metavar="N",
                        help="torch and BLAS threads of this process and of each CPU worker (default: torch's; "
                             "with --cpu-workers: cores / N)")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bars: one line per epoch instead")
    sweep.set_defaults(func=cmd_sweep)

    collect = subparsers.add_parser(
        "collect",
        help="tables from a sweep's results: best LR on ID val, mean and 90%% interval over seeds",
        description="Collect result records (results.jsonl) into a table.",
        epilog=COLLECT_EPILOG,
        formatter_class=HelpFormatter,
    )
    collect.add_argument("paths", nargs="+", type=Path, help="sweep directories or .jsonl files")
    collect.add_argument("--selection", choices=SELECTIONS, default=SELECTIONS[0],
                         help="per_seed: best LR per seed; mean: one LR per cell by mean ID val")
    collect.add_argument("--format", choices=FORMATS + ("markdown",),
                         help="output format, markdown also as md (default: from --out's suffix .md, .csv, "
                              ".tex or .json, else md)")
    collect.add_argument("--ood-avg", action="store_true",
                         help="keep the equal-weight ood_avg column for datasets with several OOD splits "
                              "(default: only one column per split)")
    collect.add_argument("--pivot", metavar="METRIC",
                         help="markdown, one metric (e.g. ood_avg, id_val, worst_group) with a column per "
                              "method and a row per model x dataset")
    collect.add_argument("--diff", action="append", default=[], metavar="A-B",
                         help="markdown, method A minus method B paired by seed, on --metric (repeatable), "
                              "e.g. --diff sgd_freeze_embed-sgd")
    collect.add_argument("--metric", default="ood_avg", help="the metric of --diff")
    collect.add_argument("--methods", nargs="+", metavar="METHOD",
                         help="only these methods, in this order (the pivot's columns)")
    collect.add_argument("--out", type=Path, help="write the table here (atomically) instead of stdout")
    collect.add_argument("--strict", action="store_true",
                         help="fail (exit 2) on a malformed line, an unreadable result.json or a record that is "
                              "not a run record, instead of skipping it with a warning")
    collect.set_defaults(func=cmd_collect)


def parse_assignments(items: list[str], what: str) -> dict[str, Any]:
    """``["a=1", "b=cpu"]`` -> ``{"a": 1, "b": "cpu"}``: values in TOML syntax, else plain strings.

    A plain string (``cpu``, ``False``) set on a RunConfig field is then accepted by its type
    check only for a string field or as a boolean spelling; anything else is an error naming the
    field (see :class:`~deepnet.config.RunConfig`).
    """
    result = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"{what} expects KEY=VALUE, got {item!r}")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        result[key.strip()] = value
    return result


def cmd_sweep(args: argparse.Namespace) -> int:
    from deepnet.sweep.runner import DataChangedError

    if len(args.specs) > 1 and args.root is None:
        print("error: several specs run as one sweep need --root DIR", file=sys.stderr)
        return 2
    if args.cpu_workers < 1:
        print(f"error: --cpu-workers must be >= 1, got {args.cpu_workers}", file=sys.stderr)
        return 2
    if args.threads is not None and args.threads < 1:
        print(f"error: --threads must be >= 1, got {args.threads}", file=sys.stderr)
        return 2
    if args.max_runs is not None and args.max_runs < 1:
        print(f"error: --max-runs must be >= 1, got {args.max_runs}", file=sys.stderr)
        return 2
    if args.root is not None and args.root.exists() and not args.root.is_dir():
        print(f"error: --root {args.root} exists and is not a directory", file=sys.stderr)
        return 2
    try:
        specs = [load_spec(path) for path in args.specs]
        overrides = parse_assignments(args.set, "--set")
        for flag, field in (("data_root", "data_root"), ("epochs", "epochs"),
                            ("max_train_steps", "max_train_steps"), ("device", "device")):
            if getattr(args, flag) is not None:
                overrides[field] = getattr(args, flag)
        if args.no_pretrained:
            overrides["pretrained"] = False
        overrides["plugins"] = args.imports
        cfgs = [cfg for spec in specs for cfg in spec.expand(overrides)]
        slurm = {**{k: v for spec in specs for k, v in spec.slurm.items()},
                 **parse_assignments(args.slurm, "--slurm")}
    except SpecError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    root = args.root or Path("out") / "sweeps" / specs[0].name
    if args.adopt:
        from common.io import read_jsonl
        from deepnet.sweep.runner import adopt_records

        try:
            records = [record for path in args.adopt for record in read_jsonl(path)]
            adopted, unmatched = adopt_records(cfgs, root, records, dry_run=args.dry_run)
        except (OSError, ValueError, KeyError) as err:
            print(f"error: --adopt: {err}", file=sys.stderr)
            return 2
        print(f"{'would adopt' if args.dry_run else 'adopted'} {adopted} recorded runs into {root}"
              + (f"; {unmatched} records match no run of the spec(s) and were ignored" if unmatched else ""))
    if args.dry_run:
        states = plan(cfgs, root)  # read-only: done runs' records are checked by the launch itself
        for cfg, state in states:
            print(f"{state:12s} {cfg.key()}  {cfg.run_name()}")
        counts = {s: sum(state == s for _, state in states) for s in RUN_STATES}
        print(f"{len(states)} runs under {root}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
        return 0
    if args.threads is not None:
        from deepnet.sweep.runner import set_threads

        set_threads(args.threads)
    options = LAUNCHERS.get(args.launcher).options(args, slurm)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # e.g. a file on the way
        print(f"error: cannot create the sweep directory {root}: {err.strerror or err}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        report = run_sweep(cfgs, root, launcher=args.launcher, max_runs=args.max_runs,
                           progress=not args.no_progress, accept_data_change=args.accept_data_change, **options)
    except DataChangedError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: run the same command again to resume ({root})", file=sys.stderr)
        return 130
    print(report.summary())
    print(f"results: {root / 'results.jsonl'}  (tables: python -m deepnet collect {root})")
    return 1 if report.failed else 0


def cmd_collect(args: argparse.Namespace) -> int:
    from common.io import write_text
    from deepnet.sweep.collect import load_records, lr_edge_warnings, paired_differences, per_split, select_best, summarize
    from deepnet.sweep.tables import (differences_to_markdown, to_csv, to_json, to_latex, to_markdown,
                                      to_pivot_markdown)

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            records = load_records(args.paths, strict=args.strict)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    if not records:
        print(f"error: no run records (records with a 'config') in {', '.join(map(str, args.paths))}",
              file=sys.stderr)
        return 2
    cells = select_best(records, args.selection)
    for message in lr_edge_warnings(cells):
        print(f"warning: {message}", file=sys.stderr)
    rows = summarize(cells) if args.ood_avg else per_split(summarize(cells))
    if args.methods:
        rows = [row for row in rows if row["method"] in args.methods]
        rows.sort(key=lambda row: args.methods.index(row["method"]))
    by_suffix = {".csv": "csv", ".tex": "latex", ".json": "json"}
    fmt = {"markdown": "md"}.get(args.format, args.format) or by_suffix.get(args.out.suffix if args.out else "", "md")
    if (args.pivot or args.diff) and fmt != "md":
        print("error: --pivot and --diff write markdown only", file=sys.stderr)
        return 2
    try:
        if args.diff:
            text = differences_to_markdown(paired_differences(cells, _method_pairs(args.diff, rows), args.metric))
        elif args.pivot:
            text = to_pivot_markdown(rows, args.pivot, args.methods)
        else:
            text = {"md": to_markdown, "csv": to_csv, "latex": to_latex, "json": to_json}[fmt](rows)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.out:
        write_text(args.out, text)
        print(f"{len(rows)} rows from {len(records)} runs -> {args.out}")
    else:
        print(text, end="")
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM handler: stop like Ctrl-C, so local workers are stopped with the sweep."""
    raise KeyboardInterrupt


def _method_pairs(items: list[str], rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """``["a-b"]`` -> ``[("a", "b")]``, both names among the collected methods."""
    known = sorted({row["method"] for row in rows})
    pairs = []
    for item in items:
        a, sep, b = item.partition("-")
        if not sep or a not in known or b not in known:
            raise ValueError(f"--diff expects A-B with methods from the results ({', '.join(known)}), got {item!r}")
        pairs.append((a, b))
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("python -m deepnet.sweep", "Sweeps of fine-tuning runs and their result tables.",
                            ["python -m deepnet.sweep sweep experiments/specs/smoke.toml --dry-run",
                             "python -m deepnet.sweep collect out/sweeps/smoke"])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="{sweep,collect}")
    add_parser(subparsers)
    for command in subparsers.choices.values():
        add_import_argument(command)
    args = parser.parse_args(argv)
    try:
        args.imports = plugins_from_args(args)
    except PluginError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return args.func(args)
