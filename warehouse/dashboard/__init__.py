"""``coc-etl dashboard``: a read-only Streamlit dashboard over ``coc.duckdb``.

``queries`` holds the SQL as plain functions (tested directly), ``app`` the Streamlit page,
``serve`` the checks and the server start.
"""
