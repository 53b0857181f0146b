"""Storage: the ports (base.py) and one package (or module) per backend.

  base.py     the ports (ObjectStore, Lock, MetricsStore, ExecutionLog, Notifier, Conditions,
              Alert), Backend
  host.py     this host, process liveness and the lease rule, for every lock adapter
  local/      folder.py (the bucket), sqlite.py (lock, metrics, execution log, conditions),
              notifier.py
  aws/        clients.py (boto3 clients, error classes), s3.py, dynamodb.py, sns.py,
              conditions.py
  memory.py   every port in one process's memory (tests, the demo mode)
  webhook.py  the webhook alert channel, beside any backend's notifier

Adapters never import each other across backends; ecompipe.wiring builds them.
"""
