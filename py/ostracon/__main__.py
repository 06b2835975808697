"""`python -m ostracon` runs the `ostracon` console script (for environments without it on PATH)."""

import sys

from .cli import main

sys.exit(main())
