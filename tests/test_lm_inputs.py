"""A user's TOFU-format files: fields of the wrong type and non-UTF-8 bytes are one-line errors naming the record
and the field; a huge answer is cut while it is encoded, never tokenised whole."""

import json

import pytest

pytest.importorskip("transformers")

from unlearnkit.cli import main  # noqa: E402
from unlearnkit.errors import DataError  # noqa: E402
from unlearnkit.lm import train_tokenizer  # noqa: E402
from unlearnkit.lm.encode import encode_qa, encode_texts  # noqa: E402
from unlearnkit.lm.evaluate import answer_texts  # noqa: E402
from unlearnkit.lm.formats import split_from_files  # noqa: E402

GOOD = {"question": "Where does Alma live?", "answer": "Alma lives in Oslo."}


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    ("field", "value", "got"),
    [
        ("question", ["Where", "does"], "list"),
        ("answer", 1931, "int"),
        ("answer", None, "null"),
        ("value", 3.5, "float"),
    ],
)
def test_a_tofu_field_of_the_wrong_type_names_the_record_and_field(tmp_path, field, value, got):
    bad = {**GOOD, field: value}
    forget = _write(tmp_path / "f.json", [GOOD, bad])
    retain = _write(tmp_path / "r.json", [GOOD])
    with pytest.raises(DataError, match=rf"forget record 1: '{field}' must be a string, got {got}") as err:
        split_from_files(forget, retain)
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from unlearnkit.lm import TinyLMConfig, build_tiny_lm, save_causal_lm

    tok = train_tokenizer(["Alma lives in Oslo.", "Bo lives in Rome."], vocab_size=300)
    model = build_tiny_lm(TinyLMConfig(arch="gpt2", d_model=16, n_layers=1, n_heads=2), tok)
    return save_causal_lm(model, tok, tmp_path_factory.mktemp("tiny") / "lm")


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ({"text": 5}, "'text' must be a string, got int"),
        ({"text": None}, "'text' must be a string, got null"),
        ({"text": ["a", "b"]}, "'text' must be a string, got list"),
        ({"text": "  \n"}, "'text' is empty"),
    ],
)
def test_a_muse_text_row_of_the_wrong_type_names_the_record_and_field(tiny_model, tmp_path, capsys, row, match):
    forget = _write(tmp_path / "f.jsonl", [{"text": "Alma lives in Oslo."}, row])
    retain = _write(tmp_path / "r.jsonl", [{"text": "Bo lives in Rome."}])
    with pytest.raises(DataError, match=rf"forget record 1: {match}"):
        split_from_files(forget, retain)
    argv = [
        "lm-unlearn",
        "--model",
        str(tiny_model),
        "--method",
        "ga",
        "--forget",
        str(forget),
        "--retain",
        str(retain),
    ]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the model-loading progress bar
    assert err.startswith("error: forget record 1") and "'text'" in err


def test_an_empty_tofu_question_is_refused(tmp_path):
    forget = _write(tmp_path / "f.json", [GOOD, {**GOOD, "question": "   "}])
    with pytest.raises(DataError, match=r"forget record 1: 'question' is empty"):
        split_from_files(forget, _write(tmp_path / "r.json", [GOOD]))


def test_a_non_utf8_file_is_a_one_line_error_naming_the_line(tmp_path, capsys):
    forget = tmp_path / "f.jsonl"
    forget.write_bytes(json.dumps(GOOD).encode() + b"\n" + '{"question": "Où?", "answer": "à"}'.encode("latin-1"))
    retain = _write(tmp_path / "r.json", [GOOD])
    with pytest.raises(DataError, match=r"f.jsonl:2 is not UTF-8"):
        split_from_files(forget, retain)
    array = tmp_path / "a.json"
    array.write_bytes(b'[{"question": "x", "answer": "\xe9"}]')
    with pytest.raises(DataError, match=r"a.json:1 is not UTF-8"):
        split_from_files(array, retain)
    assert main(["lm-eval", "--model", str(tmp_path), "--forget", str(forget), "--retain", str(retain)]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not UTF-8" in err and len(err.splitlines()) == 1


class _Recording:
    """A tokenizer that remembers the longest text it was asked to tokenise."""

    def __init__(self, tok):
        self.tok, self.longest = tok, 0

    def __getattr__(self, name):
        return getattr(self.tok, name)

    def __call__(self, text, **kw):
        self.longest = max(self.longest, len(text))
        return self.tok(text, **kw)


def test_a_huge_answer_is_cut_before_it_is_tokenised():
    tok = train_tokenizer(["Where does Alma live? Alma lives in Oslo."], vocab_size=300)
    huge = {"question": GOOD["question"], "answer": "Alma lives in Oslo. " * 50_000}  # 1 MB
    rec = _Recording(tok)
    data = encode_qa(rec, [huge, GOOD], max_length=64)
    assert data.input_ids.shape == (2, 64) and rec.longest < 10_000
    whole = encode_qa(tok, [{**huge, "answer": huge["answer"][:2000]}, GOOD], max_length=64)
    assert data.input_ids.tolist() == whole.input_ids.tolist()  # the same first 64 tokens
    text = encode_texts(rec, [{"text": huge["answer"]}], max_length=32)
    assert text.input_ids.shape == (1, 32) and rec.longest < 10_000
    assert len(answer_texts(tok, data)[0]) < 500  # what ROUGE compares with: the encoded answer, not 1 MB
