"""Continual LM unlearning: requests arrive one after another, without retain data.

O3 (Gao et al., "Practical Unlearning for Large Language Models"; code GCYZSL/O3-LLM-UNLEARNING): an orthogonal
LoRA adapter per request (:mod:`.o3`), an out-of-distribution detector per request (:mod:`.ood`) and gated
inference that loads the adapters only for inputs the detectors claim (:mod:`.gate`). :mod:`.sequence` runs a
request sequence with O3 or with any ``lm`` method applied request after request, evaluating after each one.
"""

from .gate import GatedLM
from .o3 import (
    O3Config,
    attach_lora,
    max_subspace_overlap,
    mean_subspace_overlap,
    orthogonal_loss,
    train_request_adapter,
)
from .ood import ContrastiveEntropyDetector, DetectorConfig, o3_soft_weight
from .requests import RequestSequence, benchmark_requests, file_requests
from .routing import REWORDINGS, gate_aurocs, reworded_question
from .sequence import ContinualBenchConfig, ContinualConfig, run_continual, run_continual_bench

__all__ = [
    "ContinualBenchConfig",
    "ContinualConfig",
    "ContrastiveEntropyDetector",
    "DetectorConfig",
    "GatedLM",
    "O3Config",
    "RequestSequence",
    "attach_lora",
    "benchmark_requests",
    "file_requests",
    "max_subspace_overlap",
    "mean_subspace_overlap",
    "gate_aurocs",
    "reworded_question",
    "REWORDINGS",
    "o3_soft_weight",
    "orthogonal_loss",
    "run_continual",
    "run_continual_bench",
    "train_request_adapter",
]
