"""``python -m unlearnkit``: the same command line as the ``unlearnkit`` script."""

import sys

from .cli import main

sys.exit(main())
