"""The GPU check's summary: our memory ratios beside the paper's, and the markdown pages.

The paper's memory comparisons come from the caller (``experiments.paper.memory.paper_memory_claims``
through ``python -m pipeline gpucheck``); :func:`memory_ratios` puts our measured ratio of the same
two methods beside each.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from deepnet.measure.plots import GIB

# our memory figures per (model, method) row, each a ratio column: (label, row -> bytes or None)
OURS: tuple[tuple[str, Callable[[dict[str, Any]], int | None]], ...] = (
    ("ours fp32, batch 1", lambda r: r["memory_fp32"]["held_bytes"]),
    ("ours bf16, batch 1", lambda r: r["memory_bf16"]["held_bytes"]),
    ("ours bf16, timed batch", lambda r: r["cuda_peak_bytes"]),
)


def memory_ratios(rows: list[dict[str, Any]], claims: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each paper comparison in ``claims`` with our ratios of the same two methods on the same model.

    Parameters
    ----------
    rows : list of dict
        :func:`deepnet.gpucheck.bench.measure_method` rows.
    claims : iterable of dict
        The paper's comparisons, each with ``model``, ``numerator`` and ``denominator`` methods
        (``experiments.paper.memory.paper_memory_claims``).

    Returns
    -------
    list of dict
        Each claim with one ratio per :data:`OURS` label; a ratio is None where either method was
        not measured (or, for the timed batch, off GPU).
    """
    held = {(r["model"], r["method"]): r for r in rows if "error" not in r}
    out = []
    for claim in claims:
        num, den = held.get((claim["model"], claim["numerator"])), held.get((claim["model"], claim["denominator"]))
        ours = {}
        for label, figure in OURS:
            a, b = (figure(num), figure(den)) if num and den else (None, None)
            ours[label] = a / b if a and b else None
        out.append({**claim, **ours})
    return out


# --- markdown -----------------------------------------------------------------------------------

def _num(v: float | None, fmt: str = ".3g") -> str:
    return "-" if v is None else format(v, fmt)


def _gib(v: int | None) -> str:
    return "-" if v is None else f"{v / GIB:.2f}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _tflops(v: float | None) -> str:
    return "-" if v is None else f"{v / 1e12:.4g}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def methods_table(rows: list[dict[str, Any]]) -> str:
    """Per model x method: images/s, step time, peak memory, FLOPs, achieved rate and MFU."""
    body = []
    for r in rows:
        if "error" in r:
            body.append([r["model"], r["method"], "error: " + r["error"].splitlines()[-1]] + [""] * 9)
            continue
        body.append([r["model"], r["method"], str(r["batch_size"]), _num(r["images_per_s"], ".1f"),
                     _num(r["step_ms_median"], ".1f"), _gib(r["cuda_peak_bytes"]),
                     _gib(r["memory_fp32"]["held_bytes"]), _gib(r["memory_bf16"]["held_bytes"]),
                     _num(r["flops_per_step"] / 1e9, ".4g"), _tflops(r["achieved_flops_per_s"]), _pct(r["mfu"]),
                     r["device_name"]])
    return _table(["model", "method", "batch", "img/s", "step ms", "peak GiB (batch)", "GiB fp32 b1",
                   "GiB bf16 b1", "GFLOP/step", "TFLOP/s", "MFU", "device"], body)


def ratios_table(ratios: list[dict[str, Any]]) -> str:
    """The Table 4 comparisons: paper text, paper cells and ours, side by side."""
    body = [[r["model"], f"{r['numerator']} / {r['denominator']}", r["where"], _num(r["paper_text"], ".2f"),
             _num(r["paper_table"], ".2f")] + [_num(r[label], ".2f") for label, _ in OURS] for r in ratios]
    return _table(["model", "memory ratio", "stated in", "paper text", "paper Table 4 cells"]
                  + [label for label, _ in OURS], body)


def speed_table(rows: list[dict[str, Any]]) -> str:
    """Per speed option: images/s, step time, peak memory, speed-up over its baseline, wall time."""
    body = []
    for r in rows:
        if "error" in r:
            body.append([r["variant"], "error: " + r["error"].splitlines()[-1], "", "", "", "", "", ""])
            continue
        body.append([r["variant"], r.get("options", "bf16 autocast, data loader"), _num(r["images_per_s"], ".1f"),
                     _num(r.get("step_ms_median"), ".1f"), _gib(r.get("cuda_peak_bytes")), _pct(r["mfu"]),
                     f"{_num(r.get('speedup'), '.3f')} (vs {r['baseline']})", _num(r.get("wall_s", r.get("seconds")), ".1f")])
    return _table(["variant", "options", "img/s", "step ms", "peak GiB", "MFU", "speed-up", "wall s"], body)


def profile_section(p: dict[str, Any], matmul: dict[str, Any] | None) -> str:
    """Where one step's time went, by kernel category, and how fast the matrix work ran."""
    rows = [[k, f"{1e3 * s:.2f}", _pct(p["fraction"][k])] for k, s in p["seconds"].items()]
    rows.append(["idle (no kernel running)" if "kernel" in p["timed"] else "outside operators",
                 f"{1e3 * p['idle_s']:.2f}", _pct(p["idle_s"] / p["wall_s"])])
    lines = [f"{p['model']} / {p['method']}, batch {p['batch_size']}, bf16; one step of {1e3 * p['wall_s']:.1f} ms "
             f"(the profiler's own overhead included), {p['timed']} timed.", "",
             _table(["category", "ms", "of the step"], rows), ""]
    rate = p["matrix_flops_per_s"]
    ceiling = matmul["flops_per_s"] if matmul else None
    lines.append(f"Counted FLOPs over the time in matrix-product, convolution and attention kernels: "
                 f"{_tflops(rate)} TFLOP/s" + (f" ({_pct(rate / ceiling)} of the measured ceiling)."
                                               if rate and ceiling else "."))
    lines += ["", "Top entries: " + "; ".join(f"{t['name'][:80]} ({1e3 * t['seconds']:.2f} ms, {t['category']})"
                                              for t in p["top"][:5])]
    return "\n".join(lines)


def render_summary(summary: dict[str, Any]) -> str:
    """The whole check as markdown (what ``summary.md`` holds)."""
    env = summary.get("env", {})
    lines = [f"# GPU check: {summary.get('device_name', '?')}", "",
             f"commit {summary.get('commit')}; torch {env.get('torch')}, timm {env.get('timm')}, "
             f"CUDA {env.get('cuda')}; plan {summary['plan_name']}; {summary.get('seconds', 0):.0f} s in all.", "",
             _table(["stage", "status", "seconds", "note"],
                    [[k, v["status"], _num(v.get("seconds"), ".1f"), v.get("note", v.get("error", "")).replace("\n", " ")[-200:]]
                     for k, v in summary["stages"].items()])]
    tests = summary.get("cuda_tests")
    if tests:
        lines += ["", "## CUDA tests (pytest -m cuda)", "",
                  f"{tests['passed']} passed, {tests['failed']} failed, {tests['errors']} errors, "
                  f"{tests['skipped']} skipped (pytest exit {tests['returncode']})", "",
                  _table(["test", "outcome", "message"],
                         [[c["name"], c["outcome"], c["message"][:160].replace("\n", " ").replace("|", "/")]
                          for c in tests["cases"]])]
    matmul = summary.get("matmul")
    if matmul:
        lines += ["", "## Matrix-product ceiling", "",
                  f"{matmul['n']}^3 {matmul['dtype']} product of random operands: {matmul['ms_median']:.3f} ms, "
                  f"{_tflops(matmul['flops_per_s'])} TFLOP/s median (best {_tflops(matmul['flops_per_s_best'])})."]
    if summary.get("methods"):
        lines += ["", "## Per method (random weights, bf16 autocast; peak and MFU at the timed batch; "
                      "b1 = one step at batch 1)", "", methods_table(summary["methods"]),
                  "", "MFU = FLOPs per step (FlopCounterMode) / median step time / the measured matrix-product rate."]
    if summary.get("memory_ratios"):
        lines += ["", "## Memory ratios beside Table 4", "", ratios_table(summary["memory_ratios"])]
    if summary.get("speed"):
        lines += ["", "## Speed options", "", speed_table(summary["speed"]), "",
                  "MFU here = the methods stage's FLOPs per step x images/s / batch / the matrix-product rate."]
    if summary.get("profile"):
        lines += ["", "## Profile of one step (torch.profiler)", "", profile_section(summary["profile"], matmul)]
    return "\n".join(lines) + "\n"


def render_readme_table(summary: dict[str, Any]) -> str:
    """The README's tables, from a summary: per method img/s, peak GiB and MFU, the Table 4 ratios
    beside ours, and the speed options' effect (``python -m pipeline gpucheck --render SUMMARY.json``)."""
    rows = [r for r in summary.get("methods", []) if "error" not in r]
    per_method = _table(["model", "method", "img/s", "peak GiB", "MFU"],
                        [[r["model"], r["method"], _num(r["images_per_s"], ".0f"), _gib(r["cuda_peak_bytes"]),
                          _pct(r["mfu"])] for r in rows])
    ratios = ratios_table(summary.get("memory_ratios", []))
    speed_rows = [r for r in summary.get("speed", []) if "error" not in r]
    speed = _table(["speed option", "img/s", "MFU", "speed-up"],
                   [[r["variant"], _num(r["images_per_s"], ".0f"), _pct(r["mfu"]),
                     f"{_num(r['speedup'], '.2f')} (vs {r['baseline']})"] for r in speed_rows])
    batches = ", ".join(sorted({f"{r['model']} {r['batch_size']}" for r in rows}))
    on = f"{speed_rows[0]['model']} / {speed_rows[0]['method']}" if speed_rows else "-"
    return (f"<!-- generated by python -m pipeline gpucheck --render from {summary.get('commit')} -->\n"
            f"On {summary.get('device_name')}, random weights, bf16 autocast, batch {batches}:\n\n"
            f"{per_method}\n\n{ratios}\n\nSpeed options on {on}:\n\n{speed}\n")
