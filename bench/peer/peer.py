#!/usr/bin/python3
"""The PyTorch peer for `kedit-bench stats` / `forward`: the same work on a GPT-2-small-sized random model
(12 x 768, d_ff 3072, vocab 50257), 49 documents of 128 random token ids, batches of 32 documents, 2 threads.

  stats    key statistics of layers 3-8: forward stopping after layer 8, float64 sums of k^T k (upstream's
           compute_stats with mom2_dtype float64)
  forward  the perplexity pass: every layer, logits over the vocabulary, mean NLL
  rome     one ROME edit at layer 5 as upstream computes it (compute_z: 20 Adam steps on delta, each a full
           forward and the backward to delta, NLL + KL + weight decay, clamp; then C^-1 k and the rank-one update)
  memit    a MEMIT batch of 10 at layers 4-6 (z per request, 20 steps; per layer keys, residual, float64
           solve of (lambda C + K K^T) X = K, update)
  d4s      10 sequential D4S edits at layers 4-6 with 5 z steps (running sums of K K^T and R K^T, one float64
           solve per layer and edit), seconds per edit
The edit ops use requests shaped as `kedit-bench edit` builds them (random ids: an 8-token prompt with the
subject ending at position 4, five 14-token context rows, a 7-token KL row, a 2-token target) and key
statistics over 64 random 64-token documents.

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


def forward(ids, stop_after=None, on_key=None, on_block=None, weights=None):
    B, T = ids.shape
    x = wte[ids] + wpe[torch.arange(T)]
    mask = torch.full((T, T), float("-inf")).triu(1)
    last = L - 1 if stop_after is None else stop_after
    for l in range(last + 1):
        w = blocks[l] if weights is None or l not in weights else dict(blocks[l], proj=weights[l])
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
        if on_block is not None:
            x = on_block(l, x)
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


# ---------------------------------------------------------------- editing (upstream's compute_z and solves)
EDIT_LAYERS, LAMBDA, CLAMP, KL_FACTOR, WD, LR = [4, 5, 6], 15000.0, 4.0, 0.0625, 0.5, 0.5


def edit_statistics():
    g = torch.Generator().manual_seed(5)
    docs = torch.randint(0, V, (64, 64), generator=g)
    sums = {l: torch.zeros(F, F, dtype=torch.float64) for l in EDIT_LAYERS}
    with torch.no_grad():
        forward(docs, stop_after=max(EDIT_LAYERS), on_key=lambda l, k: sums[l].add_(k.double().T @ k.double()) if l in sums else None)
    return {l: c / docs.numel() for l, c in sums.items()}


def request(g):
    r = lambda n: torch.randint(0, V, (n,), generator=g).tolist()
    prompt = r(8)
    contexts = [(prompt, 4)] + [(r(6) + prompt, 10) for _ in range(5)]
    return dict(contexts=contexts, kl=(r(7), 4), target=r(2))


def padded(rows):
    t = max(len(ids) for ids, _ in rows)
    return torch.tensor([ids + [0] * (t - len(ids)) for ids, _ in rows])


def keys_at(req, layer, weights):
    got = {}
    with torch.no_grad():
        forward(padded(req["contexts"]), stop_after=layer, on_key=lambda l, k: got.__setitem__(l, k), weights=weights)
    k = got[layer].view(len(req["contexts"]), -1, F)
    return torch.stack([k[i, idx] for i, (_, idx) in enumerate(req["contexts"])]).mean(0)


def compute_z(req, layer, steps, weights):
    tgt = req["target"]
    rows = [(ids + tgt[:-1], idx) for ids, idx in req["contexts"]] + [req["kl"]]
    ids = padded(rows)
    n = len(req["contexts"])
    delta = torch.zeros(D, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=LR)
    init, kl_init = {}, None

    def add_delta(l, x):
        if l != layer:
            return x
        if "h" not in init:
            init["h"] = x[0, rows[0][1]].detach().clone()
        x = x.clone()
        for i in range(n):
            x[i, rows[i][1]] = x[i, rows[i][1]] + delta
        return x

    for _ in range(steps):
        opt.zero_grad()
        logits = forward(ids, on_block=add_delta, weights=weights)
        lp = torch.log_softmax(logits, dim=-1)
        nll = 0
        for i, (row, idx) in enumerate(rows[:n]):
            start = len(row) - len(tgt)
            nll = nll - sum(lp[i, start + j, t] for j, t in enumerate(tgt)) / len(tgt)
        nll = nll / n
        kl_lp = lp[n, req["kl"][1]]
        if kl_init is None:
            kl_init = kl_lp.detach().clone()
        kl = KL_FACTOR * torch.nn.functional.kl_div(kl_lp, kl_init, log_target=True, reduction="sum")
        loss = nll + kl + WD * delta.norm() ** 2 / init["h"].norm() ** 2
        loss.backward()
        opt.step()
        with torch.no_grad():
            cap = CLAMP * init["h"].norm()
            if delta.norm() > cap:
                delta.mul_(cap / delta.norm())
    return init["h"] + delta.detach()


def block_output(req, layer, weights):
    got = {}
    with torch.no_grad():
        forward(padded(req["contexts"][:1]), stop_after=layer, weights=weights,
                on_block=lambda l, x: (got.__setitem__(l, x[0, req["contexts"][0][1]].clone()), x)[1])
    return got[layer]


def rome(cov, g):
    req, layer = request(g), 5
    w = {layer: blocks[layer]["proj"].clone()}
    k = keys_at(req, layer, w)
    z = compute_z(req, layer, 20, w)
    cinv_k = torch.linalg.solve(LAMBDA * cov[layer], k.double()).float()
    cur = block_output(req, layer, w)
    right = (z - cur) / torch.dot(cinv_k, k)
    w[layer] += cinv_k[:, None] @ right[None, :]
    return w


def memit(cov, g, reqs=None, steps=20, weights=None, sums=None):
    reqs = reqs or [request(g) for _ in range(10)]
    w = weights if weights is not None else {l: blocks[l]["proj"].clone() for l in EDIT_LAYERS}
    top = EDIT_LAYERS[-1]
    zs = torch.stack([compute_z(r, top, steps, w) for r in reqs])
    for i, layer in enumerate(EDIT_LAYERS):
        ks = torch.stack([keys_at(r, layer, w) for r in reqs]).double().T          # f x n
        cur = torch.stack([block_output(r, top, w) for r in reqs])
        resid = ((zs - cur) / (len(EDIT_LAYERS) - i)).double().T                     # d x n
        if sums is None:
            adj = torch.linalg.solve(LAMBDA * cov[layer] + ks @ ks.T, ks)
            w[layer] += (resid @ adj.T).T.float()
        else:  # D4S: the running sums make the sequence equal to one batch of every edit so far
            skk, srk = sums.setdefault(layer, (torch.zeros(F, F, dtype=torch.float64), torch.zeros(D, F, dtype=torch.float64)))
            skk += ks @ ks.T
            srk += resid @ ks.T
            delta = torch.linalg.solve(LAMBDA * cov[layer] + skk, srk.T)                # f x d
            w[layer] = blocks[layer]["proj"] + delta.float()
    return w


def d4s(cov, g, edits=10):
    w, sums = {l: blocks[l]["proj"].clone() for l in EDIT_LAYERS}, {}
    for _ in range(edits):
        memit(cov, g, reqs=[request(g)], steps=5, weights=w, sums=sums)
    return w


def main():
    ops = [a for a in sys.argv[1:] if not a.startswith("--")] or ["stats", "forward", "rome", "memit", "d4s"]
    reps = next((int(a.split("=")[1]) for a in sys.argv[1:] if a.startswith("--reps=")), 1)
    docs = documents()
    tokens = docs.numel()
    with torch.no_grad():
        forward(docs[:2], stop_after=8)  # warm-up
    cov = edit_statistics() if any(op in ("rome", "memit", "d4s") for op in ops) else None
    for op in ops:
        g = torch.Generator().manual_seed(7)
        run = {"stats": lambda: stats(docs), "forward": lambda: perplexity(docs),
               "rome": lambda: rome(cov, g), "memit": lambda: memit(cov, g), "d4s": lambda: d4s(cov, g)}[op]
        best = min(timed(run) for _ in range(reps))
        if op in ("stats", "forward"):
            print(f"peer {op} {best:.2f} {tokens / best:.0f}", flush=True)
        else:
            per = best / 10 if op == "d4s" else best
            print(f"peer {op} {best:.2f}" + (f" {per:.2f} per edit" if op == "d4s" else ""), flush=True)


def timed(run):
    t = time.perf_counter()
    run()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
