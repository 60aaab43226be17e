"""``python -m coc_etl.cli``: the same as ``coc-etl``."""

import sys

from coc_etl.cli import main

sys.exit(main())
