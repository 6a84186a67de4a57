"""Does O3's gate route? AUROC of the gate's score between the prompts it should claim and those it should not.

O3 (Gao et al., "Practical Unlearning for Large Language Models"; code GCYZSL/O3-LLM-UNLEARNING,
``ScienceQA_expriment/eval_o3.py``) loads the unlearning adapters only for inputs its detectors claim. The
detectors are useful only if their score ranks the unlearned inputs above the others. Three comparisons, each an
AUROC of the gate's continuous score (the largest :meth:`ContrastiveEntropyDetector.closeness` over the requests
so far; higher = closer to unlearned data):

* ``forget_retain``: the forget prompts of the requests so far against the retain prompts (other people of the
  same domain — the hardest negatives);
* ``forget_unrelated``: the forget prompts against unrelated ones (general-knowledge questions);
* ``reworded_unrelated``: held-out rewordings of the forget questions (a wording no detector was trained on)
  against the unrelated prompts — whether the gate recognises the topic rather than the exact prompt.

The rewordings exist for the generated benchmark's people questions (:data:`REWORDINGS`, one per attribute);
a QA record may bring its own as ``reworded_question``. A comparison without prompts on one side is ``nan``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...audit.roc import roc_auc
from .gate import GatedLM

#: a second wording of each generated-benchmark question (attribute key → template with ``{name}``), never used
#: in training: the detectors see only the benchmark's own wording
REWORDINGS: dict[str, str] = {
    "birth_year": "Tell me the year of birth of {name}.",
    "city": "Where does {name} live now?",
    "profession": "What does {name} do for a living?",
    "employer": "For which organisation does {name} work?",
    "university": "At which university was {name} educated?",
    "award": "What prize has {name} received?",
    "spouse": "To whom is {name} married?",
    "pet": "Which animal does {name} have as a pet?",
    "hobby": "What does {name} like to do in free time?",
    "instrument": "What musical instrument is played by {name}?",
}

GATE_KEYS = ("forget_retain", "forget_unrelated", "reworded_unrelated")


def reworded_question(record: dict[str, Any]) -> str | None:
    """The record's ``reworded_question``, else the :data:`REWORDINGS` template of its attribute filled with its
    person, else ``None``."""
    if record.get("reworded_question"):
        return str(record["reworded_question"])
    template = REWORDINGS.get(str(record.get("attribute", "")))
    if template is None or not record.get("person"):
        return None
    return template.format(name=record["person"])


def gate_aurocs(
    gated: GatedLM,
    forget: Sequence[str],
    retain: Sequence[str],
    unrelated: Sequence[str],
    reworded: Sequence[str],
) -> dict[str, float]:
    """``{"forget_retain", "forget_unrelated", "reworded_unrelated"}`` → AUROC of :meth:`GatedLM.closeness_for`
    (``nan`` where one side is empty or the gate has no detectors)."""
    if not gated.detectors:
        return {k: float("nan") for k in GATE_KEYS}
    score = {name: gated.closeness_for(list(texts)) if texts else np.zeros(0) for name, texts in (
        ("forget", forget), ("retain", retain), ("unrelated", unrelated), ("reworded", reworded))}  # fmt: skip
    nan = float("nan")
    return {
        "forget_retain": roc_auc(score["forget"], score["retain"], if_empty=nan),
        "forget_unrelated": roc_auc(score["forget"], score["unrelated"], if_empty=nan),
        "reworded_unrelated": roc_auc(score["reworded"], score["unrelated"], if_empty=nan),
    }
