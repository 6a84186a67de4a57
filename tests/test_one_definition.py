"""One implementation per idea: a public name is defined in one module of the package, there is one ROC/AUC
(:mod:`unlearnkit.audit.roc`), and names retired for being ambiguous stay retired. A static scan of ``src/``."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "unlearnkit"

#: public names defined on purpose in several modules, with the reason
INTENTIONAL = {
    "add_commands": "each cli/ module's hook that registers its subcommands",
    "detect": "each families/ module's part of the Family record (family.py): how it recognises its models",
    "request": "each families/ module's part of the Family record: how it builds its request",
    "finish": "each families/ module's part of the Family record: how it makes its result",
    "method": "each families/ module's part of the Family record: how it builds its method",
    "working_copy": "each families/ module's part of the Family record: the copy its method trains",
}

#: public names still defined in more than one module, each with its modules; remove an entry once the name is
#: defined once (from then on this test keeps it so)
NOT_YET_ONE = {
    "cache_key": {"diffusion/training.py", "gan/train.py"},
    "check_output_folder": {"outputs.py", "validation.py"},
    "check_weights": {"engine.py", "exact/weights.py"},
    "default_cache_dir": {"diffusion/training.py", "gan/train.py"},
    "fault_point": {"exact/faults.py", "outputs.py"},
    "frozen": {"gan/train.py", "methods/distill.py"},
    "png_bytes": {"diffusion/images.py", "report/figures.py"},
    "relearn_attack": {"audit/relearn.py", "lm/attacks.py"},
    "scaled_epochs": {"bench.py", "budget.py"},
    "unlearning_accuracy": {"diffusion/metrics.py", "metrics/accuracy.py"},
}

#: names that meant different things in different modules; each meaning now has its own name
RETIRED = {"AttackResult", "forget_quality", "fisher_diagonal", "auc", "auroc"}

#: the module that owns ROC and AUC, and what no other module may use or define
ROC_MODULE = "audit/roc.py"
ROC_IMPORTS = {("sklearn.metrics", n) for n in ("roc_auc_score", "roc_curve", "auc")}
ROC_IMPORTS |= {("scipy.stats", n) for n in ("rankdata", "mannwhitneyu")}
ROC_ATTRIBUTES = {"roc_auc_score", "rankdata", "mannwhitneyu"}
AUC_NAME = re.compile(r"(^|_)(auc|auroc|roc_curve)$")


DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@cache
def _modules() -> dict[str, ast.Module]:
    return {str(p.relative_to(SRC)): ast.parse(p.read_text(encoding="utf-8")) for p in sorted(SRC.rglob("*.py"))}


def _top_level_bindings(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, DEFINITIONS):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def test_every_public_name_is_defined_in_one_module():
    where: dict[str, set[str]] = defaultdict(set)
    for path, tree in _modules().items():
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and not node.name.startswith(
                "_"
            ):
                where[node.name].add(path)
    repeated = {name: paths for name, paths in where.items() if len(paths) > 1 and name not in INTENTIONAL}
    new = {name: sorted(paths) for name, paths in repeated.items() if not paths <= NOT_YET_ONE.get(name, set())}
    assert not new, (
        f"public names defined in more than one module: {new}; import the one definition, or give a different idea "
        "its own name"
    )


def test_retired_ambiguous_names_are_bound_nowhere():
    found = {path: sorted(_top_level_bindings(tree) & RETIRED) for path, tree in _modules().items()}
    found = {path: names for path, names in found.items() if names}
    assert not found, f"retired ambiguous names are back: {found}; use the precise names"


def test_roc_and_auc_are_computed_in_one_module():
    offenders = []
    for path, tree in _modules().items():
        if path == ROC_MODULE:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                offenders += [f"{path}: imports {a.name}" for a in node.names if (node.module, a.name) in ROC_IMPORTS]
            elif isinstance(node, ast.Attribute) and node.attr in ROC_ATTRIBUTES:
                offenders.append(f"{path}: uses {node.attr}")
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and AUC_NAME.search(node.name):
                offenders.append(f"{path}: defines {node.name}")
    assert not offenders, f"a second ROC/AUC implementation: {offenders}; use unlearnkit.audit.roc"
