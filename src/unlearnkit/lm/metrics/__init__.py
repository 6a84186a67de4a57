"""Language-model unlearning metrics: pure functions of generations, token log-probabilities and scores."""

from .extraction import extraction_strength, mean_extraction_strength
from .fluency import mean_ngram_entropy, ngram_entropy
from .mia import PRIVLEAK_REFERENCE_AUC, loss_score, min_k_plus_plus_score, min_k_score, privleak, zlib_score
from .probability import (
    choice_probability,
    mean_answer_probability,
    normalised_probability,
    truth_ratio,
    truth_ratio_score,
)
from .quality import harmonic_mean, ks_forget_quality, model_utility
from .rouge import answer_accuracy, contains_answer, mean_rouge_l_f1, mean_rouge_l_recall, rouge_l_f1, rouge_l_recall

__all__ = [
    "PRIVLEAK_REFERENCE_AUC",
    "answer_accuracy",
    "choice_probability",
    "contains_answer",
    "extraction_strength",
    "ks_forget_quality",
    "harmonic_mean",
    "loss_score",
    "mean_answer_probability",
    "mean_extraction_strength",
    "mean_ngram_entropy",
    "mean_rouge_l_f1",
    "mean_rouge_l_recall",
    "min_k_plus_plus_score",
    "min_k_score",
    "model_utility",
    "ngram_entropy",
    "normalised_probability",
    "privleak",
    "rouge_l_f1",
    "rouge_l_recall",
    "truth_ratio",
    "truth_ratio_score",
    "zlib_score",
]
