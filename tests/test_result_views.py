"""Results in notebooks and data tools: ``_repr_html_``, ``to_pandas()`` and ``.plot()`` on an unlearning result,
on a results table and on a bench run; without pandas, ``to_pandas`` names the extra to install."""

import sys

import matplotlib
import pytest
import torch

import unlearnkit as uk
from unlearnkit.errors import MissingDependencyError
from unlearnkit.result_views import TableViews
from unlearnkit.results import ResultTable

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def result():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 6, generator=g)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    return uk.unlearn(
        model, (x[:8], y[:8]), (x[8:], y[8:]), "neggrad-plus", epochs=3, batch_size=16, lr=0.01, progress=False
    )


TABLE = ResultTable(
    "toy bench",
    [
        {"method": "retrain", "forget_acc": 50.0, "seconds": 3.0, "extra": {"a": 1}},
        {"method": "ga", "forget_acc": 20.0, "seconds": 1.0, "extra": {"a": 2}},
        {"method": "<b>x</b>", "forget_acc": None, "seconds": 2.0},
    ],
    [("method", "Method"), ("forget_acc", "Forget acc."), ("seconds", "s")],
)


def test_unlearn_result_history_and_plot(result):
    assert len(result.history) == 3
    phases = list(result.history[0])
    ax = result.plot()
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == phases
    for phase, line in zip(phases, lines):
        assert list(line.get_xdata()) == [1, 2, 3]
        assert list(line.get_ydata()) == pytest.approx([e[phase] for e in result.history])


def test_unlearn_result_to_pandas_and_html(result):
    df = result.to_pandas()
    assert len(df) == 1 and df.loc[0, "method"] == "neggrad-plus"
    assert df.loc[0, "hparams.lr"] == 0.01 and df.loc[0, "hparams.epochs"] == 3
    assert any(c.startswith("report.collapse.") for c in df.columns)  # nested report keys joined by dots
    page = result._repr_html_()
    assert page.startswith("<table") and "neggrad-plus" in page and "hparams.lr" in page


def test_result_table_views():
    df = TABLE.to_pandas()
    assert list(df.columns) == ["method", "forget_acc", "seconds"]  # the table's order; nested cells left out
    assert df["seconds"].tolist() == [3.0, 1.0, 2.0]
    page = TABLE._repr_html_()
    assert "<caption>toy bench</caption>" in page and "Forget acc." in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page  # cells are escaped
    ax = TABLE.plot()  # the first numeric column: forget_acc; the row without a number is left out
    assert [t.get_text() for t in ax.get_yticklabels()] == ["retrain", "ga"]
    assert ax.yaxis_inverted()  # the first row on top, as in the printed table
    assert [p.get_width() for p in ax.patches] == [50.0, 20.0]
    assert ax.get_xlabel() == "Forget acc."
    assert [p.get_width() for p in TABLE.plot("seconds").patches] == [3.0, 1.0, 2.0]


def test_bench_runs_show_their_table():
    from unlearnkit.bench import BenchRun
    from unlearnkit.diffusion.bench import DiffBenchRun
    from unlearnkit.gan.bench import GANBenchRun
    from unlearnkit.lm.bench import LMBenchRun

    assert all(issubclass(c, TableViews) for c in (BenchRun, LMBenchRun, GANBenchRun, DiffBenchRun))

    class Run(TableViews):
        table = TABLE

    assert Run()._repr_html_() == TABLE._repr_html_()
    assert Run().to_pandas().equals(TABLE.to_pandas())


def test_to_pandas_without_pandas_names_the_extra(result, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now fails
    for obj in (result, TABLE):
        with pytest.raises(MissingDependencyError, match=r"unlearnkit\[report\]"):
            obj.to_pandas()
