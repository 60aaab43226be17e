"""The benchmark suite of issue 4: ``make bench`` (or ``python -m bench``).

Six measurements, each a ratio against a baseline measured in the same run, reported as the
median of several runs with their min and max, next to the issue's target:

1. ``request_efficiency``: requests the product made / the minimal requests of the day;
2. ``rate_limited``: wall time against a server capped at 50 requests/s / (minimal / 50);
3. ``end_to_end``: instances/s of the product (plain function and Dagster asset) against a
   bytes-only fetch of the same pages with the same client, and against dlt's REST API source;
4. ``flatten_write``: the product's decode + flatten + Parquet write against pandas;
5. ``memory``: peak RSS of an ingestion at 100k and at 1M instances in a day;
6. ``marts``: each mart's query time against a plain failure-rate ``GROUP BY`` over ~10M rows,
   and the files and bytes a one-day filter reads.

``python -m bench --quick`` runs every measurement at tiny sizes (a smoke test, under a
minute); ``--only NAME`` runs some of them. Results go to ``bench/results/latest.json``
(``quick.json`` for ``--quick``) and a table on stdout.
"""
