"""The fine-tuning loop: one :class:`~deepnet.config.RunConfig` in, one result record out.

What a run does (SGD paper, Section 4 and Appendix A):

* builds the model (``deepnet.models``) and the dataset splits (``deepnet.data``) and the method's
  optimizer (``deepnet.methods``); a method's stage before fine-tuning (the linear probe of LP and
  LP-FT) runs first, on features of the train split without augmentation;
* trains for the dataset's paper epochs (or ``cfg.epochs``) with the method's schedule (cosine to 0
  per optimizer step for all but gradual unfreezing), ``cfg.batch_size`` examples per optimizer
  step split over ``grad_accum`` micro-batches and the DDP ranks, mixed precision on GPU;
* evaluates ID val, ID test and every OOD split after each epoch and keeps the metrics of the epoch
  with the best ID-val accuracy (early stopping);
* checkpoints after every epoch (atomically, keeping the previous one as ``checkpoint.pt.prev``)
  and resumes from ``run_dir/checkpoint.pt``; an unreadable checkpoint is moved to
  ``checkpoint.pt.corrupt`` with a warning and the run resumes from the previous one or afresh;
* stops with status ``"diverged"`` (not an exception) at the first training step whose loss is not
  finite or exceeds :func:`divergence_bound` (``DIVERGENCE_FACTOR`` x the larger of the run's first
  step loss and ln(classes), the loss of a uniform guess); the record's ``divergence`` says where;
* logs every optimizer step's loss and LR (with ``cfg.log_grad_norms`` also its gradient norm per
  layer-map kind) and every evaluation (each epoch, and every ``cfg.eval_every`` steps) to
  ``run_dir/metrics.jsonl`` (:mod:`deepnet.metrics_log`), and prints one line per epoch when
  progress bars are off;
* writes ``run_dir/result.json`` atomically (the record in the deepnet interface contract), with
  the fingerprint of the data it trained on (:func:`deepnet.run_inputs.data_fingerprint`).

Random streams are reseeded from (seed, epoch, rank) at the start of every epoch, so a run resumed
at an epoch boundary replays exactly the data order, augmentations and dropout of an uninterrupted
one, and no RNG state needs checkpointing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from common.io import read_json
from deepnet import distributed
from deepnet.config import RunConfig
from deepnet.run_files import RESULT
from deepnet.run_inputs import RunInputs, build_inputs
from deepnet.run_loop import RunLoop
from deepnet.runtime import float32_matmul_precision, seed_everything, wants_cuda


def train(cfg: RunConfig, run_dir: str | Path, progress: bool = True, keep_checkpoint: bool = False,
          inputs: RunInputs | None = None) -> dict[str, Any]:
    """Run (or resume, or return the finished result of) one fine-tuning run in ``run_dir``.

    What a run does is the module docstring's list. If ``run_dir/result.json`` exists for the same
    config it is returned without training. Under ``torchrun`` every rank calls this; rank 0 writes.

    Parameters
    ----------
    cfg : RunConfig
        The run: model, dataset, method, learning rate, seed and training overrides.
    run_dir : str or Path
        The run's directory (created): ``result.json``, ``metrics.jsonl``, the checkpoint.
    progress : bool, default True
        Progress bars; without them one line per epoch is printed.
    keep_checkpoint : bool, default False
        Keep ``checkpoint.pt`` once the result is written (it holds the final weights and optimizer
        state, several GB per run for a ViT-L); by default it is deleted.
    inputs : RunInputs, optional
        The model bundle and dataset splits; None builds them from the registries named by ``cfg``
        (:func:`deepnet.run_inputs.build_inputs`).

    Returns
    -------
    dict
        The result record: ``config``, ``status`` (``"ok"`` or ``"diverged"``), ``metrics`` of the
        epoch with the best ID-val accuracy (``id_val``, ``id_test``, ``ood`` per split,
        ``ood_avg``, ``worst_group``), ``history`` (one entry per epoch), ``env`` and ``data``.

    Raises
    ------
    ValueError
        ``run_dir`` holds the result of a different config, or the config does not fit its
        inputs (a batch size not divisible by ``grad_accum`` x processes, a missing split).

    References
    ----------
    .. [1] A. Kumar, R. Shen, S. Bubeck, S. Gunasekar, "How to Fine-Tune Vision Models with SGD",
       arXiv:2211.09359, Section 4 and Appendix A (the training protocol).

    Examples
    --------
    A small ResNet, one epoch on the CPU, on a user dataset (``npz`` kind) of random 16-px images:

    >>> import shutil, tempfile
    >>> import numpy as np
    >>> from deepnet.config import RunConfig
    >>> from deepnet.train import train
    >>> rng, tmp = np.random.default_rng(0), Path(tempfile.mkdtemp())
    >>> splits = ("train", "id_val", "id_test", "ood_test")
    >>> np.savez(tmp / "toy.npz", **{f"{s}_images": rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    ...                              for s in splits}, **{f"{s}_labels": np.arange(8) % 2 for s in splits})
    >>> cfg = RunConfig(model="small_resnet", dataset="toy", dataset_kind="npz", data_root=str(tmp / "toy.npz"),
    ...                 method="sgd", lr=0.01, seed=0, epochs=1, batch_size=8, pretrained=False, image_size=16,
    ...                 num_workers=0, device="cpu")
    >>> record = train(cfg, tmp / "run", progress=False)  # its epoch line goes to stderr
    >>> record["status"], list(record["metrics"]["ood"]), len(record["history"])
    ('ok', ['ood_test'], 1)
    >>> sorted(p.name for p in (tmp / "run").iterdir())
    ['metrics.jsonl', 'result.json']
    >>> shutil.rmtree(tmp)
    """
    run_dir = Path(run_dir)
    done = run_dir / RESULT
    if done.exists():
        record = read_json(done)
        if RunConfig.from_dict(record["config"]).key() == cfg.key():  # execution-only fields may differ
            return record
        raise ValueError(f"{done} holds a result for a different config; use another run dir")
    use_cuda = wants_cuda(cfg.device)
    ctx = distributed.init_from_env(use_cuda)
    try:
        if inputs is None:
            seed_everything(cfg.seed)  # the new head's initialisation depends on the seed only
            inputs = build_inputs(cfg)
        with float32_matmul_precision(cfg.tf32):
            return RunLoop(cfg, run_dir, ctx, inputs, progress, keep_checkpoint).execute()
    finally:
        distributed.shutdown(ctx)
