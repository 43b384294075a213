"""``python -m robustbench_w`` is ``wrobust``."""

import sys

from .cli import main

sys.exit(main())
