"""UnlearnCanvas' protocol on the user's own UnlearnCanvas folder: the style × object grid, per-target UA / IRA /
CRA of each method's answer sets, and the ranking table (Zhang et al., "UnlearnCanvas: Stylized Image Dataset
for Enhanced Machine Unlearning Evaluation in Diffusion Models", NeurIPS 2024 Datasets & Benchmarks;
OPTML-Group/UnlearnCanvas ``machine_unlearning/evaluation/quantitative/accuracy.py`` and
``machine_unlearning/evaluation/sampling_unlearned_models/*.py``).

Layouts read (nothing is downloaded):

- the **dataset** folder: ``<canvas>/<Style>/<Object>/<n>.jpg`` — the styles (``Abstractionism``, …,
  ``Van_Gogh``, ``Seed_Images``) are its sub-folders, the objects (``Architectures``, …, ``Waterfalls``) theirs;
  every style must hold the same objects. Only the names are read: they define the grid.
- the **answer sets**: ``<answers>/<method>/<target>/<Style>_<Object>_seed<seed>.jpg`` — for each method, one
  folder per erased target (a style or an object name) holding every style × object generation, named as
  UnlearnCanvas' sampling scripts write them (prompt "A {Object} image in {Style with spaces} style.").
  The seeds are those of the first style × object pair; every pair must have them all.

:func:`write_answer_set` generates an answer set with any model the toolkit loads (UnlearnCanvas' prompt, DDIM
100 steps, guidance 9, seeds 188, 288, 588, 688, 888). Each answer set is judged on both axes; for a style
target UA = 100 − the target style's accuracy, IRA = the mean accuracy of the other styles, CRA = the mean
accuracy of every object (all styles), and the axes swap for an object target
(:func:`unlearnkit.diffusion.grid.canvas_scores`, as on the miniature grid). The main table averages each over
the style targets and over the object targets per method, and ranks the methods on each of the six columns
(1 = best; higher is better for all six) with their mean rank.

The judge: UnlearnCanvas ships ViT-Large style and object classifiers as pickled training checkpoints, which
this toolkit does not unpickle; here a zero-shot CLIP (:class:`ClipCanvasJudge`, the user's ``CLIPModel``
folder, prompts "an image in {Style} style" and "an image of {Object}") or any object with
``predict(axis, images) -> labels`` judges them — a deviation from the paper's figures, which come from its
classifiers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from ..errors import ConfigError, DataError, require
from ..results import ResultTable
from .concepts import ConceptSpec
from .grid import canvas_scores, summarise
from .schedule import ddim_sample
from .text_concepts import TextConceptData, text_concept_data

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
RANKED = ("style_ua", "style_ira", "style_cra", "object_ua", "object_ira", "object_cra")
CANVAS_COLUMNS = (
    ("model", "method"),
    ("style_ua", "style UA↑"),
    ("style_ira", "style IRA↑"),
    ("style_cra", "style CRA↑"),
    ("object_ua", "object UA↑"),
    ("object_ira", "object IRA↑"),
    ("object_cra", "object CRA↑"),
    ("mean_rank", "mean rank↓"),
    ("targets", "targets"),
)
TARGET_COLUMNS = (
    ("model", "method"),
    ("axis", "axis"),
    ("target", "target"),
    ("ua", "UA↑"),
    ("ira", "IRA↑"),
    ("cra", "CRA↑"),
)


class CanvasJudge(Protocol):
    """Anything that labels images (in [-1, 1], (N, 3, H, W)) on an axis ("style" or "object")."""

    def predict(self, axis: str, images: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class CanvasGrid:
    """The styles and objects of an UnlearnCanvas dataset folder, in sorted order."""

    styles: list[str]
    objects: list[str]

    def names(self, axis: str) -> list[str]:
        return self.styles if axis == "style" else self.objects


def _dirs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_grid(canvas: str | Path) -> CanvasGrid:
    """Styles and objects from an UnlearnCanvas dataset folder (``<canvas>/<Style>/<Object>/<n>.jpg``)."""
    root = Path(canvas)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; pass the UnlearnCanvas dataset folder (<Style>/<Object>/<n>.jpg)")
    styles = _dirs(root)
    if not styles:
        raise DataError(f"{root} has no style folders; pass the UnlearnCanvas dataset folder (<Style>/<Object>/…)")
    objects = _dirs(root / styles[0])
    for style in styles:
        got = _dirs(root / style)
        if got != objects:
            raise DataError(
                f"{root / style} holds objects {got}, but {styles[0]} holds {objects}; every style folder of an "
                "UnlearnCanvas dataset has the same object folders"
            )
    if not objects:
        raise DataError(f"{root / styles[0]} has no object folders; the layout is <Style>/<Object>/<n>.jpg")
    return CanvasGrid(styles, objects)


def _find(folder: Path, stem: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    return None


def answer_seeds(folder: Path, grid: CanvasGrid) -> list[str]:
    """The seeds of an answer set: those of its first style × object pair (``<Style>_<Object>_seed<seed>``)."""
    prefix = f"{grid.styles[0]}_{grid.objects[0]}_seed"
    seeds = sorted(
        {p.stem[len(prefix) :] for p in folder.iterdir() if p.stem.startswith(prefix) and p.suffix in IMAGE_SUFFIXES}
    )
    if not seeds:
        raise DataError(
            f"{folder} has no {prefix}<seed>.jpg; an answer set holds every <Style>_<Object>_seed<seed>.jpg "
            "(UnlearnCanvas' sampling scripts write them)"
        )
    return seeds


def load_image(path: Path, size: int) -> torch.Tensor:
    """An RGB image file → (3, size, size) in [-1, 1] (bicubic resize)."""
    require("PIL", extra="diffusion")
    from PIL import Image

    with Image.open(path) as img:
        rgb = img.convert("RGB").resize((size, size), Image.BICUBIC)
        x = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).view(size, size, 3)
    return x.permute(2, 0, 1).float() / 127.5 - 1


@torch.no_grad()
def judge_answer_set(
    folder: str | Path, grid: CanvasGrid, judge: CanvasJudge, *, size: int = 224
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(predicted, prompted) labels on both axes for every image of one answer set, one style at a time."""
    root = Path(folder)
    seeds = answer_seeds(root, grid)
    pred: dict[str, list[torch.Tensor]] = {"style": [], "object": []}
    true: dict[str, list[int]] = {"style": [], "object": []}
    for si, style in enumerate(grid.styles):
        images = []
        for oi, obj in enumerate(grid.objects):
            for seed in seeds:
                path = _find(root, f"{style}_{obj}_seed{seed}")
                if path is None:
                    raise DataError(f"{root} lacks {style}_{obj}_seed{seed}.jpg; every style × object × seed is needed")
                images.append(load_image(path, size))
                true["style"].append(si)
                true["object"].append(oi)
        batch = torch.stack(images)
        for axis in pred:
            pred[axis].append(torch.as_tensor(judge.predict(axis, batch)).long().cpu())
    return {a: torch.cat(p) for a, p in pred.items()}, {a: torch.tensor(t) for a, t in true.items()}


def _target(grid: CanvasGrid, name: str) -> ConceptSpec | None:
    for axis in ("style", "object"):
        if name in grid.names(axis):
            return ConceptSpec(axis, grid.names(axis).index(name), name)
    return None


def rank_methods(rows: list[dict[str, Any]], columns: Sequence[str] = RANKED) -> list[dict[str, Any]]:
    """Add ``rank_<column>`` (1 = highest value; ties share the best rank; a missing value ranks last) and
    ``mean_rank`` over ``columns`` to each row; return the rows sorted by mean rank."""
    for col in columns:
        values = [r.get(col) for r in rows]
        for r, v in zip(rows, values):
            r[f"rank_{col}"] = (
                len(rows) if v is None else 1 + sum(1 for w in values if w is not None and w > v)
            )  # fmt: skip
    for r in rows:
        r["mean_rank"] = sum(r[f"rank_{c}"] for c in columns) / len(columns)
    return sorted(rows, key=lambda r: (r["mean_rank"], r["model"]))


@dataclass
class CanvasRun:
    """The ranking table (one row per method), the per-target table and the grid it was read on."""

    table: ResultTable
    targets: ResultTable
    grid: CanvasGrid


def run_canvas(
    canvas: str | Path,
    answers: str | Path,
    judge: CanvasJudge,
    *,
    methods: Sequence[str] | None = None,
    size: int = 224,
    out_dir: str | Path | None = None,
) -> CanvasRun:
    """Score every ``<answers>/<method>/<target>/`` answer set (``methods``: a subset of the method folders) on
    the grid of the UnlearnCanvas folder ``canvas``; write ``results.json/csv`` (ranking) and
    ``targets.json/csv`` (per target) to ``out_dir`` when given, as one staged set that replaces an earlier
    results folder whole (:mod:`unlearnkit.outputs`)."""
    if out_dir is not None:
        from ..validation import check_results_folder

        check_results_folder(out_dir, inputs=[canvas, answers])
    grid = read_grid(canvas)
    root = Path(answers)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; pass the answer sets as <answers>/<method>/<target>/")
    names = list(methods) if methods else _dirs(root)
    missing = [m for m in names if not (root / m).is_dir()]
    if missing or not names:
        raise ConfigError(f"no answer sets for {missing or 'any method'} in {root}; methods found: {_dirs(root)}")
    n_concepts = {"style": len(grid.styles), "object": len(grid.objects)}
    rows, per_target = [], []
    for method in names:
        mine = []
        for target in _dirs(root / method):
            spec = _target(grid, target)
            if spec is None:
                raise DataError(
                    f"{root / method / target} names no style or object of {canvas}; each answer-set folder is "
                    "named after the erased style or object"
                )
            pred, true = judge_answer_set(root / method / target, grid, judge, size=size)
            scores = canvas_scores(pred, true, spec, n_concepts)
            mine.append({"model": method, "axis": spec.axis, "target": target, **scores})
        if not mine:
            raise DataError(f"{root / method} has no answer-set folders (<target>/<Style>_<Object>_seed<seed>.jpg)")
        per_target += mine
        rows.append(summarise(method, mine))
    rows = rank_methods(rows)
    title = f"UnlearnCanvas: {len(grid.styles)} styles × {len(grid.objects)} objects (UA/IRA/CRA in %)"
    table = ResultTable(title, rows, list(CANVAS_COLUMNS))
    targets = ResultTable(f"{title}, per target", per_target, list(TARGET_COLUMNS))
    if out_dir is not None:
        from ..outputs import atomic_write_text, staged_folder, write_json

        with staged_folder(out_dir, replace=True) as staging:  # both tables at once, nothing stale
            for stem, t in (("results", table), ("targets", targets)):
                write_json(staging / f"{stem}.json", t.to_dict())
                atomic_write_text(staging / f"{stem}.csv", t.to_csv())
    return CanvasRun(table, targets, grid)


#: UnlearnCanvas' sampling settings (``sampling_unlearned_models/esd.py``): DDIM steps, guidance, seeds
CANVAS_STEPS = 100
CANVAS_GUIDANCE = 9.0
CANVAS_SEEDS = (188, 288, 588, 688, 888)


def canvas_prompt(style: str, obj: str) -> str:
    """UnlearnCanvas' generation prompt: "A {Object} image in {Style, underscores as spaces} style."."""
    return f"A {obj} image in {style.replace('_', ' ')} style."


def prompt_data(grid: CanvasGrid) -> TextConceptData:
    """Every style × object prompt of the grid as prompt data (for loading a pipeline over those words)."""
    prompts = [canvas_prompt(s, o) for s in grid.styles for o in grid.objects]
    return text_concept_data(prompts[0], prompts[1:])


@torch.no_grad()
def write_answer_set(
    model: nn.Module,
    data: TextConceptData,
    grid: CanvasGrid,
    folder: str | Path,
    *,
    seeds: Sequence[int] = CANVAS_SEEDS,
    steps: int = CANVAS_STEPS,
    guidance: float = CANVAS_GUIDANCE,
    batch_size: int = 8,
) -> Path:
    """Generate one answer set into the new folder ``folder``: every style × object prompt once per seed, named
    ``<Style>_<Object>_seed<seed>.jpg`` as UnlearnCanvas' sampling scripts write them (DDIM with ``steps``,
    guidance ``guidance``). ``model`` is loaded over :func:`prompt_data` of the grid. The noise of each image
    comes from its seed and batch position, not from UnlearnCanvas' global seeding, so the images differ from
    theirs for the same seed."""
    require("PIL", extra="diffusion")
    from PIL import Image

    root = Path(folder)
    if root.exists() and any(root.iterdir()):
        raise ConfigError(f"{root} exists and is not empty; choose a new folder for the answer set")
    root.mkdir(parents=True, exist_ok=True)
    pairs = [(s, o) for s in grid.styles for o in grid.objects]
    index = {p: i for i, p in enumerate(data.object_names)}
    missing = [canvas_prompt(s, o) for s, o in pairs if canvas_prompt(s, o) not in index]
    if missing:
        raise ConfigError(f"the prompt data lacks {missing[:2]}; build it with prompt_data(grid)")
    model.eval()
    decode = getattr(model, "from_latents", None)
    for seed in seeds:
        gen = torch.Generator().manual_seed(int(seed))
        for i in range(0, len(pairs), batch_size):
            chunk = pairs[i : i + batch_size]
            tokens = torch.stack([data.prompt(index[canvas_prompt(s, o)]) for s, o in chunk])
            x = ddim_sample(model, tokens, steps=steps, guidance=guidance, generator=gen)
            x = (x if decode is None else decode(x)).cpu().clamp(-1, 1)
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            pixels = ((x + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
            for (s, o), img in zip(chunk, pixels):
                Image.fromarray(img).save(root / f"{s}_{o}_seed{seed}.jpg", quality=95)
    return root


class ClipCanvasJudge:
    """Zero-shot labels from a :class:`~unlearnkit.diffusion.clip_evaluator.ZeroShotCLIP`: styles against
    "an image in {Style} style", objects against "an image of {Object}" (underscores read as spaces)."""

    def __init__(self, clip: Any, grid: CanvasGrid) -> None:
        self.clip = clip
        self.prompts = {
            "style": [f"an image in {s.replace('_', ' ')} style" for s in grid.styles],
            "object": [f"an image of {o.replace('_', ' ')}" for o in grid.objects],
        }
        self._text = {axis: clip.text_embeddings(p) for axis, p in self.prompts.items()}
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None

    def predict(self, axis: str, images: torch.Tensor) -> torch.Tensor:
        if self._last is None or self._last[0] is not images:  # both axes of one batch: embed it once
            self._last = (images, self.clip.image_embeddings(images))
        return (self._last[1] @ self._text[axis].T).argmax(dim=1)
