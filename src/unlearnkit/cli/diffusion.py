"""Generative-unlearning commands: ``diff-train``, ``diff-bench``, ``diff-unlearn`` and ``diff-eval`` (the
miniature text-to-image model or any local diffusers Stable Diffusion folder)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .options import add_common, parse_hparams, run_settings


def _add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="digits", choices=("digits", "fashion-mnist"))
    p.add_argument("--train-subset", type=int, help="keep a fixed class-stratified subset of the training images")
    p.add_argument("--data-dir", help="folder with the dataset's files")
    p.add_argument("--steps", type=int, default=3000, help="DDPM training steps (default 3000)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--base", type=int, default=16, help="UNet base width (channels)")
    p.add_argument(
        "--arch",
        default="unlearnkit",
        choices=("unlearnkit", "diffusers"),
        help="miniature architecture: the toolkit's own UNet (default, fastest) or a diffusers "
        "UNet2DConditionModel + CLIPTextModel saved as a pipeline folder",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", help="model cache (default ~/.cache/unlearnkit/diffusion)")


def _train_config(args: argparse.Namespace):
    from ..diffusion.training import DiffusionTrainConfig

    return DiffusionTrainConfig(
        steps=args.steps, lr=args.lr, batch_size=args.batch_size, base=args.base, seed=args.seed, arch=args.arch
    )


def cmd_diff_train(args: argparse.Namespace) -> int:
    from ..diffusion import cached_model, load_concept_data, parse_concept
    from ..diffusion.training import cache_key, default_cache_dir

    data = load_concept_data(args.dataset, train_subset=args.train_subset, data_dir=args.data_dir, seed=args.seed)
    exclude = parse_concept(args.exclude, data) if args.exclude else None
    cfg = _train_config(args)
    _, meta = cached_model(
        data, cfg, exclude=exclude, cache_dir=args.cache_dir, device=args.device, progress=not args.no_progress
    )
    path = (Path(args.cache_dir) if args.cache_dir else default_cache_dir()) / cache_key(data, cfg, exclude)
    print(f"model: {path}  (trained in {meta['seconds']:.1f}s on {meta['device']})")
    return 0


def cmd_diff_bench(args: argparse.Namespace) -> int:
    from ..diffusion.bench import DEFAULT_DIFF_METHODS, DiffBenchConfig, run_diff_bench
    from ..diffusion.evaluate import SamplingConfig

    if args.grid:
        return cmd_diff_grid(args)
    out = args.out or str(Path("runs") / f"diff-bench-{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")
    cfg = DiffBenchConfig(
        dataset=args.dataset,
        concept=args.concept,
        methods=args.methods.split(",") if args.methods else DEFAULT_DIFF_METHODS,
        hparams=parse_hparams(args.hp, nested=True),
        train=_train_config(args),
        sampling=SamplingConfig(
            steps=args.ddim_steps, guidance=args.guidance, per_prompt=args.per_prompt, seed=args.seed
        ),
        attack=not args.no_attack,
        attack_steps=args.attack_steps,
        attack_rounds=args.attack_rounds,
        attack_seeds=args.attack_seeds,
        retrain=not args.no_retrain,
        inception=args.inception,
        **run_settings(args, out),
    )
    run = run_diff_bench(cfg)
    run.table.print()
    print(f"results: {out}/results.json, {out}/results.csv; sample grids: {out}/samples-*.png")
    return 0


def cmd_diff_grid(args: argparse.Namespace) -> int:
    """``diff-bench --grid``: UnlearnCanvas' main table (style / object UA, IRA, CRA per method)."""
    from ..diffusion.evaluate import SamplingConfig
    from ..diffusion.grid import DEFAULT_GRID_METHODS, GridConfig, run_diff_grid

    out = args.out or str(Path("runs") / f"diff-grid-{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")
    cfg = GridConfig(
        dataset=args.dataset,
        styles=[s for s in args.styles.split(",") if s],
        objects=[o for o in args.objects.split(",") if o],
        methods=args.methods.split(",") if args.methods else DEFAULT_GRID_METHODS,
        hparams=parse_hparams(args.hp, nested=True),
        train=_train_config(args),
        sampling=SamplingConfig(
            steps=args.ddim_steps, guidance=args.guidance, per_prompt=args.per_prompt, seed=args.seed
        ),
        **run_settings(args, out),
    )
    run = run_diff_grid(cfg)
    run.table.print()
    print(f"results: {out}/results.json (main table), {out}/targets.json (per target)")
    return 0


STEPS_HELP = "sampling steps for evaluation: DDIM, or a diffusers pipeline's own scheduler (<= 50)"


def _concept_data(args: argparse.Namespace):
    from ..diffusion import load_concept_data
    from ..diffusion.text_concepts import check_text_model, is_text_concept, text_concept_data

    if is_text_concept(args.concept):
        check_text_model(args.model)
        return text_concept_data(args.concept, args.contrast, images_per_prompt=getattr(args, "text_images", 8))
    return load_concept_data(args.dataset, train_subset=args.train_subset, data_dir=args.data_dir, seed=args.seed)


def cmd_diff_unlearn(args: argparse.Namespace) -> int:
    from ..diffusion import parse_concept, unlearn_concept
    from ..diffusion.io import describe, load_model, save_model
    from ..diffusion.metrics import changed_storage_mb
    from ..outputs import check_output_folder

    check_output_folder(args.out, overwrite=args.overwrite, inputs=[args.model, args.data_dir])
    data = _concept_data(args)
    concept = parse_concept(args.concept, data)
    model = load_model(args.model, data, device=args.device)
    hps = parse_hparams(args.hp, nested=False, method=args.method)
    res = unlearn_concept(
        model, data, concept, args.method, device=args.device, progress=not args.no_progress, seed=args.seed, **hps
    )
    meta = {"dataset": args.dataset, "unlearned": f"{concept.axis}:{concept.word}", "method": res.method}
    out = save_model(res.model.cpu(), args.out, {**meta, "hparams": res.hparams}, overwrite=args.overwrite)
    changed = changed_storage_mb(model.cpu(), res.model)
    print(f"{res.method} erased {concept.axis} {concept.word!r} from {describe(args.model)} in {res.seconds:.1f}s")
    print(f"changed tensors: {changed:.3f} MB; saved to {out}")
    return 0


def cmd_diff_eval(args: argparse.Namespace) -> int:
    import hashlib

    from ..diffusion import load_concept_data, parse_concept
    from ..diffusion.attacks import unlearndiffatk
    from ..diffusion.evaluate import SamplingConfig, evaluate_erasure
    from ..diffusion.evaluators import cached_evaluators
    from ..diffusion.inception import InceptionFID
    from ..diffusion.io import describe, load_model
    from ..diffusion.text_concepts import is_text_concept
    from ..outputs import check_output_file

    if args.json:
        check_output_file(args.json, overwrite=args.overwrite, inputs=[args.model, args.data_dir, args.cache_dir])
    data = _concept_data(args)
    sampling = SamplingConfig(steps=args.ddim_steps, guidance=args.guidance, per_prompt=args.per_prompt, seed=args.seed)
    if is_text_concept(args.concept) or args.evaluator_model:
        return _eval_text(args, data, sampling)
    test = load_concept_data(args.dataset, split="test", data_dir=args.data_dir, seed=args.seed)
    concept = parse_concept(args.concept, data)
    model = load_model(args.model, data, device=args.device)
    key = hashlib.sha256(f"{args.dataset}|{args.train_subset}|{len(data)}".encode()).hexdigest()[:12]
    ev = cached_evaluators(
        data, test, key=key, cache_dir=args.cache_dir, seed=args.seed, device=args.device, progress=not args.no_progress
    )
    inception = InceptionFID(args.inception, device=args.device) if args.inception else None
    metrics = dict(evaluate_erasure(model, data, concept, ev, sampling, inception=inception).metrics)
    if args.attack_rounds > 0:
        atk = unlearndiffatk(
            model, data, concept, ev, rounds=args.attack_rounds, iterations=args.attack_steps,
            seeds_per_prompt=args.attack_seeds, ddim_steps=args.ddim_steps, guidance=args.guidance, seed=args.seed,
        )  # fmt: skip
        metrics.update(asr_attack_before=atk.asr_plain, asr_attack=atk.asr, attack_instances=atk.instances)
    print(f"{describe(args.model)}, concept {concept.axis}:{concept.word} (percent; FD in evaluator features)")
    _print_metrics(metrics, args.json)
    return 0


def _print_metrics(metrics: dict, json_path: str | None) -> None:
    from ..outputs import write_json

    for name, value in metrics.items():
        print(f"  {name:>18}: {value:.2f}" if isinstance(value, float) else f"  {name:>18}: {value}")
    if json_path:
        write_json(json_path, metrics)


def _eval_text(args: argparse.Namespace, data, sampling) -> int:
    """``diff-eval`` of a free-text concept: zero-shot CLIP over the concept and contrast prompts."""
    from ..diffusion import parse_concept
    from ..diffusion.clip_evaluator import ZeroShotCLIP, evaluate_text_erasure
    from ..diffusion.io import describe, load_model
    from ..diffusion.text_concepts import check_text_eval

    check_text_eval(args.concept, args.evaluator_model, args.attack_rounds)
    concept = parse_concept(args.concept, data)
    model = load_model(args.model, data, device=args.device)
    clip = ZeroShotCLIP(args.evaluator_model, device=args.device)
    res = evaluate_text_erasure(model, data, concept, clip, sampling, min_confidence=args.min_confidence)
    print(f"{describe(args.model)}, concept {concept.word!r} vs {len(data.object_names) - 1} contrast prompts "
          "(percent; zero-shot CLIP)")  # fmt: skip
    _print_metrics(res.metrics, args.json)
    return 0


def cmd_diff_canvas(args: argparse.Namespace) -> int:
    """``diff-canvas``: UnlearnCanvas' per-target UA / IRA / CRA and ranking table from the user's folders."""
    from ..diffusion.clip_evaluator import ZeroShotCLIP
    from ..diffusion.unlearncanvas import ClipCanvasJudge, read_grid, run_canvas

    judge = ClipCanvasJudge(ZeroShotCLIP(args.evaluator_model, device=args.device), read_grid(args.canvas))
    methods = [m for m in args.methods.split(",") if m] if args.methods else None
    run = run_canvas(args.canvas, args.answers, judge, methods=methods, size=args.size, out_dir=args.out)
    run.targets.print()
    run.table.print()
    if args.out:
        print(f"results: {args.out}/results.json (ranking), {args.out}/targets.json (per target)")
    return 0


def cmd_diff_canvas_sample(args: argparse.Namespace) -> int:
    """``diff-canvas-sample``: one UnlearnCanvas answer set from a Stable Diffusion folder."""
    from ..diffusion.io import load_model
    from ..diffusion.text_concepts import check_text_model
    from ..diffusion.unlearncanvas import prompt_data, read_grid, write_answer_set

    check_text_model(args.model)
    grid = read_grid(args.canvas)
    data = prompt_data(grid)
    model = load_model(args.model, data, device=args.device)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    out = write_answer_set(model, data, grid, args.out, seeds=seeds, steps=args.ddim_steps, guidance=args.guidance)
    print(f"answer set: {len(grid.styles)} styles × {len(grid.objects)} objects × {len(seeds)} seeds in {out}")
    return 0


def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="digits", choices=("digits", "fashion-mnist"))
    p.add_argument("--train-subset", type=int, help="keep a fixed class-stratified subset of the training images")
    p.add_argument("--data-dir", help="folder with the dataset's files")
    p.add_argument("--seed", type=int, default=0)


def _add_text(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--contrast", action="append", metavar="PROMPT",
        help="text:PROMPT concepts: a prompt of what is kept (repeatable; the first is the anchor; default: "
        "'a photo', 'a painting', 'a drawing', 'a photo of a person', 'a photo of an animal', 'a landscape')",
    )  # fmt: skip


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diff-train", help="train (or find in the cache) the miniature text-to-image model")
    _add_train(p)
    p.add_argument("--exclude", help="train without a concept (the retrain reference), e.g. object:three")
    add_common(p)
    p.set_defaults(func=cmd_diff_train)

    p = sub.add_parser("diff-bench", help="original, retrain and every concept-erasure method, with attacks and grids")
    _add_train(p)
    p.add_argument("--concept", default="object:three", help="object:NAME|INDEX or style:NAME (default object:three)")
    p.add_argument("--methods", help="comma-separated (default: ga,rl,salun,esd-x,esd-u,concept-correction,advunlearn)")
    p.add_argument("--hp", action="append", metavar="METHOD.NAME=VALUE", help="method hyper-parameter (repeatable)")
    p.add_argument("--ddim-steps", type=int, default=25, help=STEPS_HELP)
    p.add_argument("--guidance", type=float, default=2.0, help="classifier-free guidance w")
    p.add_argument("--per-prompt", type=int, default=6, help="images generated per prompt")
    p.add_argument("--attack-rounds", type=int, default=5, help="UnlearnDiffAtk rounds (timesteps) per prompt")
    p.add_argument("--attack-steps", type=int, default=10, help="UnlearnDiffAtk Adam steps per round")
    p.add_argument("--attack-seeds", type=int, default=4, help="evaluation seeds per attacked prompt")
    p.add_argument("--no-attack", action="store_true", help="skip UnlearnDiffAtk")
    p.add_argument("--no-retrain", action="store_true", help="skip training the retrain reference")
    p.add_argument("--out", help="results folder (default runs/diff-bench-DATASET-TIME)")
    p.add_argument("--grid", action="store_true", help="UnlearnCanvas-style grid: erase each of --styles and --objects")
    p.add_argument("--styles", default="inverted,thick", help="--grid: styles to erase, one at a time")
    p.add_argument("--objects", default="three,seven", help="--grid: objects to erase, one at a time")
    p.add_argument("--inception", help="also report Inception FID: a local inception-2015-12-05.pt TorchScript file")
    add_common(p)
    p.set_defaults(func=cmd_diff_bench)

    p = sub.add_parser("diff-unlearn", help="erase a concept from a saved miniature or a diffusers pipeline folder")
    p.add_argument(
        "--model",
        required=True,
        help="diffusers pipeline folder (save_pretrained), cached hub id ORG/NAME, or diff-train folder",
    )
    p.add_argument(
        "--concept", required=True, help="object:NAME|INDEX, style:NAME, or text:PROMPT (a diffusers folder)"
    )
    p.add_argument("--method", default="esd-x", help="a diffusion method (default esd-x)")
    p.add_argument("--hp", action="append", metavar="NAME=VALUE", help="method hyper-parameter (repeatable)")
    p.add_argument("--out", required=True, help="new folder for the unlearned model (same format as --model)")
    p.add_argument("--overwrite", action="store_true", help="replace a model in --out (never an original or an input)")
    _add_text(p)
    p.add_argument(
        "--text-images", type=int, default=8,
        help="text:PROMPT with rl/salun/ga/concept-correction: images the original generates per prompt (default 8)",
    )  # fmt: skip
    _add_data(p)
    add_common(p)
    p.set_defaults(func=cmd_diff_unlearn)

    p = sub.add_parser("diff-eval", help="UA (replaced/destroyed), IRA, CRA, FD with its noise floor, attack success")
    p.add_argument(
        "--model",
        required=True,
        help="diffusers pipeline folder, cached hub id ORG/NAME, or diff-train / diff-unlearn folder",
    )
    p.add_argument(
        "--concept", default="object:three", help="the erased concept: object:NAME, style:NAME or text:PROMPT"
    )
    p.add_argument("--ddim-steps", type=int, default=25, help=STEPS_HELP)
    p.add_argument("--guidance", type=float, default=2.0)
    p.add_argument("--per-prompt", type=int, default=6)
    p.add_argument("--attack-rounds", type=int, default=0, help="UnlearnDiffAtk rounds per prompt (0 = no attack)")
    p.add_argument("--attack-steps", type=int, default=10)
    p.add_argument("--attack-seeds", type=int, default=4)
    p.add_argument("--cache-dir", help="evaluator cache (default ~/.cache/unlearnkit/diffusion)")
    p.add_argument("--json", help="also write the metrics to this JSON file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    p.add_argument("--inception", help="also report Inception FID: a local inception-2015-12-05.pt TorchScript file")
    _add_text(p)
    p.add_argument(
        "--evaluator-model",
        help="a transformers CLIPModel folder (e.g. clip-vit-large-patch14): zero-shot judge of a text:PROMPT concept",
    )
    p.add_argument(
        "--min-confidence", type=float, default=0.5,
        help="text:PROMPT: CLIP probability a non-concept image needs to count as replaced (default 0.5)",
    )  # fmt: skip
    _add_data(p)
    add_common(p)
    p.set_defaults(func=cmd_diff_eval)

    p = sub.add_parser("diff-canvas", help="UnlearnCanvas: per-target UA / IRA / CRA and the ranking of methods")
    p.add_argument("--canvas", required=True, help="the UnlearnCanvas dataset folder (<Style>/<Object>/<n>.jpg)")
    p.add_argument(
        "--answers", required=True, help="answer sets: <answers>/<method>/<target>/<Style>_<Object>_seed<seed>.jpg"
    )
    p.add_argument("--evaluator-model", required=True, help="a transformers CLIPModel folder (zero-shot judge)")
    p.add_argument("--methods", help="comma-separated method folders to score (default: all)")
    p.add_argument("--size", type=int, default=224, help="images are resized to this square before judging")
    p.add_argument("--out", help="write results.json/csv and targets.json/csv here")
    add_common(p)
    p.set_defaults(func=cmd_diff_canvas)

    p = sub.add_parser("diff-canvas-sample", help="generate one UnlearnCanvas answer set from a diffusers folder")
    p.add_argument("--model", required=True, help="a diffusers Stable Diffusion folder (e.g. a diff-unlearn output)")
    p.add_argument("--canvas", required=True, help="the UnlearnCanvas dataset folder (gives the styles and objects)")
    p.add_argument("--out", required=True, help="new folder, by convention <answers>/<method>/<erased target>")
    p.add_argument("--seeds", default="188,288,588,688,888", help="comma-separated seeds (UnlearnCanvas' five)")
    p.add_argument("--ddim-steps", type=int, default=100, help="DDIM steps (UnlearnCanvas: 100)")
    p.add_argument("--guidance", type=float, default=9.0, help="classifier-free guidance (UnlearnCanvas: 9.0)")
    add_common(p)
    p.set_defaults(func=cmd_diff_canvas_sample)
