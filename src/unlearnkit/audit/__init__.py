"""Evidence that forgetting worked: per-example and population membership attacks, the NeurIPS 2023
challenge ε score, worst-case forget sets, relearning attacks and tuning against retraining.

Pure metric math (ROC, AUC, TPR at low FPR, ε) lives in :mod:`.roc`, :mod:`.scores` and :mod:`.epsilon`
and works on NumPy arrays; the rest trains shadow models and runs methods through the shared engine.
"""

from .epsilon import (
    EpsilonScore,
    challenge_epsilon,
    epsilon_forget_quality,
    epsilon_score,
    forget_quality_ceiling,
    matched_ceiling,
    per_example_epsilon,
)
from .job import AuditConfig, method_runs, retrain_runs, run_audit
from .population import population_attacks, threshold_attacks
from .relearn import RelearnCurve, RelearnK, relearn_attack, relearn_curve, request_kind, resolve_k
from .roc import ROCAttackResult, evaluate_attack, roc_auc, roc_curve, tpr_at_fpr
from .scores import logit_confidence
from .tune import TuneResult, tune_hparams, tune_request
from .ulira import ShadowPairs, ULiRAResult, train_shadow_pairs, ulira, ulira_scores
from .worst_case import ForgetContext, WorstCaseResult, project_capped_simplex, worst_case_forget_set

__all__ = [
    "AuditConfig",
    "EpsilonScore",
    "ForgetContext",
    "ROCAttackResult",
    "RelearnCurve",
    "RelearnK",
    "ShadowPairs",
    "TuneResult",
    "ULiRAResult",
    "WorstCaseResult",
    "challenge_epsilon",
    "epsilon_score",
    "evaluate_attack",
    "epsilon_forget_quality",
    "forget_quality_ceiling",
    "logit_confidence",
    "matched_ceiling",
    "method_runs",
    "per_example_epsilon",
    "population_attacks",
    "project_capped_simplex",
    "relearn_attack",
    "relearn_curve",
    "request_kind",
    "resolve_k",
    "retrain_runs",
    "roc_auc",
    "roc_curve",
    "run_audit",
    "threshold_attacks",
    "tpr_at_fpr",
    "train_shadow_pairs",
    "tune_hparams",
    "tune_request",
    "ulira",
    "ulira_scores",
    "worst_case_forget_set",
]
