"""Concept vectors (Hong et al., 2024, "Intrinsic Evaluation of Unlearning Using Parametric Knowledge Traces"):
locate MLP value vectors that encode a concept, validate them causally, measure how far unlearning moved them, and
ablate them."""

from .ablate import MODES, ablate_vectors, project_out_concept
from .intrinsic import INTRINSIC_KEYS, concept_drift, mean_drift, vector_drift
from .locate import (
    Concept,
    ConceptVector,
    concept_token_ids,
    locate_concept,
    mlp_out_projection,
    out_projections,
    person_concepts,
    qa_concept_tokens,
    random_locations,
    rank_by_concept_tokens,
    specific_tokens,
    unembedding,
    value_rows,
    value_vectors,
    vocab_projection,
)
from .validate import noise_validation

__all__ = [
    "INTRINSIC_KEYS",
    "MODES",
    "Concept",
    "ConceptVector",
    "ablate_vectors",
    "concept_drift",
    "concept_token_ids",
    "locate_concept",
    "mean_drift",
    "mlp_out_projection",
    "noise_validation",
    "out_projections",
    "person_concepts",
    "project_out_concept",
    "qa_concept_tokens",
    "random_locations",
    "rank_by_concept_tokens",
    "specific_tokens",
    "unembedding",
    "value_rows",
    "value_vectors",
    "vector_drift",
    "vocab_projection",
]
