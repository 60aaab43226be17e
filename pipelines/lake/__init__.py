"""The lake: the Delta tables, a day's writer and its publication.

Also the object store, the zone record and the raw archive.
"""
