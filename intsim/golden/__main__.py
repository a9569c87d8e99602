"""``python -m intsim.golden COMMAND ...``: the golden-vector commands without the ``intsim`` entry point."""

import sys

from .cli import main

sys.exit(main())
