"""`python -m theory search`: budget honoured, integer knobs integral, worst instance reproducible."""
import pytest

from theory.__main__ import main
from theory.problem import make_problem
from theory.search import OBJECTIVES, search


def test_search_reports_a_reproducible_worst_instance():
    rep = search("C8", budget=4, seed=0, progress=False)
    assert rep.confirm_margin is None
    assert rep.de_evaluations == 4 and rep.budget == 4
    assert rep.reproduced_margin == pytest.approx(rep.de_worst_margin, rel=1e-9, abs=1e-12)
    for params in (rep.de_worst_params, rep.random_worst_params):
        assert all(isinstance(params[key], int) for key in ("d", "k", "n", "m", "seed"))
        make_problem(**params)
        assert 1.0 <= params["eps"] <= 1.414
    assert "random sampling, same budget" in rep.format()


def test_every_objective_has_integer_and_continuous_knobs():
    for name, obj in OBJECTIVES.items():
        assert any(kb.discrete for kb in obj.knobs) and any(not kb.discrete for kb in obj.knobs), name


@pytest.mark.parametrize("argv", [["search", "C99"], ["search", "C8", "--budget", "0"], ["search", "C8", "--seed", "-2"],
                                  ["search", "C10", "--confirm", "-1"]])
def test_search_usage_errors_exit_2(argv):
    with pytest.raises(SystemExit) as err:
        main(argv)
    assert err.value.code == 2


def test_top_level_help_lists_the_tools(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "verify" in out and "search" in out and "deep_experiment" in out and "bench_scale" in out
