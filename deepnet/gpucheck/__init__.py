"""The suite on a real GPU in one prepared check: CUDA tests, throughput, memory and MFU
per method beside the SGD paper's Table 4, the speed options and a profile of one step.

``python -m pipeline gpucheck --out DIR`` on one GPU, with the paper's Table 4 comparisons passed in
(``scripts/gpu_check.sh OUT`` on the device machine); ``--tiny --device cpu`` runs every stage on
the CPU in seconds (the CI test). See :mod:`deepnet.gpucheck.cli` for the stages and outputs,
:mod:`deepnet.gpucheck.bench` for the measurements and :mod:`deepnet.gpucheck.report` for the summary.
"""
