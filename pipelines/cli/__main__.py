"""``python -m pipelines.cli``: the same as ``coc-etl``."""

import sys

from pipelines.cli import main

sys.exit(main())
