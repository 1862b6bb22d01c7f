#!/usr/bin/python3
"""The PyTorch peer for `kedit-bench stats` / `forward`: the same work on a GPT-2-small-sized random model
(12 x 768, d_ff 3072, vocab 50257), 49 documents of 128 random token ids, batches of 32 documents, 2 threads.

  stats    key statistics of layers 3-8: forward stopping after layer 8, float64 sums of k^T k (upstream's
           compute_stats with mom2_dtype float64)
  forward  the perplexity pass: every layer, logits over the vocabulary, mean NLL

A benchmark tool only (never run by the tests). Run it through bench/peer/run.sh, which preloads Debian's
pthread OpenBLAS (apt-get install python3-torch libopenblas0-pthread) and pins 2 threads.
Prints one line per op: `peer <op> <seconds> <tokens/s>` (best of --reps).
"""
import math, sys, time
import torch

torch.set_num_threads(2)
torch.manual_seed(1)
L, D, F, V, P = 12, 768, 3072, 50257, 1024
H = D // 64


def rand(*shape, scale=0.02):
    return (torch.rand(*shape) * 2 - 1) * scale * math.sqrt(3)


wte, wpe = rand(V, D), rand(P, D, scale=0.01)
blocks = [dict(qkv=rand(D, 3 * D), qkv_b=torch.zeros(3 * D), o=rand(D, D), o_b=torch.zeros(D),
               fc=rand(D, F), fc_b=torch.zeros(F), proj=rand(F, D), proj_b=torch.zeros(D)) for _ in range(L)]
ones, zeros = torch.ones(D), torch.zeros(D)


def gelu_new(x):
    return 0.5 * x * (1 + torch.tanh(0.7978845608028654 * (x + 0.044715 * x ** 3)))


def forward(ids, stop_after=None, on_key=None):
    B, T = ids.shape
    x = wte[ids] + wpe[torch.arange(T)]
    mask = torch.full((T, T), float("-inf")).triu(1)
    last = L - 1 if stop_after is None else stop_after
    for l in range(last + 1):
        w = blocks[l]
        h = torch.nn.functional.layer_norm(x, (D,), ones, zeros, 1e-5)
        q, k, v = (h @ w["qkv"] + w["qkv_b"]).split(D, dim=-1)
        q, k, v = (t.view(B, T, H, 64).transpose(1, 2) for t in (q, k, v))
        a = torch.softmax(q @ k.transpose(-1, -2) / 8.0 + mask, dim=-1) @ v
        x = x + a.transpose(1, 2).reshape(B, T, D) @ w["o"] + w["o_b"]
        h = torch.nn.functional.layer_norm(x, (D,), ones, zeros, 1e-5)
        key = gelu_new(h @ w["fc"] + w["fc_b"])
        if on_key is not None:
            on_key(l, key.reshape(B * T, F))
        x = x + key @ w["proj"] + w["proj_b"]
    if stop_after is not None:
        return None
    return torch.nn.functional.layer_norm(x, (D,), ones, zeros, 1e-5) @ wte.T


def documents():
    g = torch.Generator().manual_seed(3)
    return torch.randint(0, V, (49, 128), generator=g)


def stats(docs, layers=range(3, 9)):
    sums = {l: torch.zeros(F, F, dtype=torch.float64) for l in layers}

    def add(l, k):
        if l in sums:
            k64 = k.double()
            sums[l] += k64.T @ k64

    with torch.no_grad():
        for i in range(0, len(docs), 32):
            forward(docs[i:i + 32], stop_after=max(layers), on_key=add)
    return sums


def perplexity(docs):
    nll, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(docs), 32):
            ids = docs[i:i + 32]
            lp = torch.log_softmax(forward(ids)[:, :-1], dim=-1)
            nll -= lp.gather(-1, ids[:, 1:, None]).sum().item()
            n += ids[:, 1:].numel()
    return math.exp(nll / n)


def main():
    ops = [a for a in sys.argv[1:] if not a.startswith("--")] or ["stats", "forward"]
    reps = next((int(a.split("=")[1]) for a in sys.argv[1:] if a.startswith("--reps=")), 1)
    docs = documents()
    tokens = docs.numel()
    with torch.no_grad():
        forward(docs[:2], stop_after=8)  # warm-up
    for op in ops:
        run = {"stats": lambda: stats(docs), "forward": lambda: perplexity(docs)}[op]
        best = min(timed(run) for _ in range(reps))
        print(f"peer {op} {best:.2f} {tokens / best:.0f}", flush=True)


def timed(run):
    t = time.perf_counter()
    run()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
