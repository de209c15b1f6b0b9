"""The training-loop peers: the benchmark's MLP (64->256->256->10), in-memory batches and plain SGD,
trained by a PyTorch eager loop or by a Lightning Trainer, on one CPU thread.

Prints the seconds the timed part took (the loop, or trainer.fit), after an untimed warm-up,
so that interpreter start-up and imports are not counted. bench's train_loop runs it once per
round, interleaved with the Rust variants.

    python torch_loop.py --variant eager|lightning --batch 64 --steps 256
"""

import argparse
import os
import time
import warnings

import torch
from torch import nn

EXAMPLES = 4096


def batches(batch):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(EXAMPLES, 64, generator=g)
    y = torch.randint(0, 10, (EXAMPLES,), generator=g)
    return [(x[i : i + batch], y[i : i + batch]) for i in range(0, EXAMPLES - batch + 1, batch)]


def mlp():
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))


def eager(data, steps):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    done = 0
    while done < steps:
        for x, y in data:
            if done == steps:
                break
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            done += 1


def lightning_fit(data, steps, root):
    import lightning as L

    class Task(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = mlp()
            self.loss_fn = nn.CrossEntropyLoss()

        def training_step(self, batch, _):
            x, y = batch
            loss = self.loss_fn(self.model(x), y)
            self.log("loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    # Pre-made batches (batch_size=None): the loader hands them out as the Rust loops do.
    loader = torch.utils.data.DataLoader(data, batch_size=None, shuffle=False)
    # As a user gets it: the default logger, progress bar and checkpointing stay on.
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=steps,
        max_epochs=-1,
        default_root_dir=root,
    )
    trainer.fit(Task(), loader)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--variant", choices=["eager", "lightning"], required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--root", default=os.getcwd(), help="where Lightning writes its logs and checkpoints")
    a = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    warnings.filterwarnings("ignore")
    data = batches(a.batch)
    run = eager if a.variant == "eager" else (lambda d, s: lightning_fit(d, s, a.root))
    run(data, min(a.steps, 8))  # warm-up: first-call allocations and lazy imports
    start = time.perf_counter()
    run(data, a.steps)
    print(f"{time.perf_counter() - start:.6f}")


if __name__ == "__main__":
    main()
