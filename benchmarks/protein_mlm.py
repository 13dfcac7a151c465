"""Masked-LM pretraining throughput (tokens/s) and peak memory: fmzoo-protein TapeTransformer vs TAPE's own
ProteinBertForMaskedLM (tape-proteins) on the same real batch, at TAPE's base configuration (bert-base) and at
our CPU configuration (tape-transformer-small). Each (implementation, config) runs in its own process so the
peak RSS is its own. Not run by CI.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/protein_mlm.py            # fmzoo only
    # with the TAPE reference in the same run (tape-proteins lives in a throwaway venv that sees our venv):
    PYTHONPATH=packages/protein/src:packages/core/src OMP_WAIT_POLICY=PASSIVE /tmp/tapevenv/bin/python benchmarks/protein_mlm.py
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import time

CONFIGS = {
    "tape-base (bert-base)": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                                  max_position_embeddings=8096),
    "cpu (tape-transformer-small)": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                                         intermediate_size=512, max_position_embeddings=1024),
}


def _batch(n_seq: int, length: int):
    import torch
    from fmzoo.protein.data.fasta import load_pretraining_sequences
    from fmzoo.protein.methods.mlm import apply_bert_mask
    from fmzoo.protein.spec import TAPETokenizer

    seqs = [s[: length - 2] for s in load_pretraining_sequences() if len(s) >= length - 2][:n_seq]
    ids, mask = TAPETokenizer(unknown="X").batch_encode(seqs)
    masked, targets = apply_bert_mask(ids, torch.Generator().manual_seed(0))
    return masked, mask, targets


def _worker(impl: str, cfg_name: str, n_seq: int, length: int, steps: int, threads: int, q):
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = CONFIGS[cfg_name]
    ids, mask, targets = _batch(n_seq, length)
    if impl == "fmzoo":
        from fmzoo.protein import TapeTransformer
        from fmzoo.protein.methods.mlm import mlm_loss

        model = TapeTransformer(**cfg).train()

        def step():
            return mlm_loss(model, ids, mask, targets)[0]
    else:
        from tape import ProteinBertConfig
        from tape.models.modeling_bert import ProteinBertForMaskedLM

        model = ProteinBertForMaskedLM(ProteinBertConfig(**cfg)).train()

        def step():
            return model(ids, input_mask=mask, targets=targets)[0][0]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def one():
        loss = step()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    one()  # warm-up
    t = time.perf_counter()
    for _ in range(steps):
        one()
    dt = time.perf_counter() - t
    tokens = int(mask.sum()) * steps
    q.put({"impl": impl, "config": cfg_name, "params": sum(p.numel() for p in model.parameters()),
           "batch": f"{n_seq}x{length}", "steps": steps, "tokens_per_s": tokens / dt,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--base-steps", type=int, default=2)
    ap.add_argument("--small-steps", type=int, default=10)
    args = ap.parse_args()
    try:
        import tape  # noqa: F401

        impls = ["fmzoo", "tape"]
    except ImportError:
        impls = ["fmzoo"]
        print("tape-proteins not importable here: fmzoo only (see the module docstring for the reference run)")
    plan = [("tape-base (bert-base)", 4, 256, args.base_steps), ("cpu (tape-transformer-small)", 8, 512, args.small_steps)]
    ctx = mp.get_context("spawn")
    results = []
    for cfg_name, n_seq, length, steps in plan:
        for impl in impls:
            q = ctx.Queue()
            p = ctx.Process(target=_worker, args=(impl, cfg_name, n_seq, length, steps, args.threads, q))
            p.start()
            res = q.get()
            p.join()
            results.append(res)
            print(json.dumps(res))
    print(f"\nMLM pretraining step (forward+backward+AdamW), {args.threads} threads, real FLIP sequences, 15% masking")
    print(f"{'config':<30} {'impl':<6} {'params':>11} {'batch':>7} {'tokens/s':>10} {'peak RSS MB':>12} {'vs TAPE':>8}")
    for r in results:
        ref = next((x for x in results if x["config"] == r["config"] and x["impl"] == "tape"), None)
        ratio = f"{r['tokens_per_s'] / ref['tokens_per_s']:.2f}x" if ref else "-"
        print(f"{r['config']:<30} {r['impl']:<6} {r['params']:>11,} {r['batch']:>7} {r['tokens_per_s']:>10.0f} "
              f"{r['peak_rss_mb']:>12.0f} {ratio:>8}")


if __name__ == "__main__":
    main()
