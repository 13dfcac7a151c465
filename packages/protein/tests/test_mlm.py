import numpy as np
import torch
from fmzoo.protein import TAPETokenizer, TapeTransformer
from fmzoo.protein.data.fasta import load_pretraining_sequences
from fmzoo.protein.methods.mlm import TokenBudgetSampler, apply_bert_mask, make_loader, mlm_loss
from fmzoo.protein.spec import CLS_ID, MASK_ID, PAD_ID, SEP_ID


def test_bert_masking_statistics():
    seqs = load_pretraining_sequences()[:200]
    ids, mask = TAPETokenizer(unknown="X").batch_encode(seqs)
    masked, targets = apply_bert_mask(ids, torch.Generator().manual_seed(0))
    chosen = targets != -1
    residues = (ids > 4)
    assert not chosen[~residues].any()  # never <pad>/<cls>/<sep>
    assert abs(chosen.sum().item() / residues.sum().item() - 0.15) < 0.01
    assert torch.equal(targets[chosen], ids[chosen])
    frac_mask = (masked[chosen] == MASK_ID).float().mean().item()
    frac_same = (masked[chosen] == ids[chosen]).float().mean().item()
    assert abs(frac_mask - 0.8) < 0.02 and 0.08 < frac_same < 0.13  # 10% kept + random hits of the same token
    assert torch.equal(masked[~chosen], ids[~chosen])
    assert (masked[chosen] != PAD_ID).all() and (masked[chosen] != CLS_ID).all() and (masked[chosen] != SEP_ID).all()


def test_token_budget_sampler_covers_everything_once():
    lengths = list(np.random.default_rng(0).integers(10, 300, 500))
    s = TokenBudgetSampler(lengths, 2048, seed=0)
    batches = list(iter(s))
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(500))
    assert all(max(lengths[i] for i in b) * len(b) <= 2048 for b in batches)


def test_mlm_training_reduces_loss_on_real_sequences():
    torch.manual_seed(0)
    seqs = load_pretraining_sequences()[:24]
    model = TapeTransformer(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                            max_position_embeddings=256, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    loader = make_loader(seqs, max_length=128, max_tokens=2048, seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = last = None
    for _epoch in range(6):
        for b in loader:
            loss, _ = mlm_loss(model, b["input_ids"], b["input_mask"], b["targets"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            first = first if first is not None else loss.item()
            last = loss.item()
    assert first > 3.0  # ~ln(30) at init
    assert last < first - 0.3
