"""The jobs that join every package: the main job (deep-net sweep, theory checks, claims ledger and
figures) and the GPU check beside the paper's Table 4. The top of the import order:
pipeline -> paper_figs -> experiments -> {theory, deepnet} -> common."""
