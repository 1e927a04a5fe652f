"""The GPU check (``python -m pipeline gpucheck``) in tiny mode on the CPU (every stage, the output
files' content), its command line, and the Table 4 comparisons it is given from the paper's data."""
from __future__ import annotations

import csv
import json

import pytest
import torch

from common.io import read_json
from deepnet.gpucheck import cli, report
from deepnet.gpucheck.bench import categorize, time_breakdown
from experiments.paper.memory import paper_memory_claims
from pipeline import gpucheck

TABLE4_COMPARISONS = {("clip_vit_b16", "adamw", "sgd_freeze_embed"), ("clip_vit_b16", "adamw", "sgd_freeze_embed_no_momentum"),
                     ("clip_vit_l14", "adamw", "sgd_freeze_embed"), ("clip_vit_l14", "adamw", "sgd_freeze_embed_no_momentum")}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One tiny run shared by the tests below, on one torch thread (tiny operators gain nothing from
    two, and a loaded CI machine makes two threads wait on each other)."""
    out = tmp_path_factory.mktemp("gpucheck")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rc = gpucheck.main(["--tiny", "--device", "cpu", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    return rc, out, read_json(out / "summary.json")


def test_tiny_run_passes_every_stage(tiny):
    rc, _, s = tiny
    assert rc == 0
    assert list(s["stages"]) == list(cli.STAGES)
    assert all(st["status"] == "ok" for st in s["stages"].values()), s["stages"]
    assert s["device_name"].startswith("CPU") and s["plan_name"] == "tiny" and s["env"]["torch"] == torch.__version__


def test_cuda_tests_stage_collects_the_cuda_tests_and_skips_them_without_a_gpu(tiny):
    _, out, s = tiny
    t = s["cuda_tests"]
    assert t["returncode"] == 0 and t["passed"] == t["failed"] == t["errors"] == 0
    assert t["skipped"] == len(t["cases"]) >= 5 and all("test_cuda" in c["name"] for c in t["cases"])
    assert "skipped" in (out / "cuda_tests.log").read_text()


def test_methods_rows_measure_every_model_and_method(tiny):
    _, out, s = tiny
    rows = s["methods"]
    plan = cli.TINY
    assert [(r["model"], r["method"]) for r in rows] == [(m, k) for m, _ in plan.models for k in plan.methods]
    rate = s["matmul"]["flops_per_s"]
    assert rate > 0 and s["matmul"]["n"] == plan.matmul_n
    for r in rows:
        assert r["images_per_s"] > 0 and r["device_name"] == s["device_name"] and r["amp"]
        assert r["achieved_flops_per_s"] == pytest.approx(r["flops_per_step"] / (r["step_ms_median"] / 1e3))
        assert r["mfu"] == pytest.approx(r["achieved_flops_per_s"] / rate)
        assert sum(r["flops_by_op"].values()) == r["flops_per_step"] > 0
        for mem in (r["memory_fp32"], r["memory_bf16"]):
            assert mem["held_bytes"] == mem["accounted_bytes"] > mem["static_bytes"]  # CPU: activations counted
        assert r["memory_fp32"]["static_bytes"] == r["memory_bf16"]["static_bytes"]
    by = {(r["model"], r["method"]): r for r in rows}
    for model, _ in plan.models:
        # the optimizer adds no counted FLOPs; a frozen embedding drops its weight gradient
        assert by[model, "sgd"]["flops_per_step"] == by[model, "adamw"]["flops_per_step"]
        assert by[model, "sgd_freeze_embed"]["flops_per_step"] < by[model, "sgd"]["flops_per_step"]
        bpp = {k: by[model, k]["memory_fp32"]["bytes_per_trainable_param"] for k in plan.methods}
        assert bpp == {"sgd": 12, "adamw": 16, "sgd_freeze_embed": 12, "sgd_freeze_embed_no_momentum": 8,
                       "adamw_freeze_embed": 16}
    with open(out / "methods.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows) and float(table[0]["mfu"]) == pytest.approx(rows[0]["mfu"])


def test_speed_stage_measures_each_option_against_its_baseline(tiny):
    _, _, s = tiny
    rows = {r["variant"]: r for r in s["speed"]}
    assert set(rows) >= {v.name for v in cli.SPEED_VARIANTS} | {"bf16 (again)"}
    loaders = [r for r in s["speed"] if "pin_memory" in r]
    assert [(r["pin_memory"], r["persistent_workers"]) for r in loaders] == list(cli.LOADER_VARIANTS)
    flops = next(m["flops_per_step"] for m in s["methods"] if (m["model"], m["method"], m["batch_size"])
                 == (cli.TINY.speed_model, cli.TINY.speed_method, cli.TINY.speed_batch))
    for r in s["speed"]:
        assert "error" not in r and r["images_per_s"] > 0
        assert r["speedup"] == pytest.approx(r["images_per_s"] / rows[r["baseline"]]["images_per_s"])
        assert r["mfu"] == pytest.approx(flops * r["images_per_s"] / r["batch_size"] / s["matmul"]["flops_per_s"])
    assert rows["bf16"]["speedup"] == 1.0 and rows["fp32 + TF32"]["baseline"] == "fp32"
    assert "torch.compile (eager)" in rows["bf16 + compile"]["options"]
    assert all(r["baseline"] == loaders[0]["variant"] for r in loaders)


def test_profile_stage_splits_the_step_and_writes_the_trace(tiny):
    _, out, s = tiny
    p = s["profile"]
    assert p["busy_s"] == pytest.approx(sum(p["seconds"].values())) and p["busy_s"] > 0
    assert p["idle_s"] == pytest.approx(max(p["wall_s"] - p["busy_s"], 0.0))
    assert "matmul" in p["seconds"] and p["matrix_flops_per_s"] > 0
    trace = json.loads((out / "profile_trace.json").read_text())
    assert any("aten::" in e.get("name", "") for e in trace["traceEvents"])
    assert "Self CPU" in (out / "profile_ops.txt").read_text()


def test_summary_pages_are_generated_from_the_summary(tiny, capsys):
    _, out, s = tiny
    md = (out / "summary.md").read_text()
    assert md == report.render_summary(s)
    for heading in ("## CUDA tests", "## Matrix-product ceiling", "## Per method", "## Memory ratios beside Table 4",
                    "## Speed options", "## Profile of one step"):
        assert heading in md
    assert gpucheck.main(["--render", str(out / "summary.json")]) == 0
    readme = capsys.readouterr().out
    assert readme == (out / "readme_table.md").read_text()
    assert all(f"| {m} | {k} |" in readme for m, _ in cli.TINY.models for k in cli.TINY.methods)


def test_paper_memory_claims_come_from_the_papers_data():
    claims = paper_memory_claims()
    assert {(c["model"], c["numerator"], c["denominator"]) for c in claims} >= TABLE4_COMPARISONS
    for c in claims:  # the text's percentages round the same memory the table's 0.1 GB cells round
        assert c["paper_text"] == pytest.approx(c["paper_table"], abs=0.03), c["id"]


def test_memory_ratios_join_our_rows_to_the_paper_claims(tiny):
    _, _, s = tiny
    assert [r["id"] for r in s["memory_ratios"]] == [c["id"] for c in paper_memory_claims()]
    assert all(r[label] is None for r in s["memory_ratios"] for label, _ in report.OURS)  # no CLIP model measured
    model = cli.TINY.models[0][0]
    as_b16 = [{**r, "model": "clip_vit_b16"} for r in s["methods"] if r["model"] == model]
    ratios = [r for r in report.memory_ratios(as_b16, paper_memory_claims()) if r["model"] == "clip_vit_b16"]
    held = {r["method"]: r["memory_fp32"]["held_bytes"] for r in as_b16}
    assert ratios and all(r["ours fp32, batch 1"] == held[r["numerator"]] / held[r["denominator"]] for r in ratios)
    assert all(r["ours bf16, timed batch"] is None for r in ratios)  # no CUDA peak on the CPU


def test_deadline_skips_the_measurements_left(tmp_path):
    assert gpucheck.main(["--tiny", "--device", "cpu", "--stages", "methods", "--deadline-s", "1e-9",
                     "--out", str(tmp_path)]) == 0
    s = read_json(tmp_path / "summary.json")
    n = len(cli.TINY.models) * len(cli.TINY.methods)
    assert s["methods"] == [] and s["stages"]["methods"]["note"] == f"{n} skipped past the deadline"


@pytest.mark.parametrize("argv, message", [
    (["--device", "cpu"], "--out is required"),
    (["--device", "cpu", "--deadline-s", "0", "--out", "x"], "--deadline-s must be > 0"),
    (["--device", "meta", "--out", "x"], "--device must be cuda"),
    (["--stages", "bogus", "--out", "x"], "invalid choice"),
    (["--render", "no/such/summary.json"], "no file"),
])
def test_bad_input_exits_2_with_a_clear_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        gpucheck.main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_device_without_a_gpu_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        gpucheck.main(["--out", "x"])
    assert exc.value.code == 2 and "no CUDA device" in capsys.readouterr().err


def test_kernel_categories_and_breakdown():
    names = {"sm90_xmma_gemm_bf16bf16_bf16f32": "matmul", "aten::mm": "matmul", "nvjet_tst_128x256": "matmul",
             "pytorch_flash::flash_bwd_kernel": "attention", "cudnn::fprop_implicit_gemm": "convolution",
             "multi_tensor_apply_kernel": "optimizer", "vectorized_layer_norm_kernel": "normalization",
             "Memcpy HtoD (Pageable -> Device)": "copy", "vectorized_elementwise_kernel<GeluCUDAKernel>": "elementwise/other"}
    assert {n: categorize(n) for n in names} == names
    b = time_breakdown([("aten::mm", 0.3), ("flash_fwd", 0.1), ("aten::mm", 0.2)], wall_s=1.0)
    assert b["seconds"] == {"matmul": 0.5, "attention": 0.1} and b["idle_s"] == pytest.approx(0.4)
    assert b["fraction"]["matmul"] == 0.5 and b["top"][0] == {"name": "aten::mm", "seconds": 0.3, "category": "matmul"}
