"""The metric-ingestion peers: N scalar points (one metric, steps 0..N) logged through MLflow's
`log_metric` (one call per point), MLflow's `log_batch` (1,000 points per call) or
TensorBoard's `SummaryWriter.add_scalar`, each into a fresh local folder.

Prints the seconds the timed part took (logging, then the flush or run end that makes the points
durable), after the imports and the creation of the run. bench's store_scale runs it once per round, interleaved with the
Rust variants.

    python ingest.py --tool mlflow-log-metric|mlflow-log-batch|tensorboard --points 10000 --dir D
"""

import argparse
import os
import time
import warnings


def mlflow_run(root, log):
    import mlflow

    # The default local backend of MLflow 3: a SQLite database.
    mlflow.set_tracking_uri("sqlite:///" + os.path.join(os.path.abspath(root), "mlflow.db"))
    # Creating the database and the run is set-up, not ingestion: the clock starts after it.
    mlflow.start_run()
    start = time.perf_counter()
    log(mlflow)
    mlflow.end_run()
    return time.perf_counter() - start


def log_metric(points, root):
    def log(mlflow):
        for i in range(points):
            mlflow.log_metric("loss", 0.5, step=i)

    return mlflow_run(root, log)


def log_batch(points, root):
    def log(mlflow):
        from mlflow.entities import Metric

        client = mlflow.tracking.MlflowClient()
        run_id = mlflow.active_run().info.run_id
        now = int(time.time() * 1000)
        for first in range(0, points, 1000):
            metrics = [Metric("loss", 0.5, now, i) for i in range(first, min(first + 1000, points))]
            client.log_batch(run_id, metrics=metrics)

    return mlflow_run(root, log)


def tensorboard(points, root):
    from torch.utils.tensorboard import SummaryWriter

    start = time.perf_counter()
    w = SummaryWriter(log_dir=os.path.join(root, "tb"))
    for i in range(points):
        w.add_scalar("loss", 0.5, i)
    w.close()
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tool", choices=["mlflow-log-metric", "mlflow-log-batch", "tensorboard"], required=True)
    p.add_argument("--points", type=int, required=True)
    p.add_argument("--dir", required=True, help="an empty folder for the tool's files")
    a = p.parse_args()
    warnings.filterwarnings("ignore")
    run = {"mlflow-log-metric": log_metric, "mlflow-log-batch": log_batch, "tensorboard": tensorboard}[a.tool]
    print(f"{run(a.points, a.dir):.6f}")


if __name__ == "__main__":
    main()
