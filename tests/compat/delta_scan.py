"""Run by the compatibility environment ``duckdb-delta``: DuckDB 1.5's ``delta_scan`` over a table.

    python delta_scan.py TABLE_URI [ENDPOINT KEY_ID REGION]   (the secret key on stdin)

Loads the ``delta`` extension (and ``httpfs`` for ``s3://``) from the files its PyPI
packages ship, offline (``allow_unsigned_extensions``), and prints, as JSON, the instance
keys the table's newest version holds, and what a plain glob of the same folder holds.
"""

from __future__ import annotations

import glob
import json
import sys
from pathlib import Path

import duckdb

SITE = Path(duckdb.__file__).parent.parent


def extension(name: str) -> str:
    (found,) = glob.glob(f"{SITE}/duckdb_extension_{name}/extensions/*/{name}.duckdb_extension")
    return found


def main(uri: str, *s3: str) -> None:
    con = duckdb.connect(
        config={
            "allow_unsigned_extensions": True,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
    )
    if s3:
        con.execute(f"LOAD '{extension('httpfs')}'")
        endpoint, key_id, region = s3
        con.execute(
            "CREATE SECRET s3 (TYPE s3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, "
            "URL_STYLE 'path', USE_SSL false)".replace("?", "'{}'").format(
                key_id, sys.stdin.read().strip(), region, endpoint.split("://", 1)[1]
            )
        )
    con.execute(f"LOAD '{extension('delta')}'")
    keys = "execute_uuid, batch_index, instance_id"
    scanned = con.execute(f"SELECT {keys} FROM delta_scan('{uri}') ORDER BY ALL").fetchall()
    globbed = con.execute(f"SELECT count(*) FROM read_parquet('{uri}/dt=*/*.parquet')").fetchone()
    print(json.dumps({"delta_scan": scanned, "glob": globbed[0] if globbed else None}))


if __name__ == "__main__":
    main(*sys.argv[1:])
