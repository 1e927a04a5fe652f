"""The README walk-through (between its ``walkthrough`` markers), run exactly as written on a
generated folder dataset: check the layout, sweep with a plugin, collect a LaTeX table, plot the
curves; in under a minute."""
from __future__ import annotations

import re
import shlex
import time
from pathlib import Path

import pytest

from deepnet.__main__ import main
from deepnet.data import DATASETS
from deepnet.methods import METHODS
from deepnet.plot import find_runs, plot_runs
from common.io import read_jsonl

from tests.helpers import make_folder

README = Path(__file__).resolve().parents[2] / "README.md"


def walkthrough() -> dict[str, list[str]]:
    """The README section's fenced blocks by language (python, toml, bash)."""
    text = README.read_text()
    section = text[text.index("<!-- walkthrough"):text.index("<!-- /walkthrough -->")]
    blocks: dict[str, list[str]] = {}
    for lang, body in re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S):
        blocks.setdefault(lang, []).append(body)
    return blocks


@pytest.fixture
def registries():
    yield
    METHODS._items.pop("my_sgd", None)
    for name in ("my_shift", "my_dataset"):  # the sweep's, and the layout check's default name
        DATASETS._items.pop(name, None)


def test_readme_walkthrough_runs_as_written(tmp_path, monkeypatch, registries, capsys):
    blocks = walkthrough()
    (plugin,), (spec,), (commands,) = blocks["python"], blocks["toml"], blocks["bash"]
    monkeypatch.chdir(tmp_path)
    Path("my_plugin.py").write_text(plugin)
    Path("my_shift.toml").write_text(spec)
    make_folder(Path("data/my_shift"), classes=("cat", "dog"), per_class=2)
    lines = [line.split("#")[0].strip() for line in commands.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 5 and all(line.startswith("python -m deepnet ") for line in lines)

    t0 = time.time()
    outputs = []
    for line in lines:
        assert main(shlex.split(line)[3:]) == 0, line
        outputs.append(capsys.readouterr())
    elapsed = time.time() - t0
    assert elapsed < 60, f"the walk-through took {elapsed:.0f}s"

    assert "folder dataset at data/my_shift, 2 classes (cat, dog)" in outputs[0].out
    records = read_jsonl("out/sweeps/my_shift/results.jsonl")
    assert sorted((r["config"]["method"], r["config"]["lr"]) for r in records) == [
        ("my_sgd", 1e-3), ("my_sgd", 1e-2), ("my_sgd", 1e-1), ("sgd_freeze_embed", 1e-2)]
    assert all(r["status"] == "ok" for r in records)

    table = Path("my_shift.tex").read_text()
    assert table.startswith("\\begin{tabular}") and "my\\_sgd" in table and "sgd\\_freeze\\_embed" in table
    assert "ood/ood\\_night" in table and "ood/ood\\_sketch" in table and "ood\\_avg" not in table
    mine = [r for r in records if r["config"]["method"] == "my_sgd"]
    chosen = max(mine, key=lambda r: (r["metrics"]["id_val"], -r["config"]["lr"]))["config"]["lr"]
    edge_warned = "my_sgd: the chosen lr" in outputs[2].err
    assert "skipped" not in outputs[2].err  # the runs' metrics.jsonl are not result files
    assert edge_warned == (chosen in (1e-3, 1e-1))

    assert Path("my_shift_curves.png").exists() and Path("my_shift_curves.pdf").exists()
    axes = {ax.get_title(): ax for ax in plot_runs(find_runs([Path("out/sweeps/my_shift")])).axes}
    assert len(axes["train loss"].get_lines()) == len(records)
    assert {line.get_label() for line in axes["ood/ood_sketch"].get_lines()} == {
        f"small_resnet_fmnist_sgd-my_shift-{r['config']['method']}-lr{r['config']['lr']:g}-s0" for r in records}
