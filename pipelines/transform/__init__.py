"""From what the API sent to the contract's columns.

The schemas, the flattening and schema drift.
"""
