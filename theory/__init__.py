"""NumPy/SciPy simulator of linear networks for fine-tuning theory.

Two-layer (and deeper) linear networks f(x) = v^T B x: exact gradient flows for linear
probing (LP), fine-tuning (FT), LP-FT and freeze-embed, discrete optimizers, and numerical
checks of the OOD-loss bounds and invariants of Kumar et al. (ICLR 2022) and of the
freeze-embed mechanism of "How to Fine-Tune Vision Models with SGD".
"""
