"""Extracting a day from the COC API.

The walk over tickets and batches, and the instance pages as received.
"""
