"""Torch package that runs the vision fine-tuning suite of "How to Fine-Tune Vision Models with SGD"
and "Fine-Tuning can Distort Pretrained Features": real models (timm / open_clip), standard dataset
layouts, every fine-tuning method, sweeps that resume, and the paper's measurements."""
