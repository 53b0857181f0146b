"""Memory of the S3 store's uploads and downloads vs reading a whole body, on moto.

    .venv/bin/python bench/s3_transfer_memory.py --mib 200 --repeat 3

A moto server runs in this process; each transfer runs in a child process (so the server's
copy of the object is not counted) that samples its own RSS every 5 ms and prints the peak
growth over its RSS before the transfer. ``upload`` and ``download`` are S3ObjectStore's
(upload_file / download_file with its TransferConfig), ``local_path`` the claimed version's
download (GetObject IfMatch, streamed); ``whole body`` is what they must not do,
``get_object()["Body"].read()``, which holds the object. Prints the medians, in MiB.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import sys, threading
from pathlib import Path

import boto3
import psutil

from ecompipe.config import load_settings
from ecompipe.stores.aws.s3 import S3ObjectStore
from ecompipe.stores.base import ManifestEntry

url, op, folder = sys.argv[1], sys.argv[2], Path(sys.argv[3])
s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=url)
store = S3ObjectStore(s3, load_settings(env={"BUCKET_NAME": "bench-bucket"}), folder)
(folder / "small").write_bytes(b"x" * 100)
store._upload(folder / "small", "small")  # warm up: clients, threads, imports
store._download("small", folder / "small.out")
proc = psutil.Process()
base = proc.memory_info().rss
peak, stop = [base], threading.Event()

def sample():
    while not stop.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        stop.wait(0.005)

sampler = threading.Thread(target=sample)
sampler.start()
if op == "upload":
    store._upload(folder / "big", "big-up")
elif op == "download":
    store._download("big", folder / "big.out")
elif op == "local_path":
    head = s3.head_object(Bucket="bench-bucket", Key="big")
    entry = ManifestEntry("big", "orders", head["ContentLength"], head["ETag"].strip('"'))
    store.local_path("e1", entry)
else:
    s3.get_object(Bucket="bench-bucket", Key="big")["Body"].read()
stop.set()
sampler.join()
print((peak[0] - base) / 2**20)
"""


def main() -> None:
    """Upload, download and whole-body read of one object, ``--repeat`` times each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=200, help="object size in MiB")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import boto3  # noqa: TID251 (a bench of the aws backend)
    from moto.server import ThreadedMotoServer

    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    os.environ.update(env)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=url)
        s3.create_bucket(Bucket="bench-bucket")
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "big").write_bytes(os.urandom(args.mib << 20))
            s3.upload_file(str(folder / "big"), "bench-bucket", "big")
            print(
                f"object: {args.mib} MiB; peak RSS growth of the child, MiB (median of "
                f"{args.repeat})"
            )
            for op in ("upload", "download", "local_path", "whole body"):
                grown = [
                    float(
                        subprocess.run(
                            [sys.executable, "-c", CHILD, url, op, str(folder)],
                            env=env,
                            check=True,
                            capture_output=True,
                            text=True,
                        ).stdout
                    )
                    for _ in range(args.repeat)
                ]
                print(
                    f"{op:>10}: {statistics.median(grown):7.1f}  (runs: "
                    + ", ".join(f"{g:.1f}" for g in grown)
                    + ")"
                )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
