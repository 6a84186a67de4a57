import json

import numpy as np
import pytest

import unlearnkit as uk
from unlearnkit.errors import ForgetSpecError

LABELS = np.repeat(np.arange(5), 20)  # 100 examples, classes 0..4


def test_random_fraction_and_count_are_disjoint_and_seeded():
    a = uk.parse_forget("random:0.1", LABELS, seed=1)
    b = uk.parse_forget("random:0.1", LABELS, seed=1)
    c = uk.parse_forget("random:0.1", LABELS, seed=2)
    assert len(a.forget_idx) == 10 and len(a.retain_idx) == 90
    assert not set(a.forget_idx) & set(a.retain_idx)
    assert np.array_equal(a.forget_idx, b.forget_idx) and not np.array_equal(a.forget_idx, c.forget_idx)
    assert len(uk.parse_forget("random:7", LABELS).forget_idx) == 7


def test_class_spec_by_index_and_name_removes_class_from_test(digits):
    split = uk.parse_forget("class:2", LABELS, class_names=["a", "b", "c", "d", "e"])
    assert set(LABELS[split.forget_idx]) == {2} and len(split.forget_idx) == 20
    by_name = uk.parse_forget("class:c", LABELS, class_names=["a", "b", "c", "d", "e"])
    assert np.array_equal(split.forget_idx, by_name.forget_idx)
    s = uk.parse_forget("class:3", digits.train.y)
    assert 3 not in set(s.test(digits.test).y.tolist())
    assert len(s.test(digits.test)) < len(digits.test)


@pytest.mark.parametrize("suffix,content", [(".txt", "3 5, 7\n9"), (".json", "[3, 5, 7, 9]"), (".npy", None)])
def test_indices_files(tmp_path, suffix, content):
    path = tmp_path / f"ids{suffix}"
    if content is None:
        np.save(path, np.array([3, 5, 7, 9]))
    else:
        path.write_text(content)
    split = uk.parse_forget(f"indices:{path}", LABELS)
    assert split.forget_idx.tolist() == [3, 5, 7, 9]


@pytest.mark.parametrize(
    "content,match",
    [
        ("[1, 2, 2]", "duplicate"),
        ("[1, 100]", "out of range"),
        ("[-1]", "out of range"),
        ("[1.5, 2]", "integers"),
        ('["a"]', "integers"),
        ("[]", "empty"),
        (json.dumps(list(range(100))), "nothing would remain"),
    ],
)
def test_bad_indices_raise(tmp_path, content, match):
    path = tmp_path / "ids.json"
    path.write_text(content)
    with pytest.raises(ForgetSpecError, match=match):
        uk.parse_forget(f"indices:{path}", LABELS)


@pytest.mark.parametrize(
    "spec,match",
    [
        ("random:0", "no example"),
        ("random:1.5", r"\(0, 1\)"),
        ("random:100", "all 100"),
        ("random:abc", "fraction"),
        ("class:9", "unknown class"),
        ("class:zebra", "unknown class"),
        ("indices:/no/such/file.txt", "does not exist"),
        ("shuffle:3", "unknown forget kind"),
        ("random", "bad forget spec"),
    ],
)
def test_bad_specs_raise(spec, match):
    with pytest.raises(ForgetSpecError, match=match):
        uk.parse_forget(spec, LABELS, class_names=["a", "b", "c", "d", "e"])


def test_only_class_cannot_be_forgotten():
    with pytest.raises(ForgetSpecError, match="only class"):
        uk.parse_forget("class:0", np.zeros(10, dtype=int))
