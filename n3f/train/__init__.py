"""Training: RGB pretraining and feature distillation, with resumable checkpoints."""

from n3f.train.config import TrainConfig, load_config
from n3f.train.evaluate import evaluate
from n3f.train.loop import distill, pretrain_rgb, run_training

__all__ = ["TrainConfig", "distill", "evaluate", "load_config", "pretrain_rgb", "run_training"]
