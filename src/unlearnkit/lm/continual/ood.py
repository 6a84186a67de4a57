"""O3's out-of-distribution detector: is an input about data that was unlearned, and how strongly?

Reference: Gao et al., "Practical Unlearning for Large Language Models", code GCYZSL/O3-LLM-UNLEARNING:

* ``ScienceQA_expriment/src/ood_model_selector.py`` — ``RobertaForSelector.forward``: a LoRA-tuned encoder
  (r 8, α 32, on query/key/value) sees a masked copy of the batch (MLM loss) and a frozen copy of the encoder sees
  the clean batch; for every hidden layer the sequence-mean features ``z₁`` (tuned) and ``z₂`` (frozen) give
  ``softmax(z₁ z₂ᵀ)`` per row and the loss adds the mean row entropy (``entropy``: ``−Σ p log(p + 1e-5)``);
  total loss ``mlm_loss + info_loss`` (``train_ood.py``).
* ``sample_X_estimator``: per layer, the mean of the training features, the precision of their empirical
  covariance (``sklearn.covariance.EmpiricalCovariance``, a pseudo-inverse) and the L2-normalised features.
* ``get_unsup_Mah_score``: per layer ``−1000 · max_j cos(x, f_j) − ½ (x − μ)ᵀ P (x − μ)`` (local cosine to the
  nearest training input + global Mahalanobis term); the embedding layer is dropped (``[:, 1:]``) and a
  one-class SVM (``svm.OneClassSVM(nu=0.1, kernel="linear")``, ``train_ood.py``) fitted on the training inputs'
  layer scores turns the vector into one number (``score_samples``).
* ``eval_o3.py`` / ``train_ood.py`` — ``weighting_func_gmm``, ``obtain_weights``: the soft weight (see
  :func:`o3_soft_weight`) from two Gaussians centred on the training inputs' and the held-out (in-distribution)
  inputs' scores, both with the held-out scores' standard deviation.

Differences, named here: the backbone is the causal LM being unlearned (a copy with its own LoRA on the attention
projections), not RoBERTa, so the masked-LM loss is a **causal LM loss on the corrupted input** (15 % of the
tokens replaced by random ones, predicting the clean tokens); the frozen key encoder is the same copy with its
adapter switched off; sequence means skip padding (the reference pads to 512 tokens and averages them too);
the held-out in-distribution inputs are a ``calibration`` fraction of the request's forget inputs (the TOFU
configuration keeps 80 % of the forget set for training, ``forget_ratio: 0.8``); by default
(``covariance="ledoit-wolf"``) the precision is that of a **Ledoit–Wolf shrunk covariance**: a request holds tens
of inputs, fewer than the hidden size, and the empirical covariance's pseudo-inverse then blows the Mahalanobis
term up by orders of magnitude along the directions the few inputs barely span (``covariance="empirical"`` is the
reference's).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ...engine import Phase, Recipe, train
from ...errors import ConfigError, DataError
from ..encode import LMBatches, encode_texts
from ..losses import nll
from .o3 import OrthogonalLoRALinear, attach_lora, lora_layers, set_gate

#: ``get_unsup_Mah_score``: ``all_score = -cs_score * 1000. + gaussian_score``
COSINE_SCALE = 1000.0
#: ``obtain_weights``: ``scaling_factor = 10``, ``range_th = 2``
WEIGHT_SCALING, WEIGHT_RANGE = 10.0, 2.0
ATTENTION_TARGETS = ("q_proj", "k_proj", "v_proj", "c_attn", "query_key_value")


def entropy_rows(p: torch.Tensor) -> torch.Tensor:
    """The reference's ``entropy``: ``−Σ_j p_ij log(p_ij + 1e-5)`` per row."""
    return -(p * torch.log(p + 1e-5)).sum(1)


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(h.dtype).unsqueeze(-1)
    return (h * m).sum(1) / m.sum(1).clamp(min=1.0)


def contrastive_entropy(query: Sequence[torch.Tensor], key: Sequence[torch.Tensor]) -> torch.Tensor:
    """``Σ_layers mean_rows entropy(softmax(z₁ z₂ᵀ))`` for pooled features ``z₁`` (trained) and ``z₂`` (frozen,
    detached), as ``RobertaForSelector.forward``."""
    total = query[0].new_zeros(())
    for z1, z2 in zip(query, key):
        s = torch.softmax(z1 @ z2.detach().t(), dim=1)
        total = total + entropy_rows(s).mean()
    return total


def layer_features(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    """Sequence-mean hidden states of every layer (embeddings first)."""
    out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    return [masked_mean(h.float(), mask) for h in out.hidden_states]


def layer_scores(
    feats: Sequence[torch.Tensor],
    means: Sequence[torch.Tensor],
    precisions: Sequence[torch.Tensor],
    train_feats: Sequence[torch.Tensor],
) -> np.ndarray:
    """``(n, L)``: per layer ``−1000 · max cos(x, training) − ½ (x−μ)ᵀ P (x−μ)`` (``get_unsup_Mah_score``)."""
    cols = []
    for x, mu, prec, f in zip(feats, means, precisions, train_feats):
        z = x - mu
        gaussian = -0.5 * ((z @ prec) * z).sum(1)
        cos = (torch.nn.functional.normalize(x, dim=-1) @ f.t()).max(1).values
        cols.append((-cos * COSINE_SCALE + gaussian).cpu().numpy())
    return np.stack(cols, axis=1)


def precision_matrix(feats: torch.Tensor, kind: str = "empirical") -> torch.Tensor:
    """Precision of the features' covariance: ``"empirical"`` the pseudo-inverse of the maximum-likelihood
    covariance (``EmpiricalCovariance().fit(X - mean).precision_`` in ``sample_X_estimator``), ``"ledoit-wolf"``
    the inverse of the Ledoit–Wolf shrunk covariance (``sklearn.covariance.LedoitWolf``)."""
    x = feats.double()
    z = x - x.mean(0)
    if kind == "empirical":
        cov = z.t() @ z / x.shape[0]
        return torch.linalg.pinv(cov, hermitian=True).float()
    from sklearn.covariance import LedoitWolf

    return torch.from_numpy(LedoitWolf(assume_centered=True).fit(z.cpu().numpy()).precision_).float().to(feats.device)


def _norm_cdf(x: float, mean: float, std: float) -> float:
    return 0.5 * (1.0 + math.erf((x - mean) / (std * math.sqrt(2.0))))


def o3_soft_weight(score: float, train_mean: float, heldout_mean: float, heldout_std: float) -> float:
    """The reference's ``obtain_weights`` with ``weighting_func_gmm``'s mixture: two equal-weight Gaussians at
    the training and held-out means with the held-out std, ``x0`` their midpoint; with ``F`` the mixture CDF,
    ``c = 10 · (1 − |F(x) − F(2x0 − x)|)``, ``w = σ(c − 2)``; then ``w > 0.9 → 1.2``, ``0.3 < w ≤ 0.4 → w``,
    otherwise 0."""
    std = max(float(heldout_std), 1e-12)
    x0 = (train_mean + heldout_mean) / 2.0

    def cdf(v: float) -> float:
        return 0.5 * _norm_cdf(v, train_mean, std) + 0.5 * _norm_cdf(v, heldout_mean, std)

    a, b = cdf(score), cdf(2.0 * x0 - score)
    c = (1.0 - max(a, b) + min(a, b)) * WEIGHT_SCALING
    w = 1.0 / (1.0 + math.exp(-(c - WEIGHT_RANGE)))
    if w > 0.9:
        return 1.2
    if 0.3 < w <= 0.4:
        return w
    return 0.0


def parse_search(spec: str) -> list[tuple[float, int]]:
    """``"1e-3x5,3e-3x10"`` → ``[(0.001, 5), (0.003, 10)]`` (learning rate × epochs per candidate)."""
    out: list[tuple[float, int]] = []
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        lr, sep, epochs = item.partition("x")
        try:
            value = (float(lr), int(epochs))
        except ValueError:
            value = None
        if not sep or value is None or value[0] <= 0 or value[1] < 1:
            raise ConfigError(
                f"bad detector search candidate {item!r}; write LRxEPOCHS with lr > 0 and epochs ≥ 1, "
                "comma-separated (e.g. 1e-3x5,3e-3x10)"
            )
        out.append(value)
    return out


@dataclass
class DetectorConfig:
    """Reference (RoBERTa-large): LoRA r 8, α 32, 2 epochs, lr 1e-5, batch 8, weight decay 0.01, 15 % masking.
    ``search`` (``"LRxEPOCHS,..."``, e.g. ``"1e-3x5,3e-3x10"``): candidate settings tried per request, the one
    that best separates the request's calibration prompts from name-swapped questions is kept
    (:mod:`~unlearnkit.lm.continual.selection`, candidates read by :func:`parse_search`); empty: ``lr`` ×
    ``epochs`` as given."""

    rank: int = 8
    alpha: float = 32.0
    epochs: int = 2
    lr: float = 1e-5
    batch_size: int = 8
    weight_decay: float = 0.01
    mask_prob: float = 0.15
    calibration: float = 0.2
    nu: float = 0.1
    covariance: str = "ledoit-wolf"
    search: str = ""

    def __post_init__(self) -> None:
        parse_search(self.search)
        if not 0 < self.calibration < 1:
            raise ConfigError(f"calibration must be in (0, 1), got {self.calibration}")
        if not 0 <= self.mask_prob < 1:
            raise ConfigError(f"mask_prob must be in [0, 1), got {self.mask_prob}")
        if self.covariance not in ("ledoit-wolf", "empirical"):
            raise ConfigError(f"covariance must be 'ledoit-wolf' or 'empirical', got {self.covariance!r}")

    def to_dict(self) -> dict:
        return asdict(self)


class ContrastiveEntropyDetector:
    """One request's detector: a LoRA copy of the LM trained with the contrastive entropy loss on the request's
    forget inputs, the per-layer statistics, a one-class SVM over layer scores and the soft-weight calibration."""

    def __init__(self, base: nn.Module, tokenizer, cfg: DetectorConfig | None = None, *, device=None) -> None:
        self.cfg = cfg or DetectorConfig()
        self.tokenizer = tokenizer
        self.model = copy.deepcopy(base)
        if device is not None:
            self.model.to(device)
        attach_lora(self.model, self.cfg.rank, self.cfg.alpha, targets=ATTENTION_TARGETS)
        self.device = next(self.model.parameters()).device
        self.calibration: list[str] = []
        self.fitted = False

    # ---- training -----------------------------------------------------------------------------------
    def _loss(self, vocab: int, seed: int):
        gen = torch.Generator().manual_seed(seed)
        p = self.cfg.mask_prob

        def loss(m: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            ids, mask, labels = batch[:3]
            with torch.no_grad():
                set_gate(m, 0.0)
                key = layer_features(m, ids, mask)
            set_gate(m, 1.0)
            corrupt = (torch.rand(ids.shape, generator=gen) < p).to(ids.device) & mask.bool()
            noisy = torch.where(corrupt, torch.randint(0, vocab, ids.shape, generator=gen).to(ids.device), ids)
            out = m(input_ids=noisy, attention_mask=mask, output_hidden_states=True)
            query = [masked_mean(h.float(), mask) for h in out.hidden_states]
            lm = nll(_Fixed(out.logits), (noisy, mask, labels))
            return lm + contrastive_entropy(query, key)

        return loss

    def fit(self, texts: Sequence[str], *, seed: int = 0, progress: bool = False) -> ContrastiveEntropyDetector:
        """Train on ``texts`` (the request's forget inputs, e.g. its question prompts), keep a calibration
        fraction aside, fit the statistics and the one-class SVM on the rest, calibrate the soft weight."""
        from sklearn.svm import OneClassSVM

        if len(texts) < 4:
            raise DataError(f"the OOD detector needs at least 4 forget inputs, got {len(texts)}")
        order = np.random.default_rng(seed).permutation(len(texts))
        n_cal = max(1, int(round(self.cfg.calibration * len(texts))))
        cal = [texts[i] for i in order[:n_cal]]
        fit = [texts[i] for i in order[n_cal:]]
        data = encode_texts(self.tokenizer, [{"text": t} for t in fit])
        layers = lora_layers(self.model)
        for p in self.model.parameters():
            p.requires_grad_(False)
        gen = torch.Generator().manual_seed(seed)
        for layer in layers:
            layer.add_adapter(gen)
        params = [p for m in layers for p in (m.lora_A[-1], m.lora_B[-1])]
        recipe = Recipe(
            epochs=self.cfg.epochs,
            lr=self.cfg.lr,
            optimizer="adamw",
            weight_decay=self.cfg.weight_decay,
            schedule="constant",
            batch_size=self.cfg.batch_size,
            grad_clip=1.0,
        )
        phase = Phase("ood", LMBatches(data, self.cfg.batch_size, seed=seed), self._loss(len(self.tokenizer), seed))
        train(self.model, phase, recipe, device=self.device, params=params, seed=seed, progress=progress, desc="ood")
        self.model.eval()
        set_gate(self.model, 1.0)
        feats = self.features(fit)
        self.means, self.precisions, self.train_feats = [], [], []
        for f in feats:
            mu = f.mean(0)
            self.means.append(mu)
            self.precisions.append(precision_matrix(f, self.cfg.covariance))
            self.train_feats.append(torch.nn.functional.normalize(f, dim=-1))
        train_ls = self._layer_scores(feats)
        self.svm = OneClassSVM(nu=self.cfg.nu, kernel="linear").fit(train_ls)
        train_s = self.svm.score_samples(train_ls)
        cal_s = self.svm.score_samples(self._layer_scores(self.features(cal)))
        self.train_mean, self.heldout_mean = float(train_s.mean()), float(cal_s.mean())
        self.heldout_std = float(cal_s.std()) if len(cal_s) > 1 else float(train_s.std())
        self.calibration = cal
        self.fitted = True
        return self

    # ---- scoring ------------------------------------------------------------------------------------
    @torch.no_grad()
    def features(self, texts: Sequence[str], batch_size: int = 64) -> list[torch.Tensor]:
        data = encode_texts(self.tokenizer, [{"text": t} for t in texts])
        chunks: list[list[torch.Tensor]] = []
        for i in range(0, len(data), batch_size):
            ids = data.input_ids[i : i + batch_size].to(self.device)
            mask = data.attention_mask[i : i + batch_size].to(self.device)
            chunks.append(layer_features(self.model, ids, mask))
        return [torch.cat([c[layer] for c in chunks]) for layer in range(len(chunks[0]))]

    def _layer_scores(self, feats: Sequence[torch.Tensor]) -> np.ndarray:
        return layer_scores(feats, self.means, self.precisions, self.train_feats)[:, 1:]

    def _check(self) -> None:
        if not self.fitted:
            raise ConfigError("the OOD detector is not fitted; call fit(forget_texts) first")

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """The one-class SVM's ``score_samples`` of each text's layer scores."""
        self._check()
        return self.svm.score_samples(self._layer_scores(self.features(texts)))

    def closeness(self, texts: Sequence[str]) -> np.ndarray:
        """How forget-like each text is: ``−|score − x0| / σ`` (the quantity the soft weight thresholds; higher =
        closer to the unlearned data). Used for AUROC."""
        x0 = (self.train_mean + self.heldout_mean) / 2.0
        return -np.abs(self.scores(texts) - x0) / max(self.heldout_std, 1e-12)

    def weights(self, texts: Sequence[str]) -> np.ndarray:
        """:func:`o3_soft_weight` of each text."""
        return np.array(
            [o3_soft_weight(s, self.train_mean, self.heldout_mean, self.heldout_std) for s in self.scores(texts)]
        )


class _Fixed(nn.Module):
    """A stand-in model whose forward returns precomputed logits (to reuse :func:`nll` on an existing output)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, **_: object):
        return self


__all__ = [
    "ContrastiveEntropyDetector",
    "DetectorConfig",
    "OrthogonalLoRALinear",
    "contrastive_entropy",
    "layer_scores",
    "o3_soft_weight",
]
