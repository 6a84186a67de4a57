"""``lm-concepts``: locate the concept vectors of a word/topic or of the forget people in a model folder, and
optionally validate them causally (a thin wrapper over :mod:`unlearnkit.lm.concepts`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from .options import add_common


def cmd_lm_concepts(args: argparse.Namespace) -> int:
    from ..lm import load_causal_lm
    from ..lm.concepts import locate_concept, noise_validation, person_concepts
    from ..lm.formats import split_from_files
    from ..runtime import resolve_device

    if not args.concept and not args.forget:
        raise ConfigError("give --concept WORD[,WORD...] or --forget F --retain R (one concept per forgotten person)")
    if bool(args.forget) != bool(args.retain):
        raise ConfigError("--forget and --retain go together (the retain QA is the background of the concept tokens)")
    if args.out:
        from ..outputs import check_output_file

        check_output_file(args.out, overwrite=args.overwrite, inputs=[args.model, args.forget, args.retain])
    device = resolve_device(args.device)
    model, tok = load_causal_lm(args.model, device=device)
    split = split_from_files(args.forget, args.retain) if args.forget else None
    if args.concept:
        terms = [t for t in args.concept.split(",") if t.strip()]
        concepts = [locate_concept(model, tok, terms=terms, name=args.concept, top_n=args.top_n)]
    else:
        concepts = person_concepts(model, tok, split.forget, split.retain, top_n=args.top_n, rank=args.rank)
    report = []
    for c in concepts:
        print(f"{c.name}: concept tokens {[tok.decode([i]) for i in c.token_ids][:12]}")
        for v in c.vectors:
            print(f"  layer {v.layer:>3} vector {v.index:>6}  score {v.score:+.4g}  top tokens {v.top_tokens}")
        entry = {"concept": c.name, "vectors": [v.to_dict() for v in c.vectors]}
        if args.validate and split is not None:
            qa = [r for r in split.forget if str(r.get("person", "forget set")) == c.name] or split.forget
            check = noise_validation(
                model, tok, c.locations(), qa, split.retain[: args.unrelated], noise_std=args.noise_std, device=device
            )
            entry["validation"] = check
            print(
                f"  noise std {args.noise_std}: concept answer log-prob {check['concept_logp_before']:.3f} -> "
                f"{check['concept_logp_after']:.3f} (random vectors: {check['random_concept_logp_after']:.3f}); "
                f"unrelated {check['unrelated_logp_before']:.3f} -> {check['unrelated_logp_after']:.3f}"
            )
        report.append(entry)
    if args.out:
        from ..checkpoint import write_json

        write_json(Path(args.out), {"model": args.model, "concepts": report})
        print(f"concept vectors: {args.out}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lm-concepts", help="locate (and validate) the MLP value vectors of a concept in an LM folder")
    p.add_argument("--model", required=True, help="Hugging Face model folder (save_pretrained)")
    p.add_argument("--concept", help="comma-separated words naming the concept (ranked by vocabulary projection)")
    p.add_argument("--forget", help="forget QA: one concept per person (or one for the file)")
    p.add_argument("--retain", help="retain QA: the background the concept tokens and attributions are read against")
    p.add_argument("--rank", default="attribution", choices=("attribution", "projection"))
    p.add_argument("--top-n", type=int, default=8, help="vectors per concept (default 8)")
    p.add_argument("--validate", action="store_true", help="noise on the vectors vs on random ones (needs --forget)")
    p.add_argument("--noise-std", type=float, default=0.1, help="std of the validation noise (paper: 0.1)")
    p.add_argument("--unrelated", type=int, default=40, help="retain questions used as unrelated QA")
    p.add_argument("--out", help="write the located vectors (and validation) as JSON")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    add_common(p)
    p.set_defaults(func=cmd_lm_concepts)
