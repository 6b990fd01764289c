"""AdaBERT's objective in pure PyTorch: task loss, probe-based KD and the efficiency loss."""

from losses.config import LossConfig
from losses.distillation import logit_kd, probe_kd, soft_cross_entropy, task_loss
from losses.efficiency import efficiency_loss, op_cost_vector
from losses.objective import AdaBertObjective, LossTerms

__all__ = [
    "AdaBertObjective",
    "LossConfig",
    "LossTerms",
    "efficiency_loss",
    "logit_kd",
    "op_cost_vector",
    "probe_kd",
    "soft_cross_entropy",
    "task_loss",
]
