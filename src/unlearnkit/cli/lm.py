"""Language-model commands: ``lm-data``, ``lm-train``, ``lm-bench``, ``lm-unlearn``, ``lm-eval`` (thin wrappers over
:mod:`unlearnkit.lm`)."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from .options import add_common, parse_hparams


def _add_data(p: argparse.ArgumentParser, builtin: bool = True) -> None:
    title = "data (built-in fictitious people, or your own files)" if builtin else "data (your own files)"
    g = p.add_argument_group(title)
    if builtin:
        g.add_argument("--people", type=int, default=100, help="number of trained fictitious people (default 100)")
        g.add_argument("--holdout", type=int, default=20, help="never-trained people for the MIAs (default 20)")
        g.add_argument("--split", default="forget10", choices=("forget01", "forget05", "forget10"))
        g.add_argument("--readers", type=int, default=200, help="people in QA-from-context training examples")
    files = "(.jsonl, .json as TOFU's, or a datasets save_to_disk folder)"
    g.add_argument(
        "--forget", "--forget-jsonl", dest="forget_jsonl", required=not builtin, help=f"forget QA or text {files}"
    )
    g.add_argument("--retain", "--retain-jsonl", dest="retain_jsonl", required=not builtin, help="retain QA or text")
    g.add_argument(
        "--holdout-qa",
        "--holdout-jsonl",
        "--heldout",
        dest="holdout_jsonl",
        help="QA of people never trained on: the MIAs' non-members and the methods' held-out target",
    )
    g.add_argument(
        "--neighbour", "--neighbour-jsonl", dest="neighbour_jsonl", help="QA close to the forget set (locality)"
    )
    g.add_argument("--world", dest="world_jsonl", help="general-knowledge QA (joins model utility)")
    g.add_argument("--forget-qa", help="with text corpora: KnowMem QA about the forget text")
    g.add_argument("--retain-qa", help="with text corpora: KnowMem QA about the retain text")
    g.add_argument("--verbmem", help="with text corpora: VerbMem {prompt, gt} records (default: forget-text prefixes)")
    g.add_argument("--max-length", type=int, default=256, help="tokens per encoded row; longer rows are cut (warned)")


def _add_generation(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=200,
        help="greedy answer length cap in tokens; answers stop at EOS and are scored whole (default 200, as "
        "open-unlearning)",
    )


def _add_scale(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("large models (applied to every method; --hp overrides)")
    g.add_argument("--precision", choices=("fp32", "bf16", "fp16"), help="autocast dtype of the forward passes")
    g.add_argument("--grad-accum", type=int, help="micro-batches per batch (gradient accumulation)")
    g.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations in backward")
    g.add_argument("--lora", action="store_true", help="train LoRA adapters (merged afterwards); not for rmu")
    g.add_argument(
        "--preset",
        choices=("tofu",),
        help="tofu: the reference recipe (10 epochs, 1 warm-up epoch + linear decay, bf16 on a GPU that has it)",
    )


def _add_no_probe(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-probe",
        action="store_true",
        help="run each method's whole budget (default with held-out people, --heldout or the built-in benchmark's: "
        "stop when the forget answers are as likely as theirs, keep the best state, roll back from a retain collapse)",
    )


def _scale_hparams(args: argparse.Namespace) -> dict:
    out: dict = {}
    if getattr(args, "preset", None):
        from ..lm.presets import preset_hparams
        from ..runtime import resolve_device

        out, note = preset_hparams(args.preset, resolve_device(getattr(args, "device", None)))
        if note:
            print(note, file=sys.stderr)
    if args.precision:
        out["precision"] = args.precision
    if args.grad_accum:
        out["grad_accum"] = args.grad_accum
    if args.gradient_checkpointing:
        out["gradient_checkpointing"] = True
    if args.lora:
        out["lora"] = True
    return out


def _add_model(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and training")
    g.add_argument(
        "--model", help="Hugging Face model folder or cached hub id ORG/NAME to start from (default: the tiny model)"
    )
    g.add_argument("--arch", default="llama", choices=("llama", "gpt2"))
    g.add_argument("--d-model", type=int, default=128)
    g.add_argument("--layers", type=int, default=2)
    g.add_argument("--epochs", type=int, help="training epochs of the original and retain-only models")
    g.add_argument("--lr", type=float, help="training learning rate")
    g.add_argument("--batch-size", type=int)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--cache-dir", help="where trained LMs are cached (default ~/.cache/unlearnkit/lm)")


def _config(args: argparse.Namespace, **extra):
    from ..lm import LMBenchConfig, LMTrainConfig, TinyLMConfig

    train = LMTrainConfig()
    for key in ("epochs", "lr", "batch_size"):
        if getattr(args, key) is not None:
            setattr(train, key, getattr(args, key))
    return LMBenchConfig(
        n_people=args.people,
        n_holdout=args.holdout,
        n_readers=args.readers,
        split=args.split,
        seed=args.seed,
        forget_jsonl=args.forget_jsonl,
        retain_jsonl=args.retain_jsonl,
        holdout_jsonl=args.holdout_jsonl,
        neighbour_jsonl=args.neighbour_jsonl,
        world_jsonl=args.world_jsonl,
        forget_qa=args.forget_qa,
        retain_qa=args.retain_qa,
        verbmem=args.verbmem,
        max_length=args.max_length,
        max_new_tokens=getattr(args, "max_new_tokens", 200),
        model_path=args.model,
        tiny=TinyLMConfig(
            arch=args.arch, d_model=args.d_model, n_layers=args.layers, max_length=max(256, args.max_length)
        ),
        train=train,
        cache_dir=args.cache_dir,
        device=args.device,
        progress=not args.no_progress,
        **extra,
    )


def _data_inputs(args: argparse.Namespace) -> list[str | None]:
    """The data files a command reads (an ``--out`` may be none of them)."""
    names = ("forget_jsonl", "retain_jsonl", "holdout_jsonl", "neighbour_jsonl", "world_jsonl", "forget_qa")
    return [getattr(args, n, None) for n in (*names, "retain_qa", "verbmem")]


def cmd_lm_data(args: argparse.Namespace) -> int:
    from ..lm import make_benchmark
    from ..validation import check_results_folder

    check_results_folder(args.out)
    paths = make_benchmark(args.people, args.holdout, args.seed).to_jsonl(args.out)
    print(f"wrote {len(paths)} JSONL files to {args.out}")
    return 0


def cmd_lm_train(args: argparse.Namespace) -> int:
    from ..lm.bench import train_and_score

    report = train_and_score(_config(args))
    for which in ("original", "retain_only"):
        r = report[which]
        how = "cached" if r["cached"] else "trained"
        print(f"{which}: {r['path']}  ({how}, {r['seconds']:.0f}s; QA accuracy {r['accuracy']:.1%} on {r['n']} QA)")
    return 0


def cmd_lm_bench(args: argparse.Namespace) -> int:
    from ..lm import run_lm_bench

    out = args.out or str(Path("runs") / f"lm-bench-{time.strftime('%Y%m%d-%H%M%S')}")
    extra = {"out_dir": out, "attacks": not args.no_attacks, "relearn_steps": args.relearn_steps}
    extra["intrinsic"] = args.intrinsic
    extra["probe"] = not args.no_probe
    extra.update(target_path=args.target, retain_model_path=args.retain_model, relearn_lr=args.relearn_lr)
    methods = args.methods.split(",") if args.methods else None
    if methods:
        extra["methods"] = methods
    hparams = parse_hparams(args.hp, nested=True)
    scale = _scale_hparams(args)
    if scale:
        from ..lm.methods import LM_METHODS

        for name in methods or LM_METHODS:
            hparams[name] = {
                **{k: v for k, v in scale.items() if not (name == "rmu" and k == "lora")},
                **hparams.get(name, {}),
            }
    extra["hparams"] = hparams
    run = run_lm_bench(_config(args, **extra))
    run.table.print()
    print(f"results: {out}/results.json, {out}/results.csv")
    return 0


def _split_from_args(args: argparse.Namespace):
    from ..lm import make_benchmark
    from ..lm.formats import split_from_options

    split = split_from_options(args)
    if split is not None:
        return split
    return make_benchmark(args.people, args.holdout, args.seed, args.readers).split(args.split)


def cmd_lm_unlearn(args: argparse.Namespace) -> int:
    from ..hub import resolve_model_source
    from ..lm import load_causal_lm, save_causal_lm, unlearn_lm
    from ..lm.model import check_lm_output
    from ..runtime import resolve_device

    if args.device_map and args.accelerate:
        from ..errors import ConfigError

        raise ConfigError("--device-map splits one model over several devices in one process; drop --accelerate")
    source = resolve_model_source(args.model)  # a hub id: its snapshot in the local cache
    check_lm_output(args.out, overwrite=args.overwrite, source=source, inputs=_data_inputs(args))
    device = resolve_device(args.device)
    model, tokenizer = load_causal_lm(source, device=device, device_map=args.device_map)
    split = _split_from_args(args)
    hps = {**_scale_hparams(args), **parse_hparams(args.hp, nested=False, method=args.method)}
    if args.adapter_only:
        hps.update(lora=True, adapter_only=True)
    acc = None
    if args.accelerate:
        from ..lm.parallel import make_lm_accelerator

        acc = make_lm_accelerator(cpu=device.type == "cpu")
    res = unlearn_lm(
        model,
        tokenizer,
        split,
        args.method,
        device=device,
        progress=not args.no_progress,
        max_length=args.max_length,
        accelerator=acc,
        inplace=True,  # the loaded model is not needed afterwards: with LoRA, one copy of the weights is held
        probe=False if args.no_probe else None,
        **hps,
    )
    if acc is not None and not acc.is_main_process:
        return 0  # the main process writes the model
    meta = {"method": res.method, "hparams": res.hparams, "seconds": res.seconds, "source": str(args.model)}
    meta.update(forget=args.forget_jsonl, retain=args.retain_jsonl, report=res.report)
    save_causal_lm(res.model, tokenizer, args.out, meta=meta, overwrite=args.overwrite, adapter_only=args.adapter_only)
    if args.adapter_only:
        print(
            f"{res.method}: {res.seconds:.1f}s; LoRA adapter written to {args.out} (load with "
            f"PeftModel.from_pretrained(base, {args.out!r}) on the model {args.model})"
        )
    else:
        print(f"{res.method}: {res.seconds:.1f}s; unlearned model written to {args.out} (load with from_pretrained)")
    probe = res.report.get("probe")
    if isinstance(probe, dict):
        print(f"held-out target ({probe.get('target', {}).get('source', 'none')}): {probe['stopped']}")
    return 0


def _fmt(v) -> str:
    return (
        "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}" if isinstance(v, float) else str(v)
    )


def cmd_lm_eval(args: argparse.Namespace) -> int:
    from ..lm import compare_to_retain_only, load_causal_lm, measure_lm
    from ..runtime import resolve_device

    if args.out:
        from ..outputs import check_output_file

        inputs = [args.model, args.retain_model, args.intrinsic, *_data_inputs(args)]
        check_output_file(args.out, overwrite=args.overwrite, inputs=inputs)
    device = resolve_device(args.device)
    split = _split_from_args(args)
    model, tokenizer = load_causal_lm(args.model, device=device)
    lengths = {"max_length": args.max_length, "max_new_tokens": args.max_new_tokens}
    ev = measure_lm(model, tokenizer, split, retain_eval=args.retain_eval, device=device, **lengths)
    metrics = dict(ev.metrics)
    ref = None
    if args.retain_model:
        ref_model, _ = load_causal_lm(args.retain_model, device=device)
        ref = measure_lm(ref_model, tokenizer, split, retain_eval=args.retain_eval, device=device, **lengths)
    metrics.update(compare_to_retain_only(ev, ref))
    if args.intrinsic:  # concept-vector drift against the model before unlearning (lm/concepts/report.py)
        from ..lm.concepts.report import intrinsic_metrics

        metrics.update(intrinsic_metrics(load_causal_lm(args.intrinsic, device=device)[0], model, tokenizer, split))
    width = max(len(k) for k in metrics)
    for k, v in metrics.items():
        print(f"{k:<{width}}  {_fmt(v)}")
    if args.retain_model and not ev.forget_truth_ratios:
        print("forget_quality needs perturbed answers in the forget QA ('perturbed_answer', as TOFU)")
    if args.out:
        from ..checkpoint import write_json

        payload = {"model": args.model, "retain_model": args.retain_model, "settings": ev.settings, "metrics": metrics}
        write_json(Path(args.out), json.loads(json.dumps(payload, default=float)))
        print(f"metrics: {args.out}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lm-data", help="write the fictitious-people benchmark as JSONL")
    p.add_argument("--people", type=int, default=100)
    p.add_argument("--holdout", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="folder for the JSONL files")
    p.set_defaults(func=cmd_lm_data)

    p = sub.add_parser("lm-train", help="train (or load cached) original and retain-only LMs; report QA accuracy")
    _add_data(p)
    _add_model(p)
    add_common(p)
    p.set_defaults(func=cmd_lm_train)

    p = sub.add_parser("lm-bench", help="retain-only, original and every LM method in one table")
    _add_data(p)
    _add_model(p)
    _add_scale(p)
    p.add_argument("--target", help="an already trained model folder to unlearn (skips training; needs --retain-model)")
    p.add_argument("--retain-model", help="an already trained retain-only model folder (the reference)")
    p.add_argument("--methods", help="comma-separated (default: ga,grad-diff,npo,simnpo,idk-dpo,rmu,undial)")
    p.add_argument("--hp", action="append", metavar="METHOD.NAME=VALUE", help="method hyper-parameter (repeatable)")
    p.add_argument("--no-attacks", action="store_true", help="skip probes, in-context and relearning attacks")
    _add_no_probe(p)
    p.add_argument("--intrinsic", action="store_true", help="concept-vector drift of each model vs the original")
    p.add_argument("--relearn-lr", type=float, help="relearning attack lr (default 1e-3 tiny model, 1e-5 own model)")
    p.add_argument("--relearn-steps", type=int, default=10, help="relearning attack steps (default 10)")
    p.add_argument("--out", help="results folder (default runs/lm-bench-TIME)")
    _add_generation(p)
    add_common(p)
    p.set_defaults(func=cmd_lm_bench)

    p = sub.add_parser("lm-unlearn", help="unlearn with one method from your own model folder; write a new one")
    p.add_argument(
        "--model",
        required=True,
        help="Hugging Face model folder (save_pretrained), or a hub id ORG/NAME in the local cache",
    )
    p.add_argument("--method", required=True, help="ga, grad-diff, npo, simnpo, idk-dpo, rmu, undial, concept-ablation")
    _add_data(p, builtin=False)
    _add_scale(p)
    p.add_argument("--hp", action="append", metavar="NAME=VALUE", help="hyper-parameter (repeatable), e.g. lr=1e-5")
    p.add_argument("--out", required=True, help="folder for the unlearned model (save_pretrained format)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    _add_no_probe(p)
    p.add_argument(
        "--adapter-only",
        action="store_true",
        help="train LoRA adapters (implies --lora) and write only the adapter to --out, unmerged (a PEFT adapter "
        "folder: PeftModel.from_pretrained(base, OUT))",
    )
    p.add_argument(
        "--accelerate",
        action="store_true",
        help="train data-parallel through Accelerate (launch with `accelerate launch --multi_gpu --num_processes N`); "
        "--hp batch_size stays the global batch",
    )
    p.add_argument(
        "--device-map",
        choices=("auto", "balanced", "sequential"),
        help="split a model too large for one device over all GPUs (from_pretrained's device_map; one process)",
    )
    add_common(p)
    p.set_defaults(func=cmd_lm_unlearn, seed=0)

    p = sub.add_parser(
        "lm-eval", help="metrics of a model folder (no training); with --retain-model also forget quality"
    )
    p.add_argument("--model", required=True, help="Hugging Face model folder, or a hub id ORG/NAME in the local cache")
    p.add_argument("--retain-model", help="the retain-only model folder: adds forget quality and privleak")
    _add_data(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the built-in benchmark")
    p.add_argument("--retain-eval", type=int, default=200, help="retain questions scored (default 200)")
    p.add_argument("--intrinsic", metavar="ORIGINAL", help="model folder before unlearning: adds concept-vector drift")
    p.add_argument("--out", help="write the metrics as JSON to this file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    _add_generation(p)
    add_common(p)
    p.set_defaults(func=cmd_lm_eval)
