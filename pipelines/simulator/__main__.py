"""``python -m pipelines.simulator``: the simulator CLI without the ``coc-etl`` wrapper."""

from pipelines.simulator.cli import main

raise SystemExit(main())
