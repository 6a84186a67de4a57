"""Population membership-inference attack used for MIA-efficacy (SalUn's recipe)."""

from __future__ import annotations

import numpy as np
from sklearn.svm import SVC

from ..errors import DataError


def mia_efficacy(
    member_scores: np.ndarray,
    nonmember_scores: np.ndarray,
    target_scores: np.ndarray,
    *,
    C: float = 3.0,
    gamma: str | float = "auto",
    kernel: str = "rbf",
) -> float:
    """MIA-efficacy in percent: the share of ``target_scores`` (the forget set) that an attack calls
    *non-member*.

    The attack is SalUn's (Fan et al., ICLR 2024): an ``SVC(C=3, gamma="auto", kernel="rbf")`` fitted on
    shadow members (retain examples) labelled 1 and shadow non-members (test examples) labelled 0, one
    feature per example (by default the confidence p(true class)). Higher = more forgotten.
    """
    member, nonmember, target = (
        np.asarray(s, dtype=np.float64).reshape(len(s), -1) if len(s) else np.empty((0, 1))
        for s in (member_scores, nonmember_scores, target_scores)
    )
    if len(member) == 0 or len(nonmember) == 0:
        raise DataError("the MIA needs at least one shadow member (retain) and one non-member (test) example")
    if len(target) == 0:
        return float("nan")
    x = np.concatenate([member, nonmember])
    y = np.concatenate([np.ones(len(member)), np.zeros(len(nonmember))])
    clf = SVC(C=C, gamma=gamma, kernel=kernel)
    clf.fit(x, y)
    return 100.0 * float(1.0 - clf.predict(target).mean())
