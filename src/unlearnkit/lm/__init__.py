"""Language-model unlearning: a fictitious-people benchmark, tiny trainable LMs, methods, metrics, attacks.

``transformers``, ``tokenizers``, ``peft`` and ``rouge-score`` (the ``lm`` extra) are imported only when
used. Typical use::

    from unlearnkit.lm import LMBenchConfig, run_lm_bench
    run_lm_bench(LMBenchConfig(methods=["ga", "npo"])).table.print()
"""

from . import methods  # noqa: F401  (registration of the lm methods)
from .api import LMUnlearnResult, lm_request, unlearn_lm
from .bench import LMBenchConfig, LMBenchRun, TrainedPair, run_lm_bench, train_pair
from .data import FictitiousBenchmark, LMSplit, make_benchmark, read_jsonl, write_jsonl
from .encode import LMBatches, LMData, encode_pairs, encode_qa, encode_texts
from .evaluate import LMEvaluation, compare_to_retain_only, measure_lm
from .formats import split_from_jsonl
from .model import TinyLMConfig, build_tiny_lm, load_causal_lm, save_causal_lm
from .tokenizer import train_tokenizer
from .training import LMTrainConfig, train_lm

__all__ = [
    "FictitiousBenchmark",
    "LMBatches",
    "LMBenchConfig",
    "LMBenchRun",
    "LMData",
    "LMEvaluation",
    "LMSplit",
    "LMTrainConfig",
    "LMUnlearnResult",
    "TinyLMConfig",
    "TrainedPair",
    "build_tiny_lm",
    "compare_to_retain_only",
    "encode_pairs",
    "encode_qa",
    "encode_texts",
    "lm_request",
    "load_causal_lm",
    "make_benchmark",
    "measure_lm",
    "read_jsonl",
    "run_lm_bench",
    "save_causal_lm",
    "split_from_jsonl",
    "train_lm",
    "train_pair",
    "train_tokenizer",
    "unlearn_lm",
    "write_jsonl",
]
