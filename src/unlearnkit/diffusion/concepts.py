"""Images with two concept axes, UnlearnCanvas in miniature: *objects* (the dataset's classes) and *styles*
(deterministic image transforms), each image paired with a prompt "a {object} in {style} style" of token ids.

Some words have synonyms; the model is trained on both, while unlearning methods only see the canonical word,
so erasure can be tested on words the method was never given. Half of the training prompts start with up to
three filler words ("the picture of ..."), so that, like a real text encoder, the model reads prompts of
varying length and position — which is what prompt-prefix attacks exploit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..data.tensors import TensorData
from ..errors import ConfigError, DataError

PAD = "<pad>"
TEMPLATE = ("a", "{object}", "in", "{style}", "style")
MAX_FILLER = 3
#: prompts are padded to this many tokens: up to MAX_FILLER filler words, then the template
PROMPT_LEN = len(TEMPLATE) + MAX_FILLER
#: filler words that carry no concept (prompt prefixes in training, and material for attacks)
FILLER = ("the", "an", "of", "picture", "photo", "drawing", "with", "and", "small", "big")

DIGIT_OBJECTS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DIGIT_SYNONYMS = {
    "zero": "nought",
    "one": "single",
    "two": "pair",
    "three": "trio",
    "four": "quad",
    "five": "penta",
    "six": "hexa",
    "seven": "septa",
    "eight": "octo",
    "nine": "nona",
}
FASHION_OBJECTS = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
FASHION_SYNONYMS = {
    "tshirt": "tee",
    "trouser": "pants",
    "pullover": "sweater",
    "sneaker": "trainer",
    "boot": "ankleboot",
}
STYLE_SYNONYMS = {
    "plain": "normal",
    "inverted": "negative",
    "thick": "bold",
    "thin": "light",
    "blurred": "blurry",
    "shifted": "offset",
}


def _plain(x: torch.Tensor) -> torch.Tensor:
    return x


def _inverted(x: torch.Tensor) -> torch.Tensor:
    return 1.0 - x


def _thick(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 3, stride=1, padding=1)


def _thin(x: torch.Tensor) -> torch.Tensor:
    # erosion by a 2x2 minimum, kept the same size, then dimmed so that the strokes read as fine lines
    eroded = -F.max_pool2d(F.pad(-x, (0, 1, 0, 1), value=0.0), 2, stride=1)
    return 0.6 * eroded


def _blurred(x: torch.Tensor) -> torch.Tensor:
    k = torch.tensor([1.0, 2.0, 1.0], dtype=x.dtype)
    k2 = (k[:, None] * k[None, :]) / 16.0
    return F.conv2d(
        F.pad(x, (1, 1, 1, 1), mode="replicate"), k2.view(1, 1, 3, 3).repeat(x.shape[1], 1, 1, 1), groups=x.shape[1]
    )


def _shifted(x: torch.Tensor) -> torch.Tensor:
    s = max(1, x.shape[-1] // 4)
    out = torch.zeros_like(x)
    out[..., s:, s:] = x[..., :-s, :-s]
    return out


#: style name -> transform of images in [0, 1] shaped (N, C, H, W)
STYLES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "plain": _plain,
    "inverted": _inverted,
    "thick": _thick,
    "thin": _thin,
    "blurred": _blurred,
    "shifted": _shifted,
}


@dataclass
class Vocabulary:
    """Word ↔ token id; id 0 is padding and the all-padding prompt is the null (unconditional) prompt."""

    words: list[str]

    def __post_init__(self) -> None:
        if not self.words or self.words[0] != PAD:
            raise ConfigError(f"the vocabulary must start with {PAD!r}")
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, text: str | Sequence[str], length: int | None = None) -> torch.Tensor:
        words = text.split() if isinstance(text, str) else list(text)
        unknown = [w for w in words if w not in self.index]
        if unknown:
            raise ConfigError(f"unknown word(s) {unknown}; the vocabulary is: {' '.join(self.words[1:])}")
        ids = [self.index[w] for w in words]
        if length is not None:
            if len(ids) > length:
                raise ConfigError(f"prompt has {len(ids)} words, more than {length}")
            ids += [0] * (length - len(ids))
        return torch.tensor(ids, dtype=torch.long)

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        return " ".join(self.words[int(i)] for i in ids if int(i) != 0)


@dataclass
class ConceptData:
    """Images in [-1, 1] with their prompts and both concept labels.

    ``tokens`` is (N, PROMPT_LEN) token ids; ``objects`` and ``styles`` are integer labels.
    """

    name: str
    images: torch.Tensor
    tokens: torch.Tensor
    objects: torch.Tensor
    styles: torch.Tensor
    object_names: list[str]
    style_names: list[str]
    vocab: Vocabulary
    synonyms: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def names(self, axis: str) -> list[str]:
        return self.object_names if axis == "object" else self.style_names

    def labels(self, axis: str) -> torch.Tensor:
        return self.objects if axis == "object" else self.styles

    def subset(self, mask: torch.Tensor) -> ConceptData:
        return ConceptData(
            self.name,
            self.images[mask],
            self.tokens[mask],
            self.objects[mask],
            self.styles[mask],
            self.object_names,
            self.style_names,
            self.vocab,
            self.synonyms,
        )

    def as_tensor_data(self) -> TensorData:
        """(images, token ids) pairs, the batches the engine trains on."""
        return TensorData(self.images, self.tokens)

    def prompt(self, obj: int, style: int, *, synonym: bool = False, pad: bool = True) -> torch.Tensor:
        """Token ids of "a {object} in {style} style" (optionally with the objects' and styles' synonyms),
        padded to PROMPT_LEN unless ``pad`` is false."""
        o, s = self.object_names[obj], self.style_names[style]
        if synonym:
            o, s = self.synonyms.get(o, o), self.synonyms.get(s, s)
        words = [w.replace("{object}", o).replace("{style}", s) for w in TEMPLATE]
        return self.vocab.encode(words, PROMPT_LEN if pad else None)

    def prompts(self, objs: Sequence[int], styles: Sequence[int], *, synonym: bool = False) -> torch.Tensor:
        return torch.stack([self.prompt(o, s, synonym=synonym) for o, s in zip(objs, styles)])

    def with_word(self, tokens: torch.Tensor, axis: str, labels: torch.Tensor) -> torch.Tensor:
        """``tokens`` with the object (or style) slot replaced by the canonical words of ``labels``."""
        names = self.names(axis)
        ids = torch.tensor([self.vocab.index[n] for n in names], dtype=torch.long, device=tokens.device)
        words = list(names) + [self.synonyms[n] for n in names if n in self.synonyms]
        slot = torch.isin(tokens, torch.tensor([self.vocab.index[w] for w in words], device=tokens.device))
        new = ids[labels.to(tokens.device)].unsqueeze(1).expand_as(tokens)
        return torch.where(slot, new, tokens)


@dataclass(frozen=True)
class ConceptSpec:
    """The concept to erase: an axis ("object" or "style") and a label index on it."""

    axis: str
    index: int
    word: str

    @property
    def other_axis(self) -> str:
        return "style" if self.axis == "object" else "object"


def parse_concept(spec: str, data: ConceptData) -> ConceptSpec:
    """``"object:3"``, ``"object:three"`` or ``"style:inverted"`` → :class:`ConceptSpec`; ``"text:PROMPT"`` on
    the :class:`~unlearnkit.diffusion.text_concepts.TextConceptData` built for that prompt."""
    if spec.startswith("text:"):
        concept = getattr(data, "concept", None)
        if concept is None or " ".join(spec[5:].split()) != data.object_names[0]:
            raise ConfigError(
                f"free-text concept {spec!r} needs its own concept data: build it with "
                "unlearnkit.diffusion.text_concept_data(spec) (the CLI does this for --concept text:...)"
            )
        return concept(0)
    if ":" not in spec:
        raise ConfigError(f"bad concept {spec!r}; write object:NAME_OR_INDEX or style:NAME (e.g. object:3)")
    axis, value = spec.split(":", 1)
    if axis not in ("object", "style"):
        raise ConfigError(f"bad concept axis {axis!r}; use 'object', 'style' or 'text' (text:PROMPT)")
    names = data.names(axis)
    if value.isdigit() and int(value) < len(names):
        idx = int(value)
    elif value in names:
        idx = names.index(value)
    else:
        raise ConfigError(f"unknown {axis} {value!r}; choose one of {', '.join(names)} (or an index)")
    return ConceptSpec(axis, idx, names[idx])


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        raise DataError("the dataset's images are constant; cannot build concept data from them")
    return (x - lo) / (hi - lo)


def build_concept_data(
    images: torch.Tensor,
    labels: torch.Tensor,
    object_names: Sequence[str],
    *,
    name: str = "custom",
    synonyms: dict[str, str] | None = None,
    styles: Sequence[str] = tuple(STYLES),
    image_size: int | None = None,
    synonym_rate: float = 0.3,
    filler_rate: float = 0.5,
    seed: int = 0,
) -> ConceptData:
    """Every image in every style, each with a prompt; ``synonym_rate`` of prompts use synonyms and
    ``filler_rate`` start with 1–3 random filler words."""
    if images.ndim != 4:
        raise DataError(f"images must be shaped (N, C, H, W), got {tuple(images.shape)}")
    bad = [s for s in styles if s not in STYLES]
    if bad:
        raise ConfigError(f"unknown style(s) {bad}; choose from {', '.join(STYLES)}")
    x = _to_unit(images.float())
    if image_size is not None and x.shape[-1] != image_size:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
        x = x.clamp(0, 1)
    syn = dict(STYLE_SYNONYMS)
    syn.update(synonyms or {})
    words = [PAD, "a", "in", "style", *FILLER]
    for w in [*object_names, *styles]:
        words += [w] + ([syn[w]] if w in syn else [])
    vocab = Vocabulary(list(dict.fromkeys(words)))
    gen = torch.Generator().manual_seed(seed)
    parts, toks, objs, stys = [], [], [], []
    for si, s in enumerate(styles):
        parts.append(STYLES[s](x))
        use_syn = torch.rand(len(x), generator=gen) < synonym_rate
        use_fill = torch.rand(len(x), generator=gen) < filler_rate
        n_fill = torch.randint(1, MAX_FILLER + 1, (len(x),), generator=gen)
        fill = torch.randint(0, len(FILLER), (len(x), MAX_FILLER), generator=gen)
        for i in range(len(x)):
            o = object_names[int(labels[i])]
            o_word, s_word = (syn.get(o, o), syn.get(s, s)) if use_syn[i] else (o, s)
            words = [FILLER[int(j)] for j in fill[i, : int(n_fill[i])]] if use_fill[i] else []
            words += [w.replace("{object}", o_word).replace("{style}", s_word) for w in TEMPLATE]
            toks.append(vocab.encode(words, PROMPT_LEN))
        objs.append(labels.long())
        stys.append(torch.full((len(x),), si, dtype=torch.long))
    imgs = torch.cat(parts).clamp(0, 1) * 2 - 1
    return ConceptData(
        name,
        imgs.contiguous(),
        torch.stack(toks),
        torch.cat(objs),
        torch.cat(stys),
        list(object_names),
        list(styles),
        vocab,
        {k: v for k, v in syn.items() if k in (*object_names, *styles)},
    )


def load_concept_data(
    dataset: str = "digits",
    *,
    split: str = "train",
    train_subset: int | None = None,
    image_size: int | None = None,
    data_dir: str | None = None,
    seed: int = 0,
) -> ConceptData:
    """Concept data from a registered dataset: ``digits`` (8×8) or ``fashion-mnist`` (16×16 by default)."""
    from ..data.registry import load_dataset

    if dataset == "digits":
        names, syn = DIGIT_OBJECTS, DIGIT_SYNONYMS
    elif dataset == "fashion-mnist":
        names, syn = FASHION_OBJECTS, FASHION_SYNONYMS
        image_size = image_size or 16
    else:
        raise ConfigError(f"diffusion concept data supports 'digits' and 'fashion-mnist', not {dataset!r}")
    bundle = load_dataset(dataset, data_dir=data_dir, train_subset=train_subset, subset_seed=seed)
    part = bundle.train if split == "train" else bundle.test
    return build_concept_data(
        part.x, part.y, names, name=dataset, synonyms=syn, image_size=image_size, seed=seed + (split != "train")
    )
