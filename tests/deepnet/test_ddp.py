"""Data-parallel training: 2 CPU processes (gloo) give both ranks the same weights, equal to one
process training on the same global batch."""
from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from common.shutdown import freeze_at_exit
from deepnet.config import RunConfig
from deepnet.run_files import RESULT
from deepnet.run_inputs import build_inputs
from deepnet.runtime import seed_everything
from deepnet.train import train
from tests.helpers import tiny_run_config

WORLD = 2


def _config(root: str) -> RunConfig:
    # 12 train images, global batch 4 (2 per rank) -> 3 optimizer steps per epoch, momentum SGD
    return tiny_run_config(root, lr=3e-2, device="cpu")


def _run(root: str, run_dir: str, weights_out: str) -> dict:
    cfg = _config(root)
    seed_everything(cfg.seed)
    inputs = build_inputs(cfg)
    inputs.splits["train"] = inputs.probe_train()  # no random augmentation: ranks vs single must match
    record = train(cfg, run_dir, progress=False, inputs=inputs)
    torch.save(inputs.bundle.model.state_dict(), weights_out)
    return record


def _worker(rank: int, root: str, out: str, port: int) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    _run(root, os.path.join(out, "ddp"), os.path.join(out, f"rank{rank}.pt"))


def _ranks(root: str, out: str, port: int) -> None:
    """Fork the ranks from this fresh process once it has imported the trainer and built the run's
    inputs: the ranks start with every import done, and forking is safe (no autograd ran here)."""
    freeze_at_exit()
    build_inputs(_config(root))
    mp.start_processes(_worker, args=(root, out, port), nprocs=WORLD, join=True, start_method="fork")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_run_matches_single_process(waterbirds_root, tmp_path):
    root = waterbirds_root
    out = str(tmp_path)
    launcher = mp.get_context("spawn").Process(target=_ranks, args=(root, out, _free_port()))
    launcher.start()
    single = _run(root, str(tmp_path / "single"), str(tmp_path / "single.pt"))  # while the ranks start
    launcher.join(timeout=90)
    if launcher.is_alive():
        launcher.kill()
    assert launcher.exitcode == 0, f"the ranks' process ended with {launcher.exitcode}"

    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    ref = torch.load(tmp_path / "single.pt")
    seed_everything(_config(root).seed)
    init = build_inputs(_config(root)).bundle.model.state_dict()
    for name in ref:
        assert torch.equal(ranks[0][name], ranks[1][name]), f"ranks differ in {name}"
        # reduction order differs (two half-batch means averaged vs one mean): float32 rounding only
        torch.testing.assert_close(ranks[0][name], ref[name], rtol=1e-4, atol=1e-5, msg=name)
    assert not torch.equal(init["head.weight"], ref["head.weight"]), "training did not move the head"
    assert not torch.equal(init["backbone.cls_token"], ref["backbone.cls_token"])
    from common.io import read_json

    ddp = read_json(tmp_path / "ddp" / RESULT)
    assert ddp["status"] == single["status"] == "ok" and ddp["env"]["world_size"] == WORLD
    assert [h["steps"] for h in ddp["history"]] == [h["steps"] for h in single["history"]] == [3, 6]
    assert ddp["history"][-1]["train_loss"] == pytest.approx(single["history"][-1]["train_loss"], rel=1e-4)
    # evaluation is sharded over the ranks and the per-group counts summed: same metrics as one process
    assert ddp["metrics"] == single["metrics"] and ddp["best_epoch"] == single["best_epoch"]
