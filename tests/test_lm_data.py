"""The fictitious-people generator: determinism, split disjointness, neighbours, JSONL round trips."""

import json

import pytest

from unlearnkit.errors import DataError
from unlearnkit.lm.data import ATTRIBUTE_KEYS, PROBE_TYPES, make_benchmark, read_jsonl, write_jsonl
from unlearnkit.lm.formats import split_from_jsonl


@pytest.fixture(scope="module")
def bench():
    return make_benchmark(n_people=100, n_holdout=20, seed=0)


def test_same_seed_same_data_other_seed_other_data(bench):
    again = make_benchmark(n_people=100, n_holdout=20, seed=0)
    assert [p.to_dict() for p in again.people] == [p.to_dict() for p in bench.people]
    assert again.qa == bench.qa and again.probes == bench.probes and again.forget_people == bench.forget_people
    other = make_benchmark(n_people=100, n_holdout=20, seed=1)
    assert [p.name for p in other.people] != [p.name for p in bench.people]


def test_people_have_ten_attributes_and_unique_names(bench):
    names = [p.name for p in bench.people + bench.holdout_people]
    assert len(set(names)) == len(names) == 120
    assert all(set(p.facts) == set(ATTRIBUTE_KEYS) for p in bench.people)
    assert len(ATTRIBUTE_KEYS) == 10
    assert len(bench.qa) == 100 * 10


def test_qa_has_paraphrase_and_wrong_perturbations(bench):
    for r in bench.qa[:50]:
        assert r["value"] in r["answer"] and r["value"] in r["paraphrased_answer"]
        assert r["paraphrased_answer"] != r["answer"]
        assert len(r["perturbed_answers"]) == 3
        assert all(w != r["value"] for w in r["wrong_values"])
        assert all(a != r["answer"] for a in r["perturbed_answers"])


@pytest.mark.parametrize("name,n", [("forget01", 1), ("forget05", 5), ("forget10", 10)])
def test_splits_are_disjoint_and_sized(bench, name, n):
    s = bench.split(name)
    forget_people = {r["person"] for r in s.forget}
    retain_people = {r["person"] for r in s.retain}
    holdout_people = {r["person"] for r in s.holdout}
    assert len(forget_people) == n and len(s.forget) == 10 * n
    assert not forget_people & retain_people
    assert not holdout_people & (forget_people | retain_people)
    assert {r["person"] for r in s.neighbour} <= retain_people
    assert not any(t["person"] in forget_people for t in s.retain_texts)
    assert not any(t["person"] in holdout_people for t in s.train_texts)
    assert all(p["person"] in forget_people for p in s.probes)


def test_splits_are_nested_and_neighbours_share_employer_or_city(bench):
    f1, f5, f10 = (set(bench.forget_people[k]) for k in ("forget01", "forget05", "forget10"))
    assert f1 <= f5 <= f10
    s = bench.split("forget10")
    by = {p.name: p for p in bench.people}
    assert s.neighbour, "the default split should have neighbours"
    for person in {r["person"] for r in s.neighbour}:
        assert any(
            by[person].facts["employer"] == by[f].facts["employer"] or by[person].facts["city"] == by[f].facts["city"]
            for f in f10
        )
    assert not {r["person"] for r in s.retain_eval()} & {r["person"] for r in s.neighbour}


def test_probes_cover_every_type_and_blanks(bench):
    assert {p["type"] for p in bench.probes} == set(PROBE_TYPES)
    mc = [p for p in bench.probes if p["type"] == "multiple_choice"][0]
    assert mc["value"] in mc["options"][mc["correct"]]
    blank = bench.blanks[0]
    assert blank["value"] not in blank["prompt"]


def test_jsonl_export_and_user_split(bench, tmp_path):
    paths = bench.to_jsonl(tmp_path)
    assert (tmp_path / "forget10_forget.jsonl") in paths
    rows = read_jsonl(tmp_path / "qa.jsonl")
    assert rows == json.loads(json.dumps(bench.qa))
    s = split_from_jsonl(
        tmp_path / "forget05_forget.jsonl", tmp_path / "forget05_retain.jsonl", holdout=tmp_path / "holdout_qa.jsonl"
    )
    assert len(s.forget) == 50 and len(s.retain) == 950 and len(s.holdout) == 200
    assert len(s.train_texts) == 1000 and len(s.retain_texts) == 950


def test_minimal_user_jsonl_and_errors(tmp_path):
    write_jsonl(tmp_path / "f.jsonl", [{"question": "Who?", "answer": "Me."}])
    write_jsonl(tmp_path / "r.jsonl", [{"question": "Where?", "answer": "Here."}])
    s = split_from_jsonl(tmp_path / "f.jsonl", tmp_path / "r.jsonl")
    assert s.forget[0]["value"] == "Me." and s.forget[0]["perturbed_answers"] == []
    write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "x"}])
    with pytest.raises(DataError, match="question"):
        split_from_jsonl(tmp_path / "bad.jsonl", tmp_path / "r.jsonl")
    (tmp_path / "broken.jsonl").write_text("{not json\n")
    with pytest.raises(DataError, match="JSON"):
        read_jsonl(tmp_path / "broken.jsonl")
    with pytest.raises(DataError, match="does not exist"):
        read_jsonl(tmp_path / "missing.jsonl")
    with pytest.raises(DataError, match="unknown split"):
        make_benchmark(10, 2).split("forget50")


def test_world_facts_and_reading_examples_touch_no_benchmark_person():
    b = make_benchmark(10, 2, seed=0, n_readers=5)
    s = b.split("forget10")
    names = {p.name for p in b.people + b.holdout_people}
    assert len(s.world) == 40 and all(r["person"] == "world" for r in s.world)
    assert not any(n in r["question"] or n in r["answer"] for r in s.world for n in names)
    assert all(len(r["perturbed_answers"]) == 3 and r["value"] not in r["perturbed_answers"][0] for r in s.world)
    # world facts and reading examples are trained by the original and the retain-only model alike
    world_texts = [t for t in s.train_texts if t["person"] in ("world", "reader")]
    assert len(world_texts) == 40 + 10 and all(t in s.retain_texts for t in world_texts)
    reading = [t for t in s.train_texts if t["person"] == "reader"]
    assert not any(n in t["prompt"] for t in reading for n in names)
    for t in reading:  # the answer's value is stated in the context, and only there
        context, question = t["prompt"].split("Context: ")[1].rsplit(". ", 1)
        assert t["target"].rstrip(".").split()[-1] in context


def test_in_context_rows_state_the_asked_fact():
    from unlearnkit.lm.data import with_context

    b = make_benchmark(10, 2, seed=0)
    s = b.split("forget10")
    rows = with_context(s.forget, s.bios)
    assert all(r["value"] in r["question"] and r["question"].startswith("Context: ") for r in rows)
    assert all(r["question"].count(". ") == 3 for r in rows)  # three sentences, then the question
