"""The peers of export_speed: the same runs' points logged by the tools' own Python writers.

    python export_peers.py mlflow URI EXPERIMENT RUNS_JSON      MLflow's client (log_batch, 1000 a call)
    python export_peers.py tensorboard DIR RUNS_JSON            TensorBoard's EventFileWriter (what
                                                                 torch's SummaryWriter writes through)

RUNS_JSON: [{"id": ..., "params": {name: text}, "points": [[name, step, value, time], ...]}, ...].
Reading the file is not timed: a training script has its values in memory. Prints the seconds the
logging took as its last line.
"""

import json
import sys
import time


def with_mlflow(uri, experiment, runs):
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment_id = client.create_experiment(experiment)
    started = time.perf_counter()
    for run in runs:
        r = client.create_run(experiment_id, run_name=run["id"])
        run_id = r.info.run_id
        params = [Param(k, v) for k, v in run["params"].items()]
        client.log_batch(run_id, params=params)
        metrics = [Metric(n, v, int(round(t * 1000)), s) for n, s, v, t in run["points"]]
        for i in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[i : i + 1000])
        client.set_terminated(run_id, "FINISHED")
    return time.perf_counter() - started


def with_tensorboard(folder, runs):
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    started = time.perf_counter()
    for run in runs:
        writer = EventFileWriter(f"{folder}/{run['id']}")
        for n, s, v, t in run["points"]:
            value = Summary.Value(tag=n, simple_value=v)
            writer.add_event(Event(wall_time=t, step=s, summary=Summary(value=[value])))
        writer.close()
    return time.perf_counter() - started


def main():
    what = sys.argv[1]
    with open(sys.argv[-1]) as f:
        runs = json.load(f)
    if what == "mlflow":
        seconds = with_mlflow(sys.argv[2], sys.argv[3], runs)
    elif what == "tensorboard":
        seconds = with_tensorboard(sys.argv[2], runs)
    else:
        sys.exit(f"unknown peer {what}")
    print(seconds)


if __name__ == "__main__":
    main()
