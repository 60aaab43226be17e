"""The command line (``coc-etl``), the demo and the loopback cluster.

The room above everything they assemble: ``pipelines``, ``warehouse`` and ``assets``.
"""
