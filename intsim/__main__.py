"""``python -m intsim`` is the ``intsim`` command."""

import sys

from .apps.cli import main

sys.exit(main())
