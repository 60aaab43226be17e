"""Locks: one run per day and one build at a time.

A file lock on one machine, and leases that every machine of a deployment sees (Redis).
"""
