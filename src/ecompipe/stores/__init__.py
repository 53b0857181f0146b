"""Storage: the ports (base.py) and one package per backend.

  base.py     the ports (ObjectStore, Lock, MetricsStore, ExecutionLog, Notifier), Backend
  host.py     this host and process liveness, for the lock adapters of both backends
  local/      folder.py (the bucket), sqlite.py (lock, metrics, execution log), notifier.py
  aws/        clients.py (boto3 clients, error classes), s3.py, dynamodb.py, sns.py

Adapters never import each other across backends; ecompipe.wiring builds them.
"""
