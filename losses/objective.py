"""The combined search objective (1 - γ)·CE + γ·KD + β·E, every term returned separately."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from losses.config import LossConfig
from losses.distillation import logit_kd, probe_kd, task_loss
from losses.efficiency import efficiency_loss, op_cost_vector
from searchspace.config import SupernetConfig
from searchspace.costs import expected_cost, op_cost_table
from searchspace.supernet import SupernetOutput


@dataclass
class LossTerms:
    total: torch.Tensor
    ce: torch.Tensor
    kd: torch.Tensor
    efficiency: torch.Tensor
    expected_params: torch.Tensor
    expected_flops: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        return {name: float(value.detach()) for name, value in vars(self).items()}


def expected_over_depths(per_depth: torch.Tensor, depth_weights: torch.Tensor) -> torch.Tensor:
    """Σ_k y_K[k] · term_k (method notes 2.3): one-hot forward, gradient to every depth.

    ``per_depth`` may cover only the first depths (a supernet that skipped the cells past the
    sampled K); the missing depths then get no gradient, as in GDAS-style sampling.
    """
    return (depth_weights[: len(per_depth)].to(per_depth.dtype) * per_depth).sum()


class AdaBertObjective:
    """Scores one supernet output against labels and cached teacher knowledge."""

    def __init__(
        self,
        config: LossConfig,
        supernet_config: SupernetConfig,
        *,
        seq_len: int,
        is_regression: bool = False,
    ) -> None:
        self.config = config
        self.supernet_config = supernet_config
        self.seq_len = seq_len
        self.is_regression = is_regression
        op_params, op_flops = op_cost_table(supernet_config, seq_len)
        self.op_costs = op_cost_vector(
            op_params,
            op_flops,
            normalizer=config.efficiency_normalizer,
            primitives=supernet_config.primitives,
        ).float()

    def __call__(
        self,
        output: SupernetOutput,
        labels: torch.Tensor,
        *,
        teacher_probe_logits: torch.Tensor,
        teacher_logits: torch.Tensor,
        efficiency_scale: float = 1.0,
    ) -> LossTerms:
        """``efficiency_scale`` multiplies β (the search's warm-up ramp of β; 1 = β as set)."""
        cfg = self.config
        logits = output.logits_per_depth
        depth_weights = output.depth_weights
        ce_per_depth = torch.stack(
            [task_loss(lg, labels, is_regression=self.is_regression) for lg in logits]
        )
        ce = expected_over_depths(ce_per_depth, depth_weights)
        kd_final = expected_over_depths(
            torch.stack(
                [
                    logit_kd(
                        lg, teacher_logits, cfg.kd_temperature, is_regression=self.is_regression
                    )
                    for lg in logits
                ]
            ),
            depth_weights,
        )
        kd_probes = probe_kd(
            logits,
            teacher_probe_logits,
            labels,
            depth_weights,
            temperature=cfg.kd_temperature,
            weighting=cfg.layer_weighting,
            mapping=cfg.layer_mapping,
            is_regression=self.is_regression,
        )
        kd = cfg.final_kd_share * kd_final + (1.0 - cfg.final_kd_share) * kd_probes
        efficiency = efficiency_loss(
            output.edge_weights, depth_weights, self.op_costs, reduction=cfg.edge_reduction
        )
        beta = cfg.efficiency_weight * efficiency_scale
        total = (1.0 - cfg.kd_weight) * ce + cfg.kd_weight * kd + beta * efficiency
        with torch.no_grad():
            params, flops = expected_cost(
                self.supernet_config,
                output.edge_weights.detach().double(),
                depth_weights.detach().double(),
                self.seq_len,
            )
        return LossTerms(total, ce, kd, efficiency, params, flops)
