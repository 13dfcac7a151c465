"""GPHT speed / memory benchmark against an in-house STAND-IN (not the official code; the comparison with the
official icantnamemyself/GPHT at the same configuration is benchmarks/run_all.py, rows gpht-*).

fmzoo.timeseries.GPHT vs a plain-PyTorch reference written the way the
official code (icantnamemyself/GPHT) computes it: einsum attention with an explicit triangular mask,
Conv1d(k=1) feed-forward, unfold patching, a 5000-row position table. Both get the same weights (checked
to give the same forecasts) and run in separate subprocesses so each peak RSS is its own.

Prints: training throughput (windows/s, next-token MSE, batch 256), peak RSS, and autoregressive inference
latency per horizon (96/192/336/720) for a batch of ETTh1 test windows, with ours/reference ratios.

    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 .venv/bin/python benchmarks/timeseries_gpht.py [--checkpoint fmzoo/gpht-mixed]
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn


# ----------------------------------------------------------------------------- plain-PyTorch reference
class RefAttentionLayer(nn.Module):
    def __init__(self, d_model, n_heads, dropout=0.0):
        super().__init__()
        self.n_heads = n_heads
        self.dropout = nn.Dropout(dropout)
        self.query_projection = nn.Linear(d_model, d_model)
        self.key_projection = nn.Linear(d_model, d_model)
        self.value_projection = nn.Linear(d_model, d_model)
        self.out_projection = nn.Linear(d_model, d_model)

    def forward(self, x):
        b, length, _ = x.shape
        h = self.n_heads
        q = self.query_projection(x).view(b, length, h, -1)
        k = self.key_projection(x).view(b, length, h, -1)
        v = self.value_projection(x).view(b, length, h, -1)
        scores = torch.einsum("blhe,bshe->bhls", q, k)
        mask = torch.triu(torch.ones(b, 1, length, length, dtype=torch.bool), diagonal=1)
        scores.masked_fill_(mask, -math.inf)
        a = self.dropout(torch.softmax(scores / math.sqrt(q.shape[-1]), dim=-1))
        out = torch.einsum("bhls,bshd->blhd", a, v).contiguous().view(b, length, -1)
        return self.out_projection(out)


class RefEncoderLayer(nn.Module):
    def __init__(self, d_model, n_heads, d_ff, dropout=0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.attention = RefAttentionLayer(d_model, n_heads, dropout)
        self.conv1 = nn.Conv1d(d_model, d_ff, 1)
        self.conv2 = nn.Conv1d(d_ff, d_model, 1)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, x):
        x = self.norm1(x + self.dropout(self.attention(x)))
        y = self.dropout(F.gelu(self.conv1(x.transpose(-1, 1))))
        y = self.dropout(self.conv2(y).transpose(-1, 1))
        return self.norm2(x + y)


class RefStage(nn.Module):
    def __init__(self, rate, token_len, d_model, n_heads, d_ff, n_layers, dropout=0.0):
        super().__init__()
        self.patch = token_len // rate
        self.dropout = nn.Dropout(dropout)
        self.down_sample = nn.MaxPool1d(rate)
        self.value_embedding = nn.Linear(self.patch, d_model, bias=False)
        pe = torch.zeros(5000, d_model)
        pos = torch.arange(5000).float().unsqueeze(1)
        div = (torch.arange(0, d_model, 2).float() * -(math.log(10000.0) / d_model)).exp()
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
        self.register_buffer("pe", pe.unsqueeze(0))
        self.layers = nn.ModuleList([RefEncoderLayer(d_model, n_heads, d_ff, dropout) for _ in range(n_layers)])
        self.norm = nn.LayerNorm(d_model)
        self.forecast_head = nn.Linear(d_model, token_len)

    def forward(self, x):  # x [B, L, C]
        x = self.down_sample(x.permute(0, 2, 1))
        n_vars = x.shape[1]
        x = x.unfold(-1, self.patch, self.patch)
        x = x.reshape(x.shape[0] * x.shape[1], x.shape[2], x.shape[3])
        h = self.value_embedding(x)
        h = self.dropout(h + self.pe[:, : h.shape[1]])
        for layer in self.layers:
            h = layer(h)
        h = self.norm(h)
        h = h.reshape(-1, n_vars, h.shape[-2], h.shape[-1])
        out = self.forecast_head(h).reshape(h.shape[0], n_vars, -1)
        return out.permute(0, 2, 1)


class RefGPHT(nn.Module):
    def __init__(self, token_len, pooling, d_model, n_heads, d_ff, n_layers, dropout=0.0, **_):
        super().__init__()
        self.token_len = token_len
        self.encoders = nn.ModuleList([RefStage(r, token_len, d_model, n_heads, d_ff, n_layers, dropout)
                                       for r in pooling])

    def forward(self, x):
        means = x.mean(1, keepdim=True)
        x = x - means
        std = torch.sqrt(torch.var(x, dim=1, keepdim=True, unbiased=False) + 1e-5)
        x = x / std
        dec = 0
        for enc in self.encoders:
            out = enc(x)
            dec = dec + out
            roll = torch.cat([torch.zeros(x.shape[0], self.token_len, x.shape[2]), out], 1)[:, : -self.token_len]
            x = x - roll
        return dec * std + means

    @torch.no_grad()
    def generate(self, x, horizon, context_len=336):
        outs = []
        for _ in range(-(-horizon // self.token_len)):
            nxt = self(x)[:, -self.token_len:]
            outs.append(nxt)
            x = torch.cat([x, nxt], 1)[:, -context_len:]
        return torch.cat(outs, 1)[:, :horizon]


def reference_from(model) -> RefGPHT:
    a = model.init_args
    ref = RefGPHT(a["token_len"], a["pooling"], a["d_model"], a["n_heads"], a["d_ff"], a["n_layers"], a["dropout"])
    sd = {}
    for i, st in enumerate(model.stages):
        p = f"encoders.{i}."
        sd[p + "value_embedding.weight"] = st.embed.weight
        sd[p + "pe"] = ref.encoders[i].pe
        sd[p + "norm.weight"], sd[p + "norm.bias"] = st.norm.weight, st.norm.bias
        sd[p + "forecast_head.weight"], sd[p + "forecast_head.bias"] = st.head.weight, st.head.bias
        for j, ly in enumerate(st.layers):
            q = f"{p}layers.{j}."
            for ours, theirs in (("q", "query_projection"), ("k", "key_projection"), ("v", "value_projection"),
                                 ("o", "out_projection")):
                sd[f"{q}attention.{theirs}.weight"] = getattr(ly, ours).weight
                sd[f"{q}attention.{theirs}.bias"] = getattr(ly, ours).bias
            sd[q + "conv1.weight"], sd[q + "conv1.bias"] = ly.ff1.weight.unsqueeze(-1), ly.ff1.bias
            sd[q + "conv2.weight"], sd[q + "conv2.bias"] = ly.ff2.weight.unsqueeze(-1), ly.ff2.bias
            for n in ("norm1", "norm2"):
                sd[f"{q}{n}.weight"], sd[f"{q}{n}.bias"] = getattr(ly, n).weight, getattr(ly, n).bias
    ref.load_state_dict({k: v.detach().clone() for k, v in sd.items()}, strict=True)
    return ref.eval()


# ----------------------------------------------------------------------------- one measurement (child)
def child(impl: str, what: str, checkpoint: str, batch: int, steps: int, windows: int) -> dict:
    torch.set_num_threads(1)
    from fmzoo.timeseries import GPHT
    from fmzoo.timeseries.data.ltsf import MixtureWindows, eval_windows, load_ltsf

    model = GPHT.from_pretrained(checkpoint)
    net = model if impl == "ours" else reference_from(model)
    out = {"impl": impl, "what": what}
    if what == "train":
        ds = MixtureWindows(["ETTh1"], model.context_len, model.token_len)
        g = torch.Generator().manual_seed(0)
        net.train()  # both with the checkpoint's dropout (0.1), as in pretraining
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)
        t = model.token_len
        for i in range(steps + 2):
            b = torch.stack([ds[int(k)] for k in torch.randint(len(ds), (batch,), generator=g)])
            if i == 2:
                t0 = time.perf_counter()
            y = net(b[:, :-t]) if impl == "ours" else net(b[:, :-t, None])[..., 0]
            loss = F.mse_loss(y, b[:, t:])
            opt.zero_grad()
            loss.backward()
            opt.step()
        dt = time.perf_counter() - t0
        out["windows_per_s"] = steps * batch / dt
    else:
        data = load_ltsf("ETTh1")
        lat = {}
        for h in (96, 192, 336, 720):
            ctx, _ = eval_windows(data, "test", h, max_windows=windows)  # [W, 336, 7]
            with torch.no_grad():
                (model.generate if impl == "ours" else net.generate)(ctx[:2], h)  # warm-up
                t0 = time.perf_counter()
                pred = model.generate(ctx, h) if impl == "ours" else net.generate(ctx, h)
                lat[h] = time.perf_counter() - t0
            out.setdefault("checksum", {})[h] = float(pred.double().abs().mean())
        out["latency_s"] = lat
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="fmzoo/gpht-mixed")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--windows", type=int, default=32, help="ETTh1 test windows (x 7 channels) per latency call")
    ap.add_argument("--child", nargs=2, metavar=("IMPL", "WHAT"))
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child[0], a.child[1], a.checkpoint, a.batch, a.steps, a.windows)))
        return
    # correctness first: same weights, same forecasts
    from fmzoo.timeseries import GPHT

    m = GPHT.from_pretrained(a.checkpoint)
    x = torch.randn(4, m.context_len, 3)
    diff = float((m.generate(x, 96) - reference_from(m).generate(x, 96, m.context_len)).abs().max())
    print(f"checkpoint {a.checkpoint}: {sum(p.numel() for p in m.parameters()):,} parameters; "
          f"max |ours - reference| on a 96-step forecast = {diff:.2e}")
    res = {}
    for what in ("train", "infer"):
        for impl in ("ours", "reference"):
            cmd = [sys.executable, __file__, "--checkpoint", a.checkpoint, "--batch", str(a.batch), "--steps",
                   str(a.steps), "--windows", str(a.windows), "--child", impl, what]
            line = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            res[(impl, what)] = json.loads(line)
    o, r = res[("ours", "train")], res[("reference", "train")]
    print(f"\ntraining (batch {a.batch}, {a.steps} timed steps, 1 thread)")
    print(f"  ours       {o['windows_per_s']:8.1f} windows/s   peak RSS {o['peak_rss_mb']:.0f} MB")
    print(f"  reference  {r['windows_per_s']:8.1f} windows/s   peak RSS {r['peak_rss_mb']:.0f} MB")
    print(f"  ratio ours/reference throughput: {o['windows_per_s'] / r['windows_per_s']:.2f}x")
    o, r = res[("ours", "infer")], res[("reference", "infer")]
    print(f"\nautoregressive inference, {a.windows} ETTh1 test windows x 7 channels per call")
    print("  horizon  ours (s)  reference (s)  speed-up  checksum match")
    for h in (96, 192, 336, 720):
        lo, lr = o["latency_s"][str(h)], r["latency_s"][str(h)]
        same = abs(o["checksum"][str(h)] - r["checksum"][str(h)]) < 1e-4
        print(f"  {h:7d}  {lo:8.3f}  {lr:13.3f}  {lr / lo:7.2f}x  {same}")
    print(f"  peak RSS: ours {o['peak_rss_mb']:.0f} MB, reference {r['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
