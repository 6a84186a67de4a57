"""A Stable Diffusion folder's scheduler, kept as given.

:func:`load_scheduler` reads ``scheduler/`` as the class its ``scheduler_config.json`` names (PNDM, Euler,
DPM-Solver, DDIM, DDPM, …) with its config untouched; :func:`noise_schedule` is the ᾱ_t of that config, which the
training losses and the DDIM steps of the methods use; :func:`copy_scheduler` writes the input's scheduler files
into an output folder byte for byte.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, ModelError


def noise_schedule(scheduler: Any) -> torch.Tensor:
    """ᾱ_t of a diffusers ``scheduler``'s config; refuses (one line, naming the scheduler) what the methods cannot
    train with: a non-ε prediction type or a scheduler with no DDPM noise schedule (flow matching)."""
    name = type(scheduler).__name__
    config = getattr(scheduler, "config", {})
    pred = config.get("prediction_type", "epsilon")
    if pred != "epsilon":
        raise ModelError(f"the pipeline's {name} predicts {pred!r}; the methods need an ε-prediction (epsilon) model")
    alphas = getattr(scheduler, "alphas_cumprod", None)
    if alphas is None:
        raise ModelError(
            f"{name} has no DDPM noise schedule (alphas_cumprod); the methods need a DDPM-type scheduler "
            "(DDPM, DDIM, PNDM, Euler, DPM-Solver, …)"
        )
    return torch.as_tensor(alphas).detach().float().clone()


def load_scheduler(folder: str | Path) -> Any:
    """The scheduler of a ``scheduler/`` folder as its own class (``_class_name`` of ``scheduler_config.json``:
    PNDM, Euler, DPM-Solver, …) and config, nothing replaced or added."""
    import diffusers

    folder = Path(folder)
    try:
        config = json.loads((folder / "scheduler_config.json").read_text())
        name = config["_class_name"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(
            f"{folder}/scheduler_config.json is unreadable or names no _class_name ({e}); "
            "save the scheduler with scheduler.save_pretrained(DIR)"
        ) from None
    cls = getattr(diffusers, str(name), None)
    if not (isinstance(cls, type) and issubclass(cls, diffusers.SchedulerMixin)):
        raise CheckpointError(f"{folder}: {name!r} is not a diffusers scheduler class; name one in _class_name")
    return cls.from_pretrained(folder)


def copy_scheduler(source: str | Path, target: str | Path) -> Path:
    """Copy the files of a ``scheduler/`` folder byte for byte (the output keeps the user's scheduler as given)."""
    source, target = Path(source), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    for f in sorted(source.iterdir()):
        if f.is_file():
            shutil.copyfile(f, target / f.name)
    return target
