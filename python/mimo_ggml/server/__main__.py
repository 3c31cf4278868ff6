"""``python -m mimo_ggml.server`` (the same as ``mimo-ggml serve``)."""

import sys

from .options import main

sys.exit(main())
