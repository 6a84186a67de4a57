"""Hugging Face ``diffusers`` models as unlearnkit text-to-image models.

:class:`DiffusersTextToImage` wraps a ``UNet2DConditionModel`` and a ``CLIPTextModel`` (plus, for latent
pipelines, an ``AutoencoderKL`` and its scaling factor) behind the interface every diffusion method and metric
uses — ``model(x_t, t, tokens)``, ``model.encode(tokens, prefix=)``, ``model.alphas_cumprod`` (from the
pipeline's diffusers scheduler), ``model.sample_shape``, ``model.to_latents`` / ``model.from_latents`` — and
exposes ``model.unet`` / ``model.text_encoder`` so the methods pick their parameters by module name
(:mod:`unlearnkit.diffusion.groups`).

Prompts stay the concept data's word ids; :class:`TokenizerCodec` turns them into the pipeline tokenizer's ids
(``<bos> words… <eos> <pad>…``, the empty prompt being ``tokenizer("")`` as in Stable Diffusion's
classifier-free guidance).

    from unlearnkit import diffusion as ud
    data = ud.load_concept_data("digits")
    model = ud.load_pipeline("path/to/stable-diffusion-folder", data)   # save_pretrained layout
    result = ud.unlearn_concept(model, data, "object:three", "esd-x")
    ud.save_pipeline(result.model, "erased-folder")
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, ConfigError, ModelError, require
from ..safe_weights import check_safetensors_folder
from .model import text_context
from .scheduler import copy_scheduler, load_scheduler, noise_schedule


class TokenizerCodec:
    """Concept-vocabulary word ids → a Hugging Face tokenizer's input ids.

    Each word is tokenised once (``add_special_tokens=False``); a prompt row becomes
    ``[bos] + pieces of its words + [eos]``, padded with the tokenizer's pad id to ``max_length``."""

    def __init__(self, tokenizer: Any, words: Sequence[str], max_length: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.words = list(words)
        self.max_length = int(max_length or tokenizer.model_max_length)
        self.bos = tokenizer.bos_token_id
        self.eos = tokenizer.eos_token_id
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos
        if self.eos is None:
            raise ModelError("the pipeline's tokenizer has no end-of-text token; a CLIP tokenizer is expected")
        self.pieces = [
            [] if i == 0 else list(tokenizer(w, add_special_tokens=False).input_ids) for i, w in enumerate(words)
        ]
        empty = [i for i, p in enumerate(self.pieces[1:], 1) if not p]
        if empty:
            raise ConfigError(f"the tokenizer maps {[self.words[i] for i in empty]} to no tokens")
        #: where a prompt attack's prefix goes: right after the start token
        self.prefix_pos = 0 if self.bos is None else 1

    def ids(self, tokens: torch.Tensor) -> torch.Tensor:
        rows = []
        for row in tokens.tolist():
            ids = [] if self.bos is None else [self.bos]
            for w in row:
                ids += self.pieces[w]
            ids = ids[: self.max_length - 1] + [self.eos]
            rows.append(ids + [self.pad] * (self.max_length - len(ids)))
        return torch.tensor(rows, dtype=torch.long, device=tokens.device)

    def word_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """The first tokenizer piece of each word (a word's embedding for prompt attacks)."""
        table = torch.tensor([p[0] if p else self.pad for p in self.pieces], dtype=torch.long)
        return table.to(ids.device)[ids]


class DiffusersTextToImage(nn.Module):
    """A diffusers UNet + CLIP text encoder (+ optional VAE) as an unlearnkit text-to-image model.

    ``data_shape`` is the (C, H, W) of the concept data's images: ``to_latents`` resizes (and repeats grey to
    the VAE's channels) then encodes with the VAE's posterior mean × ``scaling_factor``; ``from_latents``
    decodes, averages channels back to grey when the data is grey, and resizes to ``data_shape``."""

    def __init__(
        self,
        unet: nn.Module,
        text_encoder: nn.Module,
        alphas_cumprod: torch.Tensor,
        codec: TokenizerCodec,
        *,
        vae: nn.Module | None = None,
        scaling_factor: float = 1.0,
        data_shape: Sequence[int] | None = None,
        clip_sample: bool = False,
        tokenizer: Any = None,
        scheduler: Any = None,
        scheduler_source: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.unet = unet
        self.text_encoder = text_encoder
        self.vae = vae
        if vae is not None:
            vae.requires_grad_(False)
            vae.eval()
        self.register_buffer("alphas_cumprod", alphas_cumprod.detach().float().clone())
        self.codec = codec
        self.scaling_factor = float(scaling_factor)
        self.clip_sample = bool(clip_sample)
        self.tokenizer, self.scheduler = tokenizer, scheduler
        #: the ``scheduler/`` folder the scheduler was read from: :func:`save_pipeline` copies it byte for byte
        self.scheduler_source = Path(scheduler_source) if scheduler_source is not None else None
        cfg = unet.config
        size = cfg.sample_size if isinstance(cfg.sample_size, int) else cfg.sample_size[0]
        self._sample_shape = (int(cfg.in_channels), int(size), int(size))
        self.data_shape = tuple(data_shape) if data_shape is not None else self.pixel_shape

    @property
    def num_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return self._sample_shape

    @property
    def pixel_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images the pipeline makes (the UNet's input for a pixel pipeline)."""
        if self.vae is None:
            return self._sample_shape
        factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        return (int(self.vae.config.in_channels), self._sample_shape[1] * factor, self._sample_shape[2] * factor)

    def train(self, mode: bool = True) -> DiffusersTextToImage:
        super().train(mode)
        if self.vae is not None:
            self.vae.eval()
        return self

    # -- text -------------------------------------------------------------------------------------------------
    def _token_embedding(self) -> nn.Embedding:
        return self.text_encoder.get_input_embeddings()

    def word_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        return self._token_embedding()(self.codec.word_ids(ids))

    def null_tokens(self, batch: int, length: int, device: torch.device | None = None) -> torch.Tensor:
        return torch.zeros(batch, length, dtype=torch.long, device=device or self.alphas_cumprod.device)

    def encode(self, tokens: torch.Tensor, *, prefix: torch.Tensor | None = None) -> torch.Tensor:
        """CLIP last hidden states of the prompts; ``prefix`` (k, dim) or (B, k, dim) input embeddings are
        spliced in after the start token (the sequence keeps its length: the last k pads drop out)."""
        dev = self.alphas_cumprod.device
        ids = self.codec.ids(tokens.to(dev))
        if prefix is None:
            return self.text_encoder(input_ids=ids).last_hidden_state
        pos = self.codec.prefix_pos

        def splice(_: nn.Module, __: Any, emb: torch.Tensor) -> torch.Tensor:
            pre = prefix.unsqueeze(0).expand(len(emb), -1, -1) if prefix.ndim == 2 else prefix
            return torch.cat([emb[:, :pos], pre.to(emb.dtype), emb[:, pos:]], dim=1)[:, : emb.shape[1]]

        handle = self._token_embedding().register_forward_hook(splice)
        try:
            return self.text_encoder(input_ids=ids).last_hidden_state
        finally:
            handle.remove()

    # -- denoiser ---------------------------------------------------------------------------------------------
    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        tokens: torch.Tensor | None = None,
        *,
        context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        context = text_context(self, tokens, context)
        return self.unet(x, t, encoder_hidden_states=context, return_dict=False)[0]

    # -- pixels <-> latents -----------------------------------------------------------------------------------
    @torch.no_grad()
    def to_latents(self, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        dev = self.alphas_cumprod.device
        c, h, w = self.pixel_shape
        out = []
        for i in range(0, len(images), batch_size):
            x = images[i : i + batch_size].to(dev).float()
            if x.shape[1] != c:
                x = x.mean(1, keepdim=True).expand(-1, c, -1, -1)
            if tuple(x.shape[-2:]) != (h, w):
                x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
            if self.vae is not None:
                x = self.vae.encode(x).latent_dist.mean * self.scaling_factor
            out.append(x.cpu())
        return torch.cat(out)

    @torch.no_grad()
    def from_latents(self, samples: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        c, h, w = self.data_shape
        out = []
        for i in range(0, len(samples), batch_size):
            x = samples[i : i + batch_size].to(self.alphas_cumprod.device)
            if self.vae is not None:
                x = self.vae.decode(x / self.scaling_factor).sample
            x = x.clamp(-1, 1)
            if x.shape[1] != c:
                x = x.mean(1, keepdim=True).expand(-1, c, -1, -1)
            if tuple(x.shape[-2:]) != (h, w):
                x = F.interpolate(x, size=(h, w), mode="area")
            out.append(x.cpu())
        return torch.cat(out)


def from_components(
    unet: nn.Module,
    text_encoder: nn.Module,
    tokenizer: Any,
    scheduler: Any,
    words: Sequence[str],
    *,
    vae: nn.Module | None = None,
    data_shape: Sequence[int] | None = None,
    scheduler_source: str | Path | None = None,
) -> DiffusersTextToImage:
    """Wrap diffusers/transformers components; ``words`` is the concept data's vocabulary
    (``data.vocab.words``). The ``scheduler`` is kept as given (evaluation samples with it); ᾱ_t, which the
    training losses and DDIM steps need, is that scheduler's own noise schedule (``alphas_cumprod``, from its
    ``beta_schedule`` / ``trained_betas`` config), and predicted samples are clamped only where its config sets
    ``clip_sample``."""
    alphas = noise_schedule(scheduler)
    sf = float(getattr(vae.config, "scaling_factor", 0.18215)) if vae is not None else 1.0
    codec = TokenizerCodec(tokenizer, words)
    return DiffusersTextToImage(
        unet,
        text_encoder,
        alphas,
        codec,
        vae=vae,
        scaling_factor=sf,
        data_shape=data_shape,
        clip_sample=bool(scheduler.config.get("clip_sample", False)),
        tokenizer=tokenizer,
        scheduler=scheduler,
        scheduler_source=scheduler_source,
    )


def from_pipeline(pipeline: Any, data: Any) -> DiffusersTextToImage:
    """A diffusers ``StableDiffusionPipeline`` (or any object with ``unet``, ``text_encoder``, ``tokenizer``,
    ``scheduler`` and optionally ``vae``) bound to the concept data ``data`` (its vocabulary and image shape)."""
    for part in ("unet", "text_encoder", "tokenizer", "scheduler"):
        if getattr(pipeline, part, None) is None:
            raise ModelError(f"the pipeline has no {part}; a Stable Diffusion-style pipeline is expected")
    return from_components(
        pipeline.unet,
        pipeline.text_encoder,
        pipeline.tokenizer,
        pipeline.scheduler,
        data.vocab.words,
        vae=getattr(pipeline, "vae", None),
        data_shape=data.image_shape,
    )


def is_pipeline_folder(path: str | Path) -> bool:
    p = Path(path)
    return (p / "model_index.json").is_file() or ((p / "unet").is_dir() and (p / "text_encoder").is_dir())


#: the parts :func:`load_pipeline` reads, each with the file that must be there
REQUIRED_PARTS = {
    "unet": "unet/config.json",
    "text_encoder": "text_encoder/config.json",
    "tokenizer": "tokenizer/",
    "scheduler": "scheduler/scheduler_config.json",
}


def check_pipeline_folder(root: Path) -> None:
    """One-line :class:`CheckpointError` naming the first missing part of a diffusers folder."""
    if not is_pipeline_folder(root):
        raise CheckpointError(
            f"{root} is not a diffusers pipeline folder (no model_index.json, unet/ and text_encoder/); "
            "save one with StableDiffusionPipeline.save_pretrained(DIR)"
        )
    for part, rel in REQUIRED_PARTS.items():
        target = root / rel
        present = target.is_dir() and any(target.iterdir()) if rel.endswith("/") else target.is_file()
        if not present:
            raise CheckpointError(
                f"{root} has no {rel} (the pipeline's {part}); copy that part from the pipeline it was saved "
                "from, or save the whole pipeline with StableDiffusionPipeline.save_pretrained(DIR)"
            )


def load_pipeline(path: str | Path, data: Any, *, device: str | torch.device | None = None) -> DiffusersTextToImage:
    """Load a Stable Diffusion folder in the ``save_pretrained`` layout (``unet/``, ``text_encoder/``,
    ``tokenizer/``, ``scheduler/``, optional ``vae/``) — nothing is downloaded. The scheduler keeps its own
    class and config (:func:`load_scheduler`)."""
    require("diffusers", extra="diffusion")
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from ..hub import resolve_model_source

    root = resolve_model_source(path)  # a hub id: its snapshot in the local Hugging Face cache
    check_pipeline_folder(root)
    for part in ("unet", "text_encoder", "vae"):  # only safetensors weights: a pickle is never unpickled
        if part != "vae" or (root / "vae").is_dir():
            check_safetensors_folder(root / part, part)
    unet = _load_part(
        root, "unet", lambda: UNet2DConditionModel.from_pretrained(root, subfolder="unet", use_safetensors=True)
    )
    text_encoder = _load_part(
        root,
        "text_encoder",
        lambda: CLIPTextModel.from_pretrained(root, subfolder="text_encoder", use_safetensors=True),
    )
    tokenizer = _load_part(root, "tokenizer", lambda: CLIPTokenizer.from_pretrained(root, subfolder="tokenizer"))
    scheduler = load_scheduler(root / "scheduler")
    vae = (
        _load_part(root, "vae", lambda: AutoencoderKL.from_pretrained(root, subfolder="vae", use_safetensors=True))
        if (root / "vae").is_dir()
        else None
    )
    model = from_components(
        unet,
        text_encoder,
        tokenizer,
        scheduler,
        data.vocab.words,
        vae=vae,
        data_shape=data.image_shape,
        scheduler_source=root / "scheduler",
    )
    return model.to(device or "cpu").eval()


def _load_part(root: Path, part: str, load: Any) -> Any:
    """``load()`` one component of the pipeline folder ``root``; a damaged config or weights file (invalid JSON,
    truncated safetensors, shapes that contradict the config) is one :class:`CheckpointError` naming the part."""
    try:
        return load()
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{root / part} could not be loaded ({reason[:200]}); restore that folder from the pipeline as it was "
            "saved (config.json and *.safetensors written together by save_pretrained)"
        ) from None


#: pipeline components unlearning never changes: copied as given, with their ``model_index.json`` entries
UNTOUCHED_COMPONENTS = ("safety_checker", "feature_extractor", "image_encoder")


def _copy_untouched(source: Path, root: Path, index: dict[str, Any]) -> None:
    """Copy the components of the source pipeline folder ``source`` that no method edits (a safety checker, its
    feature extractor) byte for byte into ``root`` and keep their index entries, so the output guards its
    images as the input did."""
    import shutil

    src_index_path = source / "model_index.json"
    if not src_index_path.is_file():
        return
    try:
        src_index = json.loads(src_index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(src_index, dict):
        return
    for name in UNTOUCHED_COMPONENTS:
        entry = src_index.get(name)
        if isinstance(entry, list) and entry and entry[0] is not None and (source / name).is_dir():
            shutil.copytree(source / name, root / name)
            index[name] = entry
    if isinstance(src_index.get("requires_safety_checker"), bool):
        index["requires_safety_checker"] = src_index["requires_safety_checker"]


def save_pipeline(
    model: DiffusersTextToImage, path: str | Path, *, extra: dict[str, str] | None = None, replace: bool = False
) -> Path:
    """Write the (edited) model as a diffusers folder that :func:`load_pipeline` and
    ``StableDiffusionPipeline.from_pretrained`` read, with the text files ``extra`` (name -> content) beside it.
    The whole folder is staged and swapped in (:func:`unlearnkit.outputs.staged_folder`), so a crash never
    leaves a partial pipeline; refuses to overwrite a non-empty folder unless ``replace``."""
    from ..outputs import staged_folder

    if not isinstance(model, DiffusersTextToImage):
        raise ModelError("save_pipeline writes diffusers models; save the miniature with checkpoint.save")
    root = Path(path)
    if root.exists() and (not root.is_dir() or any(root.iterdir())) and not replace:
        raise CheckpointError(f"{root} exists and is not empty; choose a new folder")
    with staged_folder(root, replace=True) as staging:
        _write_pipeline(model, staging)
        for name, text in (extra or {}).items():
            (staging / name).write_text(text)
    return root


def _write_pipeline(model: DiffusersTextToImage, root: Path) -> None:
    """The files of a diffusers pipeline folder, written into the (staging) folder ``root``."""
    model.unet.save_pretrained(root / "unet")
    model.text_encoder.save_pretrained(root / "text_encoder")
    if model.tokenizer is not None:
        model.tokenizer.save_pretrained(root / "tokenizer")
    source = model.scheduler_source
    if source is not None and (source / "scheduler_config.json").is_file():
        copy_scheduler(source, root / "scheduler")
    elif model.scheduler is not None:
        model.scheduler.save_pretrained(root / "scheduler")
    index: dict[str, Any] = {
        "_class_name": "StableDiffusionPipeline",
        "unet": ["diffusers", "UNet2DConditionModel"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", type(model.scheduler).__name__],
        "safety_checker": [None, None],
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
    }
    if model.vae is not None:
        model.vae.save_pretrained(root / "vae")
        index["vae"] = ["diffusers", "AutoencoderKL"]
    if source is not None:  # the pipeline folder the model was read from (``scheduler/``'s parent)
        _copy_untouched(source.parent, root, index)
    (root / "model_index.json").write_text(json.dumps(index, indent=2))


def word_level_clip_tokenizer(words: Sequence[str], folder: str | Path, max_length: int = 16) -> Any:
    """A CLIP BPE tokenizer whose merges make every word of ``words`` one token (``<|startoftext|>`` = 0,
    ``<|endoftext|>`` = 1, also padding), written to ``folder`` (``vocab.json``, ``merges.txt``) and loaded.

    Each word gets its left-to-right chain of merges (``c a``, ``ca t</w>``). BPE applies the lowest-ranked
    merge among adjacent pieces first, so another word's merge can cut a chain (``a t</w>`` of "at" leaves
    "cat" as ``c`` + ``at</w>``). Words left in pieces then get a chain over those pieces (``c at</w>``),
    ranked after every earlier merge so that no word that was already one token changes; this repeats until
    every word is one token. A word that CLIP's pre-tokenizer cuts (``t-shirt``, ``4x``) stays in pieces,
    which :class:`TokenizerCodec` handles."""
    require("transformers", extra="diffusion")
    from transformers import CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    words = [w for w in dict.fromkeys(words) if w and not w.startswith("<")]
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    merges: list[str] = []
    for ch in sorted({c for w in words for c in w}):
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    for w in words:
        _chain([*w[:-1], w[-1] + "</w>"], merges, vocab)
    while True:
        (folder / "vocab.json").write_text(json.dumps(vocab))
        (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(dict.fromkeys(merges)) + "\n")
        tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=max_length)
        known = set(merges)
        for w in words:
            pieces = tokenizer.tokenize(w)
            if "".join(pieces) == w + "</w>":  # else cut by the pre-tokenizer: no merge can join it
                _chain(pieces, merges, vocab)
        if known.issuperset(merges):
            return tokenizer


def _chain(pieces: Sequence[str], merges: list[str], vocab: dict[str, int]) -> None:
    """Append the left-to-right merges that join ``pieces`` into one token, and each merged piece to ``vocab``."""
    cur = pieces[0]
    for nxt in pieces[1:]:
        merges.append(f"{cur} {nxt}")
        cur += nxt
        vocab.setdefault(cur, len(vocab))


def clip_text_encoder(tokenizer: Any, dim: int, layers: int = 1, heads: int = 4) -> nn.Module:
    """A randomly initialised ``CLIPTextModel`` of width ``dim`` over ``tokenizer``'s vocabulary (built from a
    config, nothing downloaded); start/end/pad ids as :func:`word_level_clip_tokenizer` writes them."""
    require("transformers", extra="diffusion")
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer.get_vocab()),
            hidden_size=dim,
            intermediate_size=2 * dim,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            max_position_embeddings=tokenizer.model_max_length,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )


def miniature_pipeline(
    words: Sequence[str],
    image_shape: Sequence[int],
    *,
    base: int = 16,
    mults: Sequence[int] = (1, 2),
    text_dim: int = 32,
    text_layers: int = 1,
    heads: int = 4,
    timesteps: int = 1000,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
) -> DiffusersTextToImage:
    """The bundled miniature in diffusers form, randomly initialised from configs (``diff-train --arch
    diffusers``): a pixel-space ``UNet2DConditionModel`` with widths ``base × mults``, cross-attention at the
    first level and no mid block (the fastest layout of ``benchmarks/diffusion_unet_speed.py``), a
    ``CLIPTextModel`` over ``words`` (the concept vocabulary, ``<pad>`` first) with a one-token-per-word
    tokenizer, and a ``DDIMScheduler`` with the miniature's linear β schedule. Train it with
    :func:`unlearnkit.diffusion.training.train_diffusion`; :func:`save_pipeline` writes it as a pipeline folder."""
    require("diffusers", extra="diffusion")
    import tempfile

    from diffusers import DDIMScheduler, UNet2DConditionModel

    channels, size = int(image_shape[0]), int(image_shape[-1])
    if int(image_shape[-2]) != size:
        raise ConfigError(f"the diffusers miniature needs square images, got {tuple(image_shape)}")
    widths = tuple(base * m for m in mults)
    if any(w % 8 for w in widths) or text_dim % heads:
        raise ConfigError(f"UNet widths {widths} must be multiples of 8 (group norm) and text_dim of heads ({heads})")
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = word_level_clip_tokenizer(words[1:], tmp)
    text_encoder = clip_text_encoder(tokenizer, text_dim, text_layers, heads)
    levels = len(widths)
    unet = UNet2DConditionModel(
        sample_size=size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=widths,
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D",) + ("DownBlock2D",) * (levels - 1),
        up_block_types=("UpBlock2D",) * (levels - 1) + ("CrossAttnUpBlock2D",),
        mid_block_type=None,
        cross_attention_dim=text_dim,
        attention_head_dim=heads,
        norm_num_groups=8,
    )
    # the evaluation's DDIM sampler as a diffusers scheduler: "trailing" timesteps T−1, T−1−T/n, … each stepping
    # to the next one, the last to ᾱ = 1; images in [-1, 1], so the predicted sample is clamped
    scheduler = DDIMScheduler(
        num_train_timesteps=timesteps,
        beta_schedule="linear",
        beta_start=beta_start,
        beta_end=beta_end,
        clip_sample=True,
        set_alpha_to_one=True,
        timestep_spacing="trailing",
        prediction_type="epsilon",
    )
    return from_components(unet, text_encoder, tokenizer, scheduler, words, data_shape=image_shape)


def tiny_pipeline(
    words: Sequence[str],
    folder: str | Path,
    *,
    latent: bool = True,
    sample_size: int = 8,
    channels: int = 1,
    width: int = 16,
    seed: int = 0,
    scheduler: str = "ddpm",
) -> Path:
    """Write a randomly initialised miniature Stable Diffusion pipeline built from configs (nothing is
    downloaded) in the ``save_pretrained`` layout: a 2-level ``UNet2DConditionModel`` with cross-attention,
    a 1-layer ``CLIPTextModel`` over ``words``, a scheduler (``scheduler``: one of :data:`TINY_SCHEDULERS`, all
    on Stable Diffusion's scaled-linear β schedule) and — when ``latent`` — a 2-level
    ``AutoencoderKL`` (4 latent channels, ``sample_size`` latents for 2×-larger RGB images). Returns ``folder``.
    Used to test that every method runs on diffusers models; train it before expecting sensible images."""
    require("diffusers", extra="diffusion")
    import tempfile

    import diffusers
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    if scheduler not in TINY_SCHEDULERS:
        raise ConfigError(f"unknown scheduler {scheduler!r}; choose one of {', '.join(TINY_SCHEDULERS)}")
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = word_level_clip_tokenizer(words, tmp)
    text_dim = 2 * width
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer.get_vocab()),
            hidden_size=text_dim,
            intermediate_size=2 * text_dim,
            num_hidden_layers=1,
            num_attention_heads=4,
            max_position_embeddings=tokenizer.model_max_length,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    in_ch = 4 if latent else channels
    unet = UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=in_ch,
        out_channels=in_ch,
        block_out_channels=(width, 2 * width),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=text_dim,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    cls_name, extra = TINY_SCHEDULERS[scheduler]
    if cls_name in ("DDPMScheduler", "DDIMScheduler"):
        extra = {**extra, "clip_sample": not latent}
    sched = getattr(diffusers, cls_name)(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, steps_offset=1, **extra
    )
    vae = None
    if latent:
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            block_out_channels=(8, 16),
            down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2,
            latent_channels=4,
            norm_num_groups=8,
            sample_size=2 * sample_size,
        )
    codec = TokenizerCodec(tokenizer, ["<pad>", *words])
    model = DiffusersTextToImage(
        unet, text_encoder, sched.alphas_cumprod, codec, vae=vae, tokenizer=tokenizer, scheduler=sched
    )
    return save_pipeline(model, folder)


#: the schedulers :func:`tiny_pipeline` can write: name -> (diffusers class, extra config), as Stable Diffusion
#: folders ship them (PNDM with ``skip_prk_steps``, the ``set_alpha_to_one=False`` of SD 1.x)
TINY_SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddpm": ("DDPMScheduler", {}),
    "ddim": ("DDIMScheduler", {"set_alpha_to_one": False}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True, "set_alpha_to_one": False}),
    "euler": ("EulerDiscreteScheduler", {}),
    "dpm-solver": ("DPMSolverMultistepScheduler", {}),
}
