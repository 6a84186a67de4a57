"""O3's gated inference: per input, the detectors decide how strongly the unlearning adapters are applied.

Reference: ``ScienceQA_expriment/eval_o3.py`` (GCYZSL/O3-LLM-UNLEARNING): for each batch of prompts every
request's detector gives a soft weight (``obtain_weights``), the largest one is kept (``max_ood``) and the model
runs with ``ood_weight = [1, max_ood]``: base output plus ``max_ood ×`` the adapter output. Inputs no detector
claims get weight 0 and therefore exactly the base model's outputs.

Difference: the reference sets one weight per batch (its batches hold one prompt); here every row of a batch
gets its own weight.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .o3 import set_gate
from .ood import ContrastiveEntropyDetector


class GatedLM(nn.Module):
    """A causal LM carrying O3 adapters whose strength per row is the largest detector weight of its prompt.

    ``generate`` and ``forward`` decode the rows' tokens (padding removed) and ask every detector; with no
    detectors, or ``fixed`` given, the same weight is used for every row. It behaves like the wrapped model for
    :func:`unlearnkit.lm.generate.answer_questions` and the other evaluation helpers."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        detectors: Sequence[ContrastiveEntropyDetector] = (),
        fixed: float | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.detectors = list(detectors)
        self.fixed = fixed
        self.last_weights: np.ndarray | None = None

    @property
    def config(self):
        return self.model.config

    @property
    def generation_config(self):
        return self.model.generation_config

    def weights_for(self, texts: Sequence[str]) -> np.ndarray:
        """The gate weight of each text: the maximum over detectors of :meth:`ContrastiveEntropyDetector.weights`."""
        if self.fixed is not None:
            return np.full(len(texts), float(self.fixed))
        if not self.detectors:
            return np.zeros(len(texts))
        return np.max(np.stack([d.weights(texts) for d in self.detectors]), axis=0)

    def closeness_for(self, texts: Sequence[str]) -> np.ndarray:
        """The gate's continuous score of each text: the largest :meth:`ContrastiveEntropyDetector.closeness`
        over the detectors (higher = closer to some request's unlearned inputs); ``-inf`` with no detectors."""
        if not self.detectors:
            return np.full(len(texts), -np.inf)
        return np.max(np.stack([d.closeness(texts) for d in self.detectors]), axis=0)

    def _set(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
        rows = []
        for i in range(input_ids.shape[0]):
            ids = input_ids[i] if attention_mask is None else input_ids[i][attention_mask[i].bool()]
            rows.append(self.tokenizer.decode(ids.tolist(), skip_special_tokens=True))
        w = self.weights_for(rows)
        self.last_weights = w
        set_gate(self.model, torch.tensor(w, dtype=torch.float32))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kw):
        self._set(input_ids, attention_mask)
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **kw)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kw):
        self._set(input_ids, attention_mask)
        return self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **kw)
