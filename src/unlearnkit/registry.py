"""The one registry of unlearning methods, keyed by (family, name).

Every :class:`~unlearnkit.methods.base.Method` subclass names its family in ``domain`` (``"classifier"``,
``"lm"``, ``"diffusion"``, ``"gan"``) and registers itself with :func:`register`. Each family declares the
module whose import registers its methods (:func:`declare_family`, called by the family's registration module in
:mod:`unlearnkit.families`); the first query about a family imports that module, so :func:`available_methods` and
:func:`make_method` work without importing anything first while ``import unlearnkit`` stays free of the optional
dependencies (transformers, diffusers) that only a family's methods use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .methods.base import Method

#: the family whose methods are meant when none is named
DEFAULT_FAMILY = "classifier"

_METHODS: dict[tuple[str, str], type[Method]] = {}
#: family -> the module whose import registers its methods
_METHOD_MODULES: dict[str, str] = {"classifier": "unlearnkit.methods"}
_LOADED: set[str] = set()


def declare_family(family: str, methods_module: str) -> None:
    """Tell the registry that importing ``methods_module`` registers the methods of ``family``."""
    _METHOD_MODULES[family] = methods_module


def families() -> list[str]:
    """The declared families, in declaration order."""
    return list(_METHOD_MODULES)


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make a :class:`Method` available by its ``name`` within its family (``domain``)."""
    if not cls.name:
        raise ConfigError(f"{cls.__name__} needs a non-empty `name` to be registered")
    _METHODS[(cls.domain, cls.name)] = cls
    return cls


def _family(family: str | None, domain: str | None) -> str:
    """``family=`` with ``domain=`` as its older alias; a family nobody declared is refused."""
    if family is not None and domain is not None and family != domain:
        raise ConfigError(f"family={family!r} and domain={domain!r} disagree; pass only family=")
    name = family or domain or DEFAULT_FAMILY
    if name not in _METHOD_MODULES:
        raise ConfigError(f"unknown family {name!r}; choose one of {', '.join(_METHOD_MODULES)}")
    if name not in _LOADED:
        importlib.import_module(_METHOD_MODULES[name])  # registers the family's methods
        _LOADED.add(name)
    return name


def available_methods(task: str | None = None, domain: str | None = None, *, family: str | None = None) -> list[str]:
    """Registered method names of ``family`` (default ``"classifier"``; ``domain`` is the older name of the same
    argument), optionally only those supporting ``task``."""
    fam = _family(family, domain)
    return sorted(n for (d, n), c in _METHODS.items() if d == fam and (task is None or task in c.tasks))


def get_method_class(name: str, domain: str | None = None, *, family: str | None = None) -> type[Method]:
    """The registered class of method ``name`` in ``family``; an unknown name lists the family's methods."""
    fam = _family(family, domain)
    if (fam, name) not in _METHODS:
        for other in _METHOD_MODULES:  # an unknown name: look in every family to say where it is
            _family(other, None)
        others = sorted(f for (f, n) in _METHODS if n == name and f != fam)
        where = f"{' and '.join(others)} famil{'ies' if len(others) > 1 else 'y'}"
        hint = f" ({name!r} is a method of the {where})" if others else ""
        valid = ", ".join(available_methods(family=fam))
        raise ConfigError(f"unknown method {name!r} for the {fam} family{hint}; choose one of {valid}")
    return _METHODS[(fam, name)]


def make_method(name: str, domain: str | None = None, *, family: str | None = None, **hparams: Any) -> Method:
    """Build method ``name`` of ``family`` with ``hparams``; unknown names or hyper-parameters raise
    :class:`ConfigError` listing the valid ones."""
    cls = get_method_class(name, domain, family=family)
    valid = cls.hparam_names()
    unknown = sorted(set(hparams) - set(valid))
    if unknown:
        raise ConfigError(
            f"method {name!r} has no hyper-parameter {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}"
        )
    return cls(**hparams)
