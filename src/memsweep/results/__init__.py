"""The measurement table: its one schema, Hive-partitioned files, and their aggregation.

Below the harness: the harness writes in this format, the report reads it.
"""
