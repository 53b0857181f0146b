"""Storage ports (base.py) and their adapters: local.py and sqlite.py for the embedded
default, aws.py for S3 / DynamoDB / SNS."""
