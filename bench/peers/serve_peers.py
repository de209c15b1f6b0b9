"""The inference-server peers of bench/src/bin/serve_load.rs.

The digits network of the Flammable example (64 -> HIDDEN -> ReLU -> 10, softmax; random weights:
speed does not depend on them) on one CPU thread, behind:

  fastapi         a plain FastAPI app on uvicorn: one forward pass per request
  litserve        LitServe, batching off
  litserve-batch  LitServe with dynamic batching (max_batch_size 32, batch_timeout 0)

Each takes the body Flammable's digits task takes (a JSON array of 64 pixel values 0..16) and
answers {"class": ..., "probability": ...}. GET /health answers once the server is up.

Usage: python serve_peers.py KIND PORT HIDDEN
"""

import os
import sys

import torch


def network():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    hidden = int(os.environ["FLAMMABLE_PEER_HIDDEN"])
    return torch.nn.Sequential(
        torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10)
    ).eval()


def answer(logits):
    p = torch.softmax(logits, -1)
    c = int(torch.argmax(p))
    return {"class": c, "probability": float(p[c])}


def fastapi(port):
    import uvicorn
    from fastapi import FastAPI, Request

    app = FastAPI()
    net = network()

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.post("/predict")
    async def predict(request: Request):
        x = torch.tensor(await request.json(), dtype=torch.float32) / 16.0
        with torch.inference_mode():
            return answer(net(x.unsqueeze(0))[0])

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


try:
    import litserve as ls

    class Digits(ls.LitAPI):
        """The network behind LitServe; `max_batch_size` > 1 turns its batching on."""

        def setup(self, device):
            self.net = network()

        def decode_request(self, request):
            return torch.tensor(request, dtype=torch.float32) / 16.0

        def batch(self, inputs):
            return torch.stack(inputs)

        def predict(self, x):
            with torch.inference_mode():
                return self.net(x if x.dim() == 2 else x.unsqueeze(0))

        def unbatch(self, output):
            return list(output)

        def encode_response(self, output):
            return answer(output if output.dim() == 1 else output[0])

except ImportError:
    ls = None


def litserve(port, batched):
    api = Digits(max_batch_size=32 if batched else 1, batch_timeout=0.0)
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1)
    server.run(host="127.0.0.1", port=port, log_level="warning", generate_client_file=False)


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    os.environ["FLAMMABLE_PEER_HIDDEN"] = sys.argv[3]
    if kind == "fastapi":
        fastapi(port)
    elif kind in ("litserve", "litserve-batch"):
        litserve(port, kind == "litserve-batch")
    else:
        sys.exit(f"unknown peer {kind}")
