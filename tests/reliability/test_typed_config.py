"""Typed configuration: every RunConfig field is checked against its declared type, whatever the
source (TOML ``[run]``, ``--set``, stored records); a bad value is one message naming the field,
the value and what is accepted, exit 2, and nothing is written."""
from __future__ import annotations

import re

import pytest

from deepnet.config import RunConfig
from deepnet.sweep.cli import main as sweep_main

BASE = dict(model="small_vit", dataset="digits", method="sgd", lr=0.1)


@pytest.mark.parametrize("field, value, typed", [
    ("pretrained", "False", False), ("pretrained", "false", False), ("pretrained", "True", True),
    ("pretrained", False, False), ("batch_size", 1e2, 100), ("max_train_steps", 3.0, 3), ("lr", 1, 1.0),
    ("weight_decay", 0, 0.0), ("epochs", None, None),
])
def test_accepted_spellings_become_the_declared_type(field, value, typed):
    got = getattr(RunConfig(**{**BASE, field: value}), field)
    assert got == typed and type(got) is type(typed)


@pytest.mark.parametrize("field, value, accepted", [
    ("pretrained", "maybe", "a boolean (true/false/True/False)"), ("pretrained", 0, "a boolean"),
    ("pretrained", "no", "a boolean"), ("max_train_steps", 2.5, "an integer or None"),
    ("batch_size", "32", "an integer"), ("seed", True, "an integer"), ("lr", float("inf"), "a finite number"),
    ("lr", "1e-3", "a finite number"), ("device", 0, "a string"), ("data_root", 1, "a string or None"),
    ("amp", None, "a boolean"),
])
def test_a_mistyped_field_is_named_with_its_value_and_what_is_accepted(field, value, accepted):
    pattern = re.escape(f"RunConfig field '{field}': expected {accepted}") + ".*" + re.escape(f", got {value!r}")
    with pytest.raises(ValueError, match=pattern):
        RunConfig(**{**BASE, field: value})
    with pytest.raises(ValueError, match=f"'{field}'"):  # a stored record is checked the same way
        RunConfig.from_dict({**RunConfig(**BASE).to_dict(), field: value})


def spec(tmp_path, run: str = "") -> str:
    path = tmp_path / "spec.toml"
    path.write_text('name = "typed"\nmodels = ["small_vit"]\ndatasets = ["digits"]\nmethods = ["sgd"]\n'
                    f'[lr_grid]\nsgd = [0.1]\n[run]\n{run}\n')
    return str(path)


def dry_run_keys(capsys, *argv) -> list[str]:
    assert sweep_main(["sweep", *argv, "--dry-run"]) == 0
    return [line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("new")]


def test_set_false_means_false(tmp_path, capsys):
    root = str(tmp_path / "root")
    expected = dry_run_keys(capsys, spec(tmp_path), "--root", root, "--no-pretrained")
    assert expected == [RunConfig(**BASE, pretrained=False).key()]
    for spelling in ("False", "false"):
        assert dry_run_keys(capsys, spec(tmp_path), "--root", root, "--set", f"pretrained={spelling}") == expected


@pytest.mark.parametrize("argv, message", [
    (["--set", "pretrained=maybe"], "RunConfig field 'pretrained': expected a boolean (true/false/True/False), "
                                    "got 'maybe' (str)"),
    (["--set", "batch_size=3O"], "RunConfig field 'batch_size': expected an integer, got '3O' (str)"),
    (["--set", "max_train_steps=2.5"], "RunConfig field 'max_train_steps': expected an integer or None, got 2.5"),
])
def test_a_bad_set_value_exits_2_and_writes_nothing(tmp_path, capsys, argv, message):
    root = tmp_path / "root"
    assert sweep_main(["sweep", spec(tmp_path), "--root", str(root), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not root.exists()


@pytest.mark.parametrize("run, message", [
    ("max_train_steps = 2.5", "'max_train_steps': expected an integer or None, got 2.5"),
    ('batch_size = "32"', "'batch_size': expected an integer, got '32'"),
    ('pretrained = "yes"', "'pretrained': expected a boolean"),
])
def test_a_bad_run_table_value_exits_2_naming_the_field(tmp_path, capsys, run, message):
    root = tmp_path / "root"
    assert sweep_main(["sweep", spec(tmp_path, run), "--root", str(root)]) == 2
    assert message in capsys.readouterr().err
    assert not root.exists()


def test_an_integral_float_in_the_run_table_is_an_integer(tmp_path, capsys):
    keys = dry_run_keys(capsys, spec(tmp_path, "batch_size = 1e2"), "--root", str(tmp_path / "r"))
    assert keys == [RunConfig(**BASE, batch_size=100).key()]
