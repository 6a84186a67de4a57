"""Reading a user's unlearning data: TOFU-format QA, MUSE-style raw text and VerbMem prompts, the generated
benchmark's JSONL, from ``.jsonl`` / ``.json`` files or a local Hugging Face ``datasets`` folder.

Field names follow the public releases:

* TOFU (Maini et al., 2024; ``locuslab/TOFU``): ``question``, ``answer``, ``paraphrased_answer`` and
  ``perturbed_answer`` (a list of wrong answers; ``perturbed_answers`` is accepted too), which give the truth
  ratio and forget quality.
* MUSE (Shi et al., 2024; ``muse-bench/MUSE-News``): raw corpora of ``{"text": ...}`` records (the ``raw``
  forget/retain splits), VerbMem ``{"prompt", "gt"}`` records and KnowMem QA ``{"question", "answer"}``.

A record with a missing required field, or with a field this reader does not know (often a misspelling such as
``perturbed_answes``), raises a :class:`~unlearnkit.errors.DataError` naming the field, the record and the file.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError, require
from .data import LMSplit, read_jsonl, read_utf8

#: QA fields read by unlearnkit (beyond ``question`` and ``answer``)
QA_OPTIONAL = ("value", "paraphrased_answer", "perturbed_answer", "perturbed_answers", "person", "pid", "attribute")
#: fields of public QA releases that carry nothing unlearnkit uses; accepted and ignored
QA_IGNORED = (
    "wrong_values",
    "paraphrased_question",
    "perturbed_question",
    "index",
    "id",
    "option1",
    "option2",
    "option3",
    "option4",
    "type",
)
TEXT_FIELDS = ("text",)
TEXT_IGNORED = ("person", "id", "index", "title", "source")
VERBMEM_FIELDS = ("prompt", "gt")


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Records from a ``.jsonl`` file, a ``.json`` file (a JSON array, or JSON lines as TOFU's ``*.json``), or a
    folder written by ``datasets``' ``save_to_disk`` (one split: for a ``DatasetDict`` pass ``DIR/SPLIT``)."""
    p = Path(path)
    if p.is_dir():
        return _read_hf_folder(p)
    if not p.is_file():
        raise DataError(f"{p} does not exist; pass a .jsonl/.json file or a folder saved with datasets' save_to_disk")
    if p.suffix == ".json":
        text = read_utf8(p).lstrip()
        if text.startswith("["):
            try:
                rows = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(f"{p} is not valid JSON ({exc}); write a JSON array of objects or JSON lines") from exc
            if not all(isinstance(r, dict) for r in rows):
                raise DataError(f"{p}: every element of the JSON array must be an object with named fields")
            return rows
    return read_jsonl(p)


def _read_hf_folder(p: Path) -> list[dict[str, Any]]:
    if not ((p / "dataset_info.json").is_file() or (p / "dataset_dict.json").is_file()):
        raise DataError(f"{p} is a folder but not a saved Hugging Face dataset (no dataset_info.json)")
    datasets = require("datasets", extra="lm")
    ds = datasets.load_from_disk(str(p))
    if isinstance(ds, datasets.DatasetDict):
        if len(ds) != 1:
            raise DataError(f"{p} holds the splits {', '.join(ds)}; pass one of them as {p}/SPLIT")
        ds = next(iter(ds.values()))
    return [dict(r) for r in ds]


def _check_fields(row: dict[str, Any], i: int, where: str, required: Sequence[str], known: Sequence[str]) -> None:
    if not isinstance(row, dict):
        raise DataError(f"{where} record {i} is not an object with named fields: {row!r}")
    for key in required:
        if key not in row:
            raise DataError(f"{where} record {i} lacks the field {key!r}; each record needs {', '.join(required)}")
    allowed = set(required) | set(known)
    for key in row:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DataError(
                f"{where} record {i} has the unknown field {key!r}{hint}; known fields: {', '.join(sorted(allowed))}"
            )


def _string_list(value: Any, where: str, i: int, key: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    raise DataError(f"{where} record {i}: {key!r} must be a string or a list of strings, got {type(value).__name__}")


def _text_field(row: dict[str, Any], i: int, where: str, key: str) -> None:
    value = row.get(key)
    if key in row and not isinstance(value, str):
        got = "null" if value is None else type(value).__name__
        raise DataError(
            f"{where} record {i}: {key!r} must be a string, got {got}; write it as one JSON string (quote numbers)"
        )


def _nonempty_field(row: dict[str, Any], i: int, where: str, key: str) -> None:
    """:func:`_text_field`, and the string must hold more than whitespace."""
    _text_field(row, i, where, key)
    if not row[key].strip():
        raise DataError(f"{where} record {i}: {key!r} is empty; write the {key} or remove the record")


def normalise_qa(rows: Sequence[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """QA records (TOFU or the generated benchmark) in the form every LM function reads: ``question``,
    ``answer``, ``value`` (what a correct answer contains; default the answer), ``paraphrased_answer`` (default
    the answer), ``perturbed_answers`` (from TOFU's ``perturbed_answer`` list or ``perturbed_answers``),
    ``person`` (who the fact is about; default one id per record), ``pid``, ``attribute``. A question, answer,
    value or paraphrased answer that is not a string (a list, a number, null) raises :class:`DataError` naming
    the record and the field."""
    out = []
    for i, r in enumerate(rows):
        _check_fields(r, i, where, ("question", "answer"), QA_OPTIONAL + QA_IGNORED)
        _nonempty_field(r, i, where, "question")
        for key in ("answer", "value", "paraphrased_answer"):
            _text_field(r, i, where, key)
        if "perturbed_answer" in r and "perturbed_answers" in r:
            raise DataError(f"{where} record {i} has both 'perturbed_answer' and 'perturbed_answers'; keep one")
        pert = r.get("perturbed_answer", r.get("perturbed_answers", []))
        out.append(
            {
                "person": str(r.get("person", f"{where}-{i}")),
                "pid": r.get("pid", i),
                "attribute": r.get("attribute", ""),
                "question": r["question"],
                "answer": r["answer"],
                "value": r.get("value", r["answer"]),
                "paraphrased_answer": r.get("paraphrased_answer", r["answer"]),
                "perturbed_answers": _string_list(pert, where, i, "perturbed_answer"),
            }
        )
    return out


def normalise_texts(rows: Sequence[dict[str, Any] | str], where: str) -> list[dict[str, str]]:
    """Raw-text records (MUSE's ``raw`` splits): ``{"text": ...}`` (plain strings are accepted too). A text
    that is not a string (a number, null, a list) or holds only whitespace raises :class:`DataError` naming
    the record and the field."""
    out = []
    for i, r in enumerate(rows):
        if isinstance(r, str):
            r = {"text": r}
        _check_fields(r, i, where, TEXT_FIELDS, TEXT_IGNORED)
        _nonempty_field(r, i, where, "text")
        out.append({"text": str(r["text"]), "person": str(r.get("person", f"{where}-text-{i}"))})
    return out


def normalise_verbmem(rows: Sequence[dict[str, Any]], where: str = "verbmem") -> list[dict[str, str]]:
    """MUSE VerbMem records: ``prompt`` (a prefix of a forget text) and ``gt`` (its true continuation)."""
    out = []
    for i, r in enumerate(rows):
        _check_fields(r, i, where, VERBMEM_FIELDS, ("id", "index"))
        for key in VERBMEM_FIELDS:
            _nonempty_field(r, i, where, key)
        out.append({"prompt": str(r["prompt"]), "gt": str(r["gt"])})
    return out


def record_kind(rows: Sequence[dict[str, Any]], where: str) -> str:
    """``"qa"`` when the records have ``question``, ``"text"`` when they have ``text``."""
    if not rows:
        raise DataError(f"{where} is empty; give at least one record")
    first = rows[0]
    if isinstance(first, dict) and "question" in first:
        return "qa"
    if isinstance(first, str) or (isinstance(first, dict) and "text" in first):
        return "text"
    keys = ", ".join(first) if isinstance(first, dict) else type(first).__name__
    raise DataError(
        f"{where} record 0 has neither 'question' (QA: TOFU or the generated benchmark) nor 'text' (a raw corpus, "
        f"as MUSE); it has: {keys}"
    )


def split_from_files(
    forget: str | Path,
    retain: str | Path,
    *,
    holdout: str | Path | None = None,
    neighbour: str | Path | None = None,
    world: str | Path | None = None,
    forget_qa: str | Path | None = None,
    retain_qa: str | Path | None = None,
    verbmem: str | Path | None = None,
    name: str = "custom",
) -> LMSplit:
    """An :class:`LMSplit` from a user's files (see :func:`read_records` for the formats).

    ``forget``/``retain`` are QA (TOFU format: unlearning on the answers) or raw text (MUSE format: unlearning
    on the text); with raw text, ``forget_qa``/``retain_qa`` are KnowMem QA and ``verbmem`` VerbMem prompts
    (without it, VerbMem is measured on prefixes of the forget texts). ``holdout`` QA enables the MIAs,
    ``neighbour`` QA is measured as locality and ``world`` QA (general knowledge) joins model utility. When a
    model is trained from scratch, the original sees forget + retain (texts, or QA as prompt/answer pairs) and
    the retain-only model the retain part."""
    f_rows, r_rows = read_records(forget), read_records(retain)
    f_kind, r_kind = record_kind(f_rows, str(forget)), record_kind(r_rows, str(retain))
    if f_kind != r_kind:
        raise DataError(f"{forget} holds {f_kind} records but {retain} holds {r_kind}; give both as QA or both as text")

    def qa(path: str | Path | None, where: str) -> list[dict[str, Any]]:
        return normalise_qa(read_records(path), where) if path else []

    if f_kind == "qa":
        if forget_qa or retain_qa or verbmem:
            raise DataError("forget_qa / retain_qa / verbmem go with raw-text forget and retain corpora, not with QA")
        f, r = normalise_qa(f_rows, "forget"), normalise_qa(r_rows, "retain")
        texts = [{"prompt": x["question"], "target": x["answer"], "person": x["person"]} for x in f + r]
        return LMSplit(
            name=name,
            forget=f,
            retain=r,
            neighbour=qa(neighbour, "neighbour"),
            holdout=qa(holdout, "holdout"),
            world=qa(world, "world"),
            train_texts=texts,
            retain_texts=texts[len(f) :],
        )
    fc, rc = normalise_texts(f_rows, "forget"), normalise_texts(r_rows, "retain")
    return LMSplit(
        name=name,
        forget=qa(forget_qa, "forget_qa"),
        retain=qa(retain_qa, "retain_qa"),
        neighbour=qa(neighbour, "neighbour"),
        holdout=qa(holdout, "holdout"),
        world=qa(world, "world"),
        train_texts=fc + rc,
        retain_texts=list(rc),
        forget_corpus=fc,
        retain_corpus=rc,
        verbmem=normalise_verbmem(read_records(verbmem)) if verbmem else [],
    )


#: the file options of ``lm-bench``/``lm-unlearn``/``lm-eval`` (and :class:`~unlearnkit.lm.LMBenchConfig` fields),
#: in the keyword names of :func:`split_from_files` after the two required ones
FILE_OPTIONS = ("holdout", "neighbour", "world", "forget_qa", "retain_qa", "verbmem")
_OPTION_ATTRS = {"holdout": "holdout_jsonl", "neighbour": "neighbour_jsonl", "world": "world_jsonl"}


def split_from_options(options: Any) -> LMSplit | None:
    """The split named by the file options of ``options`` (an ``argparse`` namespace or an ``LMBenchConfig``: its
    ``forget_jsonl``, ``retain_jsonl``, ``holdout_jsonl``, ``neighbour_jsonl``, ``world_jsonl``, ``forget_qa``,
    ``retain_qa`` and ``verbmem`` attributes), or ``None`` when no forget file is given."""
    forget, retain = getattr(options, "forget_jsonl", None), getattr(options, "retain_jsonl", None)
    if not forget:
        if retain:
            raise ConfigError("a retain file (--retain) needs a forget file (--forget) as well")
        return None
    if not retain:
        raise ConfigError("a forget file (--forget) needs a retain file (--retain) as well")
    extra = {key: getattr(options, _OPTION_ATTRS.get(key, key), None) for key in FILE_OPTIONS}
    return split_from_files(forget, retain, **extra)


def split_from_jsonl(
    forget: str | Path,
    retain: str | Path,
    *,
    holdout: str | Path | None = None,
    neighbour: str | Path | None = None,
    name: str = "custom",
) -> LMSplit:
    """An :class:`LMSplit` from a user's QA files; see :func:`split_from_files` (which also
    reads TOFU JSON, MUSE-style raw text and local Hugging Face ``datasets`` folders)."""
    return split_from_files(forget, retain, holdout=holdout, neighbour=neighbour, name=name)
