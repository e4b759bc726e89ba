"""Distillation: training examples, losses and the resumable training loop."""

from semb25.distill.examples import (
    BatchSampler,
    QueryGroup,
    build_groups,
    read_score_file,
)
from semb25.distill.losses import combined_loss, listwise_kl, margin_mse, pointwise_mse
from semb25.distill.trainer import NonFiniteLossError, TrainConfig, Trainer

__all__ = [
    "BatchSampler",
    "NonFiniteLossError",
    "QueryGroup",
    "TrainConfig",
    "Trainer",
    "build_groups",
    "combined_loss",
    "listwise_kl",
    "margin_mse",
    "pointwise_mse",
    "read_score_file",
]
