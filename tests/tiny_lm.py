"""A tiny causal LM, its tokenizer and a fictitious-people split, built in a second (shared by the interface
tests)."""

import torch

from unlearnkit.lm import TinyLMConfig, build_tiny_lm, make_benchmark, train_tokenizer


def tiny_lm(seed: int = 0):
    """``(model, tokenizer, split)``: a 1-layer Llama-style model over a 300-token BPE of 4 people's QA."""
    torch.set_num_threads(1)
    split = make_benchmark(n_people=4, n_holdout=1, seed=0).split("forget10")
    tok = train_tokenizer([f"{r['question']} {r['answer']}" for r in split.forget + split.retain], vocab_size=300)
    model = build_tiny_lm(TinyLMConfig(d_model=16, n_layers=1, n_heads=2), tok, seed=seed)
    return model, tok, split
