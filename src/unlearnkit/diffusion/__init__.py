"""Generative unlearning on a miniature text-to-image diffusion model.

Concept data with two axes (objects × styles, prompts with synonyms), a tiny text encoder and cross-attention
UNet trained with DDPM and classifier-free guidance, a DDIM sampler, evaluators and UnlearnCanvas-style metrics,
concept-erasure methods (``salun``, ``rl``, ``ga``, ``esd``/``esd-x``/``esd-x-strict``/``esd-u``,
``concept-correction`` (DoCo), ``concept-correction-mse``, ``advunlearn``, ``sfd`` (a one-step generator,
:mod:`unlearnkit.diffusion.one_step`); domain ``"diffusion"``), the
UnlearnDiffAtk attack, :func:`run_diff_bench`, and diffusers Stable Diffusion pipelines as models
(:func:`load_pipeline`, :func:`from_pipeline`).

    from unlearnkit import diffusion as ud
    data = ud.load_concept_data("digits")
    model, _ = ud.cached_model(data)
    result = ud.unlearn_concept(model, data, "object:three", "esd-x", steps=200, lr=1e-3, batch_size=8)
"""

from . import methods  # noqa: F401  (registers the diffusion methods)
from .attacks import PromptAttackResult, unlearndiffatk
from .bench import DEFAULT_DIFF_METHODS, MINIATURE_HPARAMS, DiffBenchConfig, DiffBenchRun, run_diff_bench
from .clip_evaluator import TextErasureEval, ZeroShotCLIP, evaluate_text_erasure
from .concepts import ConceptData, ConceptSpec, Vocabulary, build_concept_data, load_concept_data, parse_concept
from .evaluate import GenerationEval, SamplingConfig, evaluate_erasure
from .evaluators import Evaluators, cached_evaluators, train_evaluators
from .hf import DiffusersTextToImage, from_pipeline, load_pipeline, save_pipeline, tiny_pipeline
from .images import save_grid
from .io import load_model, save_model
from .metrics import attack_success_rate, frechet_distance, retain_accuracy, unlearning_accuracy
from .model import ModelConfig, TextToImage
from .request import DiffusionRequest, concept_request, unlearn_concept
from .schedule import ddim_sample, diffusion_loss
from .text_concepts import TextConceptData, text_concept_data
from .training import DiffusionTrainConfig, cached_model, load_diffusion, train_diffusion
from .unlearncanvas import read_grid, run_canvas, write_answer_set

__all__ = [
    "DEFAULT_DIFF_METHODS",
    "MINIATURE_HPARAMS",
    "ConceptData",
    "ConceptSpec",
    "DiffBenchConfig",
    "DiffBenchRun",
    "DiffusionRequest",
    "DiffusionTrainConfig",
    "DiffusersTextToImage",
    "Evaluators",
    "GenerationEval",
    "ModelConfig",
    "PromptAttackResult",
    "SamplingConfig",
    "TextConceptData",
    "TextErasureEval",
    "TextToImage",
    "Vocabulary",
    "ZeroShotCLIP",
    "attack_success_rate",
    "build_concept_data",
    "cached_evaluators",
    "cached_model",
    "concept_request",
    "ddim_sample",
    "diffusion_loss",
    "evaluate_erasure",
    "evaluate_text_erasure",
    "frechet_distance",
    "from_pipeline",
    "load_concept_data",
    "load_diffusion",
    "load_model",
    "load_pipeline",
    "parse_concept",
    "read_grid",
    "run_canvas",
    "retain_accuracy",
    "run_diff_bench",
    "save_grid",
    "save_model",
    "save_pipeline",
    "text_concept_data",
    "tiny_pipeline",
    "train_diffusion",
    "train_evaluators",
    "unlearn_concept",
    "unlearndiffatk",
    "unlearning_accuracy",
    "write_answer_set",
]
