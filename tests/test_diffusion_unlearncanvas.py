"""UnlearnCanvas' protocol on a tiny fake folder in UnlearnCanvas' layout (dataset <Style>/<Object>/<n>.jpg, answer
sets <method>/<target>/<Style>_<Object>_seed<seed>.jpg): per-target UA / IRA / CRA and the ranking table."""

from __future__ import annotations

import json

import pytest
import torch

from unlearnkit.diffusion.unlearncanvas import rank_methods, read_grid, run_canvas
from unlearnkit.errors import DataError

PIL = pytest.importorskip("PIL.Image")

STYLES = ["Blue_Sea", "Green_Field", "Red_Ink"]  # sorted, as read from the folder; RGB channel = 2, 1, 0
OBJECTS = ["Cats", "Dogs_Big"]  # bright top half, bright bottom half
SEEDS = ("188", "288")
CHANNEL = {"Blue_Sea": 2, "Green_Field": 1, "Red_Ink": 0}


def _image(style: str, obj: str, size: int = 16):
    x = torch.full((size, size, 3), 30.0)
    x[..., CHANNEL[style]] = 220.0
    half = slice(size // 2, None) if obj == "Cats" else slice(0, size // 2)
    x[half] *= 0.3
    return PIL.fromarray(x.round().to(torch.uint8).numpy())


class ColourJudge:
    """Style = the brightest colour channel; object = which half is brighter."""

    def predict(self, axis: str, images: torch.Tensor) -> torch.Tensor:
        if axis == "style":
            return 2 - images.mean(dim=(2, 3)).argmax(dim=1)  # channel 0 (red) is style 2 (Red_Ink)
        h = images.shape[-2] // 2
        top, bottom = images[:, :, :h].mean(dim=(1, 2, 3)), images[:, :, h:].mean(dim=(1, 2, 3))
        return (bottom > top).long()


def _answers(folder, draw):
    """One answer set: ``draw(style, obj) -> (style, obj)`` says what each prompt's image shows."""
    folder.mkdir(parents=True)
    for s in STYLES:
        for o in OBJECTS:
            for seed in SEEDS:
                _image(*draw(s, o)).save(folder / f"{s}_{o}_seed{seed}.jpg", quality=95)


@pytest.fixture
def canvas(tmp_path):
    root = tmp_path / "UnlearnCanvas"
    for s in STYLES:
        for o in OBJECTS:
            (root / s / o).mkdir(parents=True)
            _image(s, o).save(root / s / o / "1.jpg")
    ans = tmp_path / "answers"
    same = lambda s, o: (s, o)  # noqa: E731
    _answers(ans / "good" / "Red_Ink", lambda s, o: ("Green_Field" if s == "Red_Ink" else s, o))
    _answers(ans / "good" / "Cats", lambda s, o: (s, "Dogs_Big"))
    _answers(ans / "weak" / "Red_Ink", same)
    _answers(ans / "weak" / "Cats", same)
    _answers(ans / "harmful" / "Red_Ink", lambda s, o: ("Green_Field", o))
    return root, ans


def test_grid_is_read_from_the_dataset_folder_and_must_be_complete(canvas):
    root, _ = canvas
    grid = read_grid(root)
    assert grid.styles == STYLES and grid.objects == OBJECTS
    (root / "Red_Ink" / "Dogs_Big" / "1.jpg").unlink()
    (root / "Red_Ink" / "Dogs_Big").rmdir()
    with pytest.raises(DataError, match="same object folders"):
        read_grid(root)


def test_per_target_scores_and_ranking_follow_unlearncanvas(canvas, tmp_path):
    root, ans = canvas
    run = run_canvas(root, ans, ColourJudge(), size=16, out_dir=tmp_path / "out")
    per = {(r["model"], r["target"]): r for r in run.targets.rows}
    assert (per["good", "Red_Ink"]["ua"], per["good", "Red_Ink"]["ira"], per["good", "Red_Ink"]["cra"]) == (
        100.0, 100.0, 100.0,
    )  # fmt: skip
    assert (per["good", "Cats"]["ua"], per["good", "Cats"]["ira"], per["good", "Cats"]["cra"]) == (100.0, 100.0, 100.0)
    assert (per["weak", "Red_Ink"]["ua"], per["weak", "Red_Ink"]["ira"]) == (0.0, 100.0)
    # every style drawn as Green_Field: Blue_Sea 0 %, Green_Field 100 % -> IRA 50; objects untouched -> CRA 100
    assert (per["harmful", "Red_Ink"]["ua"], per["harmful", "Red_Ink"]["ira"]) == (100.0, 50.0)
    assert per["harmful", "Red_Ink"]["cra"] == 100.0
    ranking = [r["model"] for r in run.table.rows]
    assert ranking == ["good", "weak", "harmful"]
    by = {r["model"]: r for r in run.table.rows}
    assert by["good"]["mean_rank"] == 1.0
    assert by["weak"]["mean_rank"] == pytest.approx((3 + 1 + 1 + 2 + 1 + 1) / 6)
    assert by["harmful"]["object_ua"] is None and by["harmful"]["rank_object_ua"] == 3
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["model"] for r in saved["rows"]] == ranking


def test_a_missing_answer_image_is_named(canvas):
    root, ans = canvas
    (ans / "weak" / "Cats" / "Blue_Sea_Dogs_Big_seed288.jpg").unlink()
    with pytest.raises(DataError, match="Blue_Sea_Dogs_Big_seed288"):
        run_canvas(root, ans, ColourJudge(), methods=["weak"], size=16)


def test_ranking_ties_share_the_best_rank():
    rows = rank_methods([{"model": "a", "x": 1.0}, {"model": "b", "x": 1.0}, {"model": "c", "x": 0.0}], ["x"])
    assert [(r["model"], r["rank_x"]) for r in rows] == [("a", 1), ("b", 1), ("c", 3)]


def test_cli_diff_canvas_with_a_zero_shot_clip_folder(canvas, tmp_path, capsys):
    pytest.importorskip("transformers")
    from unlearnkit.cli import main
    from unlearnkit.diffusion.clip_evaluator import tiny_clip

    root, ans = canvas
    words = ["an", "image", "in", "of", "style", "Blue", "Sea", "Green", "Field", "Red", "Ink", "Cats", "Dogs", "Big"]
    clip = tiny_clip(words, tmp_path / "clip")
    args = ["diff-canvas", "--canvas", str(root), "--answers", str(ans), "--evaluator-model", str(clip)]
    assert main([*args, "--methods", "good,weak", "--size", "16", "--out", str(tmp_path / "o")]) == 0
    rows = json.loads((tmp_path / "o" / "results.json").read_text())["rows"]
    assert sorted(r["model"] for r in rows) == ["good", "weak"]
    assert all(0 <= r["style_ua"] <= 100 and 1 <= r["mean_rank"] <= 2 for r in rows)
    assert "mean rank" in capsys.readouterr().out


def test_diff_canvas_sample_writes_an_answer_set_that_diff_canvas_reads(canvas, tmp_path):
    pytest.importorskip("diffusers")
    from unlearnkit.cli import main
    from unlearnkit.diffusion.hf import tiny_pipeline
    from unlearnkit.diffusion.unlearncanvas import canvas_prompt, prompt_data

    root, ans = canvas
    grid = read_grid(root)
    assert canvas_prompt("Red_Ink", "Dogs_Big") == "A Dogs_Big image in Red Ink style."
    sd = tiny_pipeline(prompt_data(grid).vocab.words[1:], tmp_path / "sd", latent=True, width=8)
    out = ans / "sampled" / "Red_Ink"
    args = ["diff-canvas-sample", "--model", str(sd), "--canvas", str(root), "--out", str(out), "--seeds", "1,2"]
    assert main([*args, "--ddim-steps", "1", "--no-progress"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{s}_{o}_seed{k}.jpg" for s in STYLES for o in OBJECTS for k in (1, 2))
    row = run_canvas(root, ans, ColourJudge(), methods=["sampled"], size=16).targets.rows[0]
    assert (row["model"], row["target"], row["axis"]) == ("sampled", "Red_Ink", "style")
    assert main([*args, "--ddim-steps", "1", "--no-progress"]) == 2  # the answer set is never overwritten
