"""The AWS backend: clients.py (boto3 clients, imported lazily, and error translation),
s3.py (object store), dynamodb.py (lock, metrics, execution log), sns.py (notifier),
conditions.py (the deadline checks' raised conditions, in the execution log's table).

Every adapter gets its client passed in, so tests point them at a moto server.
"""
