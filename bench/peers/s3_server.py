"""An S3 server for the benchmarks: moto's, on 127.0.0.1:PORT, with one bucket, `runs`.

Prints `ready` when it answers; each `reset` line read on stdin empties it (and makes the
bucket again) and prints `ready` again; it stops when stdin closes.
"""
import sys
import urllib.request

import boto3
from moto.server import ThreadedMotoServer

port = int(sys.argv[1])
endpoint = f"http://127.0.0.1:{port}"
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()


def fresh_bucket():
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench",
                 aws_secret_access_key="bench", region_name="us-east-1").create_bucket(Bucket="runs")
    print("ready", flush=True)


fresh_bucket()
for line in sys.stdin:
    if line.strip() == "reset":
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))
        fresh_bucket()
server.stop()
