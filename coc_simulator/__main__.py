"""``python -m coc_simulator``: the simulator CLI without the ``coc-etl`` wrapper."""

from coc_simulator.cli import main

raise SystemExit(main())
