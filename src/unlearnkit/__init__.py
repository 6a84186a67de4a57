"""unlearnkit: remove the influence of chosen training data from a trained model, and measure how well.

Public API::

    import unlearnkit as uk
    result = uk.unlearn(model, forget=(Xf, yf), retain=(Xr, yr), method="salun", epochs=5)
    report = uk.evaluate(result.model, forget=..., retain=..., test=..., reference=retrained)
"""

from .api import UnlearnResult, unlearn
from .checkpoint import load, save
from .data import DatasetBundle, TensorData, available_datasets, load_dataset
from .engine import Hook, Phase, Recipe, train
from .errors import (
    CheckpointError,
    ConfigError,
    DataError,
    ForgetSpecError,
    MissingDependencyError,
    ModelError,
    StorageError,
    UnlearnkitError,
)
from .forget import ForgetSplit, parse_forget
from .methods import Method, available_methods, make_method, register
from .metrics import Evaluation, evaluate
from .models import available_models, create_model
from .training import train_model

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DatasetBundle",
    "Evaluation",
    "ForgetSpecError",
    "ForgetSplit",
    "Hook",
    "Method",
    "MissingDependencyError",
    "ModelError",
    "Phase",
    "Recipe",
    "StorageError",
    "TensorData",
    "UnlearnResult",
    "UnlearnkitError",
    "available_datasets",
    "available_methods",
    "available_models",
    "create_model",
    "evaluate",
    "load",
    "load_dataset",
    "make_method",
    "parse_forget",
    "register",
    "save",
    "train",
    "train_model",
    "unlearn",
]
