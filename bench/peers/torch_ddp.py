"""The data-parallel peer of dist_scaling: the digits network (64 -> H -> ReLU -> dropout 0.1 -> 10)
trained by PyTorch DistributedDataParallel on the gloo backend, one CPU thread per process, as
the digits example trains it (the same data and split, AdamW with lr 3e-3 and weight decay
0.01, cross-entropy, a new shuffle every epoch).

Every process takes a disjoint share of every global batch (world size x --batch examples, the
same shuffle on every rank): rank r takes examples [r B, (r + 1) B) of each global batch, and
the last, smaller global batch is shared out as evenly as it can be. DDP averages the gradients
in one bucket per step (every gradient fits the first bucket), all-reduced once backward is done,
as Flammable does.

The first epoch is a warm-up; rank 0 times the others, from the end of the first epoch to the
end of the last, and prints one JSON line: the seconds, the examples trained (over every rank),
the steps, and the seconds the all-reduces took (a timer around DDP's all-reduce hook: from
the bucket's launch to its result).

    torchrun --standalone --nproc_per_node 2 torch_ddp.py --hidden 64 --batch 64 --epochs 5
"""

import argparse
import gzip
import json
import os
import time
import warnings

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel

PIXELS = 64
TEST_SIZE = 360
MASK = (1 << 64) - 1


def mix(z):
    """splitmix64's finaliser, as flammable::rng::derive_seed uses it."""
    z = (z + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def derive_seed(seed, label, index):
    """flammable::rng::derive_seed: FNV-1a of the label, mixed with the seed and the index."""
    h = 0xCBF29CE484222325
    for b in label.encode():
        h = ((h ^ b) * 0x100000001B3) & MASK
    return mix(mix(h ^ seed) ^ index)


def train_split(path):
    """The digits example's training set: the same rows, scaled to [0, 1], in the same order."""
    with gzip.open(path, "rt") as f:
        rows = [[float(v) for v in line.split(",")] for line in f if line.strip()]
    order = sorted(range(len(rows)), key=lambda i: derive_seed(0, "digits-split", i))
    train = order[TEST_SIZE:]
    x = torch.tensor([rows[i][:PIXELS] for i in train], dtype=torch.float32) / 16.0
    y = torch.tensor([int(rows[i][PIXELS]) for i in train], dtype=torch.long)
    return x, y


def shares(examples, batch, world, rank):
    """The (start, end) of this rank's share of each global batch of world x batch examples."""
    out = []
    step = batch * world
    for start in range(0, examples, step):
        size = min(step, examples - start)
        if size == step:
            out.append((start + rank * batch, start + (rank + 1) * batch))
            continue
        # The last global batch, shared as evenly as it can be; a rank left without an
        # example would hold the others' all-reduce, so that batch is dropped.
        if size < world:
            break
        base, extra = divmod(size, world)
        lo = start + rank * base + min(rank, extra)
        out.append((lo, lo + base + (1 if rank < extra else 0)))
    return out


class AllReduceTimer:
    """DDP's all-reduce hook, timed from the bucket's launch to its averaged result."""

    def __init__(self):
        self.seconds = 0.0
        self.calls = 0

    def hook(self, state, bucket):
        start = time.perf_counter()
        fut = default_hooks.allreduce_hook(state, bucket)

        def done(f):
            self.seconds += time.perf_counter() - start
            self.calls += 1
            return f.value()

        return fut.then(done)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--hidden", type=int, required=True)
    p.add_argument("--batch", type=int, required=True, help="examples per rank per step")
    p.add_argument("--epochs", type=int, required=True, help="including the untimed first one")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "../../examples/data/digits.csv.gz"))
    a = p.parse_args()
    if a.epochs < 2:
        p.error("--epochs: at least 2 (the first is a warm-up)")
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    warnings.filterwarnings("ignore")
    dist.init_process_group("gloo")
    world, rank = dist.get_world_size(), dist.get_rank()

    x, y = train_split(a.data)
    torch.manual_seed(a.seed)  # the same initial weights on every rank (DDP also broadcasts them)
    model = nn.Sequential(
        nn.Linear(PIXELS, a.hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(a.hidden, 10)
    )
    ddp = DistributedDataParallel(model)
    timer = AllReduceTimer()
    ddp.register_comm_hook(None, timer.hook)
    opt = torch.optim.AdamW(ddp.parameters(), lr=3e-3, weight_decay=0.01)
    loss_fn = nn.CrossEntropyLoss()
    mine = shares(len(x), a.batch, world, rank)
    examples_per_epoch = sum(
        e - s for r in range(world) for s, e in shares(len(x), a.batch, world, r)
    )

    start = None
    for epoch in range(a.epochs):
        if epoch == 1:
            dist.barrier()
            start = time.perf_counter()
            timer.seconds, timer.calls = 0.0, 0
        # The same permutation on every rank: each takes its share of the same global batches.
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(a.seed * 1000 + epoch))
        ddp.train()
        for s, e in mine:
            idx = order[s:e]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(ddp(x[idx]), y[idx])
            loss.backward()
            opt.step()
    dist.barrier()
    seconds = time.perf_counter() - start
    if rank == 0:
        timed = a.epochs - 1
        print(
            json.dumps(
                {
                    "seconds": seconds,
                    "examples": examples_per_epoch * timed,
                    "steps": len(mine) * timed,
                    "allreduce_seconds": timer.seconds,
                    "allreduces": timer.calls,
                    "world_size": world,
                    "final_loss": loss.item(),
                }
            ),
            flush=True,
        )
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
