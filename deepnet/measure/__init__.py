"""The SGD paper's measurements on real models: layer-wise gradient norms at the pretrained
initialization (eq. 3.1, Appendix F), training-memory accounting per method (Table 4), and the
LP-FT paper's feature distortion (per-example feature change, ID vs OOD), and the linear-probe head
LP-FT starts from (its norm and the backbone gradient it causes)."""
from deepnet.measure.distortion import DistortionStats, feature_change, feature_distortion
from deepnet.measure.grad_norms import GroupGradNorm, layer_grad_norms
from deepnet.measure.memory import TrainingMemory, measure_training_step
from deepnet.measure.probe_head import probe_head_stats

__all__ = [
    "DistortionStats",
    "GroupGradNorm",
    "TrainingMemory",
    "feature_change",
    "feature_distortion",
    "layer_grad_norms",
    "measure_training_step",
    "probe_head_stats",
]
