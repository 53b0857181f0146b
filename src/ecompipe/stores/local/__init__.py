"""The embedded backend: folder.py (a folder as the bucket, verified moves), sqlite.py
(lock, metrics tables, execution log in the workspace database), notifier.py (console and
notifications.jsonl)."""
