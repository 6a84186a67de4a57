"""A zero-shot CLIP classifier the user supplies, and the erasure metrics of a free-text concept judged by it.

CLIP zero-shot classification (Radford et al., "Learning Transferable Visual Models From Natural Language
Supervision", ICML 2021; the ``CLIPModel`` of transformers, ``models/clip/modeling_clip.py``): an image is
assigned to the prompt whose normalised text embedding has the largest cosine with its normalised image
embedding, the probabilities being the softmax of those cosines × ``logit_scale``. Images are resized to the
vision tower's input size (bicubic, antialiased: the same as ``CLIPImageProcessor``'s shortest-side resize and
centre crop for the square images generated here) and normalised with the folder's ``preprocessor_config.json``
mean and std (OpenAI's CLIP values when it has none). The CLIP score (ESD paper, Gandikota et al. 2023, Sec. 5)
is 100 × the mean cosine between each image and its own prompt. Nothing is downloaded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, ModelError, require
from ..runtime import resolve_device
from ..safe_weights import check_safetensors_folder
from .concepts import ConceptSpec
from .evaluate import SamplingConfig, generate
from .metrics import DEGRADED_DESTROYED
from .text_concepts import TextConceptData

#: OpenAI CLIP's image normalisation (used when the folder has no preprocessor_config.json)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: share of the softmax a non-concept prediction needs to count as *replaced* rather than destroyed
DEFAULT_MIN_CONFIDENCE = 0.5


class ZeroShotCLIP:
    """A transformers ``CLIPModel`` folder (``save_pretrained`` layout with its tokenizer, e.g.
    ``openai/clip-vit-large-patch14`` saved locally) as a zero-shot classifier over prompts."""

    def __init__(self, folder: str | Path, *, device: str | torch.device | None = None) -> None:
        require("transformers", extra="diffusion")
        from transformers import CLIPModel, CLIPTokenizer

        root = Path(folder)
        if not (root / "config.json").is_file():
            raise ConfigError(
                f"{root} is not a CLIPModel folder (no config.json); pass --evaluator-model a folder written by "
                "CLIPModel.save_pretrained (e.g. openai/clip-vit-large-patch14) with its tokenizer"
            )
        check_safetensors_folder(root, "CLIP")  # a pickle is never unpickled
        try:
            self.model = CLIPModel.from_pretrained(root, use_safetensors=True).eval()
            self.tokenizer = CLIPTokenizer.from_pretrained(root)
        except (OSError, ValueError) as err:
            raise ModelError(
                f"cannot load a CLIPModel and CLIPTokenizer from {root} ({err}); check the folder"
            ) from err
        self.device = resolve_device(device)
        self.model.to(self.device)
        self.size = int(self.model.config.vision_config.image_size)
        mean, std = CLIP_MEAN, CLIP_STD
        pre = root / "preprocessor_config.json"
        if pre.is_file():
            cfg = json.loads(pre.read_text())
            mean, std = tuple(cfg.get("image_mean", mean)), tuple(cfg.get("image_std", std))
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)

    @torch.no_grad()
    def text_embeddings(self, prompts: Sequence[str]) -> torch.Tensor:
        enc = self.tokenizer(list(prompts), padding=True, truncation=True, return_tensors="pt").to(self.device)
        return F.normalize(_projected(self.model.get_text_features(**enc)), dim=-1).cpu()

    @torch.no_grad()
    def image_embeddings(self, images: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
        """``images`` in [-1, 1], (N, C, H, W) with C = 1 or 3 → unit-norm image embeddings."""
        out = []
        for i in range(0, len(images), batch_size):
            x = (images[i : i + batch_size].float().clamp(-1, 1) + 1) / 2
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            x = F.interpolate(x, size=(self.size, self.size), mode="bicubic", antialias=True, align_corners=False)
            x = (x.clamp(0, 1) - self.mean) / self.std
            feats = _projected(self.model.get_image_features(pixel_values=x.to(self.device)))
            out.append(F.normalize(feats, dim=-1))
        return torch.cat(out).cpu()

    def classify(self, images: torch.Tensor, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(predicted prompt index, probability of that prediction) per image."""
        cos = self.image_embeddings(images) @ self.text_embeddings(prompts).T
        probs = (cos * float(self.model.logit_scale.exp())).softmax(dim=1)
        conf, pred = probs.max(dim=1)
        return pred, conf

    def score(self, images: torch.Tensor, prompt: str) -> float:
        """CLIP score: 100 × mean cosine between the images and ``prompt``."""
        return 100.0 * float((self.image_embeddings(images) @ self.text_embeddings([prompt]).T).mean())


def _projected(out: object) -> torch.Tensor:
    """The projected embeddings ``get_*_features`` return: a tensor, or (transformers ≥ 5) an output whose
    ``pooler_output`` holds them."""
    return (out if isinstance(out, torch.Tensor) else out.pooler_output).float()


@dataclass
class TextErasureEval:
    """Metrics (percent) and the generations for the concept prompt (``erased``) and each contrast prompt."""

    metrics: dict[str, float]
    erased: torch.Tensor
    kept: dict[str, torch.Tensor]


def _pct(x: torch.Tensor) -> float:
    return 100.0 * float(x.float().mean()) if len(x) else float("nan")


@torch.no_grad()
def evaluate_text_erasure(
    model: nn.Module,
    data: TextConceptData,
    concept: ConceptSpec,
    clip: ZeroShotCLIP,
    sampling: SamplingConfig | None = None,
    *,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
) -> TextErasureEval:
    """Generate ``sampling.per_prompt`` images for the concept prompt and for each contrast prompt and classify
    them zero-shot among all the prompts.

    As for the bundled concepts (:func:`unlearnkit.diffusion.metrics.replaced_and_destroyed`), only a *replaced*
    image counts as erased: ``ua``: concept images classified as a contrast prompt with probability ≥
    ``min_confidence``; ``ua_destroyed``: the other concept images not classified as the concept; ``ua_any`` their
    sum; ``quality``: ``degraded`` when at least
    :data:`~unlearnkit.diffusion.metrics.DEGRADED_DESTROYED` % are destroyed, else ``ok`` (without real images
    there is no FD or real-image IRA floor, so ``broken`` is not judged here);
    ``ira``: contrast images classified as their own prompt; ``clip_score``: CLIP score of the concept images
    against the concept prompt (lower after erasure), ``clip_score_kept`` of the contrast images against their
    own prompts (should hold); ``asr_plain`` = 100 − ``ua_any``. There is no CRA (a free-text concept has one axis)
    and no Fréchet distance (no real images)."""
    if not isinstance(data, TextConceptData):
        raise ConfigError("evaluate_text_erasure scores free-text concepts; build the data with text_concept_data")
    if not 0 <= min_confidence <= 1:
        raise ConfigError(f"min_confidence is a probability in [0, 1], got {min_confidence}")
    sc = sampling or SamplingConfig()
    model.eval()
    prompts = data.object_names
    images = {i: generate(model, data, data.prompt(i).unsqueeze(0), sc, salt=1 + i) for i in range(len(prompts))}
    erased = images[concept.index]
    pred, conf = clip.classify(erased, prompts)
    missed = pred != concept.index
    kept_ok = []
    kept_scores = []
    for i, imgs in images.items():
        if i == concept.index:
            continue
        p, _ = clip.classify(imgs, prompts)
        kept_ok.append(p == i)
        kept_scores.append(clip.score(imgs, prompts[i]))
    metrics = {
        "ua": _pct(missed & (conf >= min_confidence)),
        "ua_replaced": _pct(missed & (conf >= min_confidence)),
        "ua_destroyed": _pct(missed & (conf < min_confidence)),
        "ua_any": _pct(missed),
        "ira": _pct(torch.cat(kept_ok)),
        "clip_score": clip.score(erased, prompts[concept.index]),
        "clip_score_kept": sum(kept_scores) / len(kept_scores),
    }
    metrics["asr_plain"] = 100.0 - metrics["ua_any"]
    metrics["quality"] = "degraded" if metrics["ua_destroyed"] >= DEGRADED_DESTROYED else "ok"
    kept = {prompts[i]: imgs for i, imgs in images.items() if i != concept.index}
    return TextErasureEval(metrics, erased, kept)


def tiny_clip(
    words: Sequence[str], folder: str | Path, *, width: int = 16, image_size: int = 16, seed: int = 0
) -> Path:
    """Write a randomly initialised miniature ``CLIPModel`` folder built from configs (nothing is downloaded):
    a one-layer text tower over a word-level CLIP tokenizer of ``words`` (saved beside it) and a one-layer
    vision tower on ``image_size`` images. It loads in :class:`ZeroShotCLIP`; its judgements are random, so it
    serves to test the code path, not to measure erasure."""
    require("transformers", extra="diffusion")
    from transformers import CLIPConfig, CLIPModel

    from .hf import word_level_clip_tokenizer

    root = Path(folder)
    torch.manual_seed(seed)
    tokenizer = word_level_clip_tokenizer([w.lower() for w in words], root)
    text = {
        "vocab_size": len(tokenizer.get_vocab()), "hidden_size": width, "intermediate_size": 2 * width,
        "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": tokenizer.model_max_length,
        "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1,
    }  # fmt: skip
    vision = {
        "hidden_size": width, "intermediate_size": 2 * width, "num_hidden_layers": 1, "num_attention_heads": 2,
        "image_size": image_size, "patch_size": max(1, image_size // 2),
    }  # fmt: skip
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)).save_pretrained(root)
    tokenizer.save_pretrained(root)
    return root
