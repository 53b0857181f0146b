"""The embedded backend: folder.py (a folder as the bucket, verified moves), sqlite.py
(lock, metrics tables, execution log, raised conditions in the workspace database),
notifier.py (console and notifications.jsonl)."""
