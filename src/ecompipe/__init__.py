"""ecompipe: an event-driven e-commerce data pipeline.

CSV batches of orders, order items and products are validated against their contracts,
merged into a curated store exactly once, and turned into daily KPIs. Runs embedded
(a folder, SQLite, DuckDB) or on AWS (S3, Step Functions, ECS, DynamoDB, SNS).
"""

__version__ = "0.1.0"
