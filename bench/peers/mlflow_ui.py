"""The MLflow peer of ui_scale: N runs (three parameters, two metrics each) logged into a SQLite
tracking store, served by `mlflow server`, then the search its runs page makes (max_results=N)
timed REPS times over loopback. Prints the median seconds of one search.

    python mlflow_ui.py --runs 500 --reps 30 --dir D
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, required=True)
    p.add_argument("--reps", type=int, required=True)
    p.add_argument("--dir", required=True)
    a = p.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    uri = "sqlite:///" + os.path.join(os.path.abspath(a.dir), "mlflow.db")

    import mlflow

    mlflow.set_tracking_uri(uri)
    experiment = mlflow.set_experiment("bench")
    for i in range(a.runs):
        with mlflow.start_run(run_name="run %d" % i):
            mlflow.log_params({"lr": [0.001, 0.003, 0.01][i % 3], "hidden": [64, 128, 256][(i // 3) % 3], "epochs": 10})
            mlflow.log_metrics({"loss": 1.0 / (1.0 + i % 97), "val_accuracy": (i % 100) / 100.0})

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = "http://127.0.0.1:%d" % port
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(base + "/health", timeout=2).read()
                break
            except Exception:
                if time.time() > deadline:
                    raise SystemExit("mlflow server did not start")
                time.sleep(0.3)
        body = json.dumps({"experiment_ids": [experiment.experiment_id], "max_results": a.runs, "order_by": ["attributes.start_time DESC"]}).encode()
        times = []
        for _ in range(a.reps + 1):
            req = urllib.request.Request(base + "/api/2.0/mlflow/runs/search", data=body, headers={"Content-Type": "application/json"})
            t = time.perf_counter()
            answer = json.loads(urllib.request.urlopen(req, timeout=60).read())
            times.append(time.perf_counter() - t)
            assert len(answer.get("runs", [])) == a.runs, len(answer.get("runs", []))
        # The first search warms the server's caches, as our first page reads the store.
        print(statistics.median(times[1:]))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
