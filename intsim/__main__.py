"""``python -m intsim`` is the ``intsim`` command."""

import sys

from .cli import main

sys.exit(main())
