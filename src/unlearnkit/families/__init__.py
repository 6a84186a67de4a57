"""The registered model families of :func:`unlearnkit.unlearn`, one module each (see :mod:`unlearnkit.family`).

Detection tries the specific families first and the classifier family (any other ``torch.nn.Module``, a
``fallback`` family) last.
"""

from . import classifier, diffusion, gan, lm  # noqa: F401  (registration)
