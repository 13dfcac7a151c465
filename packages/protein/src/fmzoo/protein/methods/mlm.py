"""TAPE masked-language-model pretraining (Rao et al. 2019, sec. 4; ``tape/datasets.py``
``MaskedLanguageModelingDataset`` and ``tape/training.py``).

Objective, as TAPE: 15% of residues are chosen; of those 80% become ``<mask>``, 10% a random token,
10% stay; cross-entropy on the chosen positions only (targets -1 elsewhere = TAPE's ignore_index).
Optimiser, as TAPE's ``tape-train``: AdamW, linear warm-up then linear decay to 0
(``WarmupLinearSchedule``), gradient-norm clipping 1.0.
Two deliberate, documented differences from TAPE's code:
* ``<cls>``/``<sep>`` are never chosen (TAPE's loop means to skip them but its ``pass`` does not);
* random replacements are drawn from the 25 IUPAC residue tokens (TAPE draws from all 30 ids,
  special tokens included).
CPU scale (recipe ``tape-transformer-small``): sequences are batched by a token budget instead of
TAPE's 1024 sequences per batch, and the learning rate is raised to suit the few thousand steps.
"""

from __future__ import annotations

import inspect
import math
import random
from pathlib import Path

import numpy as np
import torch
from fmzoo.core import InputSpecError, RecipeError, sha256_file
from fmzoo.core.method import Method, PretrainData
from fmzoo.core.runtime import generator
from fmzoo.core.training import SSLTask, fit, global_rank, world_size
from torch.utils.data import DataLoader, Dataset, Sampler

from ..models import TapeResNet, TapeTransformer
from ..models.layers import release_buffers
from ..spec import CLS_ID, IUPAC_LETTERS, IUPAC_VOCAB, MASK_ID, PAD_ID, SEP_ID, TAPETokenizer

CITATION = ("Rao, Bhattacharya, Thomas, Duan, Chen, Canny, Abbeel, Song. Evaluating Protein Transfer Learning "
            "with TAPE. NeurIPS 2019. https://github.com/songlab-cal/tape")
RESIDUE_IDS = torch.tensor([IUPAC_VOCAB[a] for a in IUPAC_LETTERS])


def apply_bert_mask(input_ids: torch.Tensor, generator: torch.Generator | None = None, mask_prob: float = 0.15):
    """TAPE's BERT masking on a padded batch. Returns ``(masked_ids, targets)`` with targets -1 where unchosen."""
    special = (input_ids == PAD_ID) | (input_ids == CLS_ID) | (input_ids == SEP_ID)
    u = torch.rand(input_ids.shape, generator=generator)
    chosen = (u < mask_prob) & ~special
    targets = torch.where(chosen, input_ids, torch.full_like(input_ids, -1))
    r = u / mask_prob  # uniform in [0, 1) on chosen positions, as TAPE's prob /= 0.15
    masked = input_ids.clone()
    masked[chosen & (r < 0.8)] = MASK_ID
    rand_pos = chosen & (r >= 0.8) & (r < 0.9)
    n = int(rand_pos.sum())
    if n:
        masked[rand_pos] = RESIDUE_IDS[torch.randint(len(RESIDUE_IDS), (n,), generator=generator)]
    return masked, targets


def mlm_loss(model, input_ids, input_mask, targets):
    """Cross-entropy over the chosen positions (TAPE's ignore_index -1) and the masked-token accuracy. The MLM head
    runs on the chosen positions only: the loss ignores the others, so this is TAPE's value and gradient."""
    if hasattr(model, "embed") and hasattr(model, "mlm_logits"):
        h = model.embed(input_ids, input_mask)[0]
        sel = targets != -1
        logits, tgt = model.mlm_logits(h[sel]), targets[sel]
    else:
        logits = model(input_ids, input_mask)["logits"]
        logits, tgt = logits.reshape(-1, logits.size(-1)), targets.reshape(-1)
    loss = torch.nn.functional.cross_entropy(logits, tgt, ignore_index=-1)
    with torch.no_grad():
        keep = tgt != -1
        acc = (logits.argmax(-1)[keep] == tgt[keep]).float().mean() if keep.any() else torch.tensor(0.0)
    return loss, acc


class SequenceDataset(Dataset):
    """Encoded sequences, randomly cropped to ``max_length`` tokens (incl. ``<cls>``/``<sep>``) each time."""

    def __init__(self, sequences: list[str], max_length: int = 1024, seed: int = 0):
        tok = TAPETokenizer()
        self.sequences = sequences
        self.ids = [tok.residue_ids(s) for s in sequences]
        self.max_res = max_length - 2
        self.rng = random.Random(seed)

    def __len__(self):
        return len(self.ids)

    def length(self, i):
        return min(len(self.ids[i]), self.max_res) + 2

    def __getitem__(self, i):
        r = self.ids[i]
        if len(r) > self.max_res:
            start = self.rng.randrange(len(r) - self.max_res + 1)
            r = r[start: start + self.max_res]
        return np.concatenate([[CLS_ID], r, [SEP_ID]]).astype(np.int64)


class TokenBudgetSampler(Sampler):
    """Batches of similar length whose padded size stays under ``max_tokens``; shuffled each epoch.

    ``max_tokens`` is the budget of one optimizer step (the global batch). With ``num_replicas`` > 1 processes
    (DDP) every process builds the same global batches, each of at least ``num_replicas`` sequences (a short
    last batch joins the one before it), and yields its share ``batch[rank::num_replicas]``: every process takes
    one step per global batch, so ``len()`` is the number of optimizer steps per epoch whatever the process
    count. ``rank`` defaults to the torch.distributed rank at iteration time. Lightning must leave this sampler
    alone (``use_distributed_sampler=False``, as ``pretrain`` sets)."""

    def __init__(self, lengths: list[int], max_tokens: int, seed: int = 0, shuffle: bool = True,
                 num_replicas: int = 1, rank: int | None = None):
        self.lengths, self.max_tokens, self.seed, self.shuffle, self.epoch = lengths, max_tokens, seed, shuffle, 0
        self.num_replicas, self.rank = int(num_replicas), rank
        if len(lengths) < self.num_replicas:
            raise ValueError(f"{len(lengths)} sequences cannot be shared by {self.num_replicas} processes")
        self._batches = self._make(0)

    def _make(self, epoch):
        rng = np.random.default_rng(self.seed + epoch)
        noise = rng.uniform(0, 1, len(self.lengths)) if self.shuffle else np.zeros(len(self.lengths))
        order = np.lexsort((noise, np.asarray(self.lengths)))
        batches, cur, cur_max = [], [], 0
        for i in order:
            L = self.lengths[i]
            if len(cur) >= self.num_replicas and max(cur_max, L) * (len(cur) + 1) > self.max_tokens:
                batches.append(cur)
                cur, cur_max = [], 0
            cur.append(int(i))
            cur_max = max(cur_max, L)
        if cur:
            if len(cur) < self.num_replicas:  # too few to give every process a sequence
                batches[-1].extend(cur)
            else:
                batches.append(cur)
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def __iter__(self):
        self._batches = self._make(self.epoch)
        self.epoch += 1
        if self.num_replicas == 1:
            return iter(self._batches)
        rank = self.rank
        if rank is None:
            rank = global_rank()
        return iter([b[rank::self.num_replicas] for b in self._batches])

    def __len__(self):
        return len(self._batches)


class MaskCollator:
    """Pads a batch and applies BERT masking. In a multi-process run each rank offsets the mask generator's seed
    by its rank at its first batch (the rank is known only once the processes have started)."""

    def __init__(self, seed: int = 0, mask_prob: float = 0.15):
        self.seed, self.gen, self.rank = seed, generator(seed), None
        self.mask_prob = mask_prob

    def __call__(self, batch):
        if self.rank is None:
            self.rank = global_rank()
            self.gen = generator(self.seed + self.rank)  # the method's own mask stream, one per rank
        L = max(len(b) for b in batch)
        ids = torch.zeros(len(batch), L, dtype=torch.long)
        mask = torch.zeros(len(batch), L, dtype=torch.long)
        for i, b in enumerate(batch):
            ids[i, : len(b)] = torch.from_numpy(b)
            mask[i, : len(b)] = 1
        masked, targets = apply_bert_mask(ids, self.gen, self.mask_prob)
        return {"input_ids": masked, "input_mask": mask, "targets": targets}


def make_loader(sequences, max_length=1024, max_tokens=8192, seed=0, shuffle=True, num_replicas=1):
    """``max_tokens``: the token budget of one optimizer step, shared by the run's ``num_replicas`` processes."""
    ds = SequenceDataset(sequences, max_length, seed)
    sampler = TokenBudgetSampler([ds.length(i) for i in range(len(ds))], max_tokens, seed, shuffle, num_replicas)
    return DataLoader(ds, batch_sampler=sampler, collate_fn=MaskCollator(seed))


class MLMTask(SSLTask):
    """TAPE's masked-LM objective on the core's SSLTask, with TAPE's warm-up + linear-decay schedule."""

    def ssl_loss(self, batch):
        loss, acc = mlm_loss(self.model, batch["input_ids"], batch["input_mask"], batch["targets"])
        return {"loss": loss, "masked_acc": acc, "perplexity": torch.exp(loss.detach())}

    def configure_optimizers(self):
        hp = self.hparams
        opt = torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=hp.lr,
                                weight_decay=hp.weight_decay, betas=tuple(hp.betas))
        total = hp.max_steps or int(self.trainer.estimated_stepping_batches)
        warm = hp.warmup_steps

        def lam(step):  # TAPE's WarmupLinearSchedule
            if step < warm:
                return float(step) / max(1.0, warm)
            return max(0.0, float(total - step) / max(1.0, total - warm))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


FAMILIES = {"transformer": TapeTransformer, "resnet": TapeResNet}
# ``model`` of each family: its network's parameters
FAMILY_MODEL_KEYS = {name: tuple(inspect.signature(cls).parameters) for name, cls in FAMILIES.items()}


def build_model(recipe: dict):
    family = recipe.get("family", "transformer")
    if family not in FAMILIES:
        raise ValueError(f"recipe family must be one of {sorted(FAMILIES)}, got {family!r}")
    return FAMILIES[family](**recipe.get("model", {}))


@torch.no_grad()
def evaluate_mlm(model, sequences, max_length=1024, max_tokens=8192, seed=1234):
    model.eval()
    loader = make_loader(sequences, max_length, max_tokens, seed, shuffle=False)
    tot, n, correct = 0.0, 0, 0
    for b in loader:
        logits = model(b["input_ids"], b["input_mask"])["logits"]
        sel = b["targets"] != -1
        tot += float(torch.nn.functional.cross_entropy(logits[sel], b["targets"][sel], reduction="sum"))
        correct += int((logits[sel].argmax(-1) == b["targets"][sel]).sum())
        n += int(sel.sum())
    return {"mlm_loss": tot / n, "perplexity": math.exp(tot / n), "masked_accuracy": correct / n, "masked_tokens": n}


class TapeMLM(Method):
    """MLM pretraining on the FLIP secondary-structure ``sequences.fasta`` (train proteins only), or on the user's
    own FASTA file (``fmzoo pretrain RECIPE --data PATH``, read with Biopython as ``data/fasta.py``).

    The batch is a token budget, ``data.max_tokens`` (the global budget of one optimizer step), not a number of
    sequences: ``global_batch()`` is that budget, the per-process share is handed out by ``TokenBudgetSampler``
    (each process takes ``batch[rank::world]`` of every global batch) and the steps of an epoch are the sampler's
    global batches, never ``len(dataset) / global_batch``. Recipes keep TAPE's layout: ``family``, ``optim`` and
    ``trainer`` (``max_epochs``, ``max_steps`` and any Lightning Trainer argument)."""

    recipe_sections = ("family", "optim", "trainer")
    # the keys the hooks read. ``model``: the parameters of either family's network (``validate`` then checks them
    # against the recipe's family); ``trainer``: the length plus the Trainer values ``fit`` passes on (the command
    # line's devices/strategy/accelerator/progress override a recipe's; clipping is ``optim.max_grad_norm``);
    # ``train`` is other methods' layout and is refused (TAPE's recipes say ``trainer``)
    recipe_keys = {
        "model": tuple(dict.fromkeys(k for keys in FAMILY_MODEL_KEYS.values() for k in keys)),
        "data": ("max_tokens", "max_length", "val_sequences", "exclude_overlap_with", "overlap_kmer",
                 "max_train_sequences"),
        "optim": ("lr", "weight_decay", "warmup_steps", "max_grad_norm"),
        "trainer": ("max_epochs", "max_steps", "precision", "gradient_clip_algorithm", "log_every_n_steps"),
        "train": (),
        "evaluate": (),
    }
    citation = CITATION
    default_epochs = 1

    @classmethod
    def validate(cls, recipe: dict) -> None:
        super().validate(recipe)
        family = recipe.get("family", "transformer")
        if family not in FAMILIES:
            raise RecipeError(f"recipe {recipe.get('name')!r}: 'family' must be one of {sorted(FAMILIES)}, "
                              f"got {family!r}")
        unknown = sorted(str(k) for k in set(recipe.get("model") or {}) - set(FAMILY_MODEL_KEYS[family]))
        if unknown:
            raise RecipeError(f"recipe {recipe.get('name')!r} (method {recipe.get('method')!r}): unknown key(s) in "
                              f"'model' for family {family!r}: {', '.join(f'model.{k}' for k in unknown)}; a {family} "
                              f"model takes {', '.join(FAMILY_MODEL_KEYS[family])}")

    # -- the recipe -----------------------------------------------------------------------------------
    @property
    def data_cfg(self) -> dict:
        return dict(self.recipe.get("data") or {})

    @property
    def trainer_cfg(self) -> dict:
        return dict(self.recipe.get("trainer") or {})

    def global_batch(self) -> int:
        """The global token budget of one optimizer step (``data.max_tokens``)."""
        return int(self.data_cfg.get("max_tokens", 8192))

    def max_epochs(self) -> int:
        return int(self.trainer_cfg.get("max_epochs", self.default_epochs))

    # -- hooks ----------------------------------------------------------------------------------------
    def data(self) -> PretrainData:
        from fmzoo.core import data_root

        from ..data.fasta import load_pretraining_sequences, read_fasta

        data_cfg = self.data_cfg
        if self.data_path is not None:
            path = Path(self.data_path)
            seqs = [s for _, _, s in read_fasta(path, unique_ids=False)]  # unlabelled: ids pair nothing
            files = [str(path)]
            sha = {path.name: sha256_file(path)}
        else:
            seqs = load_pretraining_sequences()
            fasta = data_root() / "proteins" / "flip_secondary_structure"
            files = [str(fasta / "sequences.fasta"), str(fasta / "sampled.fasta")]
            sha = {"sequences.fasta": sha256_file(fasta / "sequences.fasta")}
        excluded = list(data_cfg.get("exclude_overlap_with", []))
        n_dropped = 0
        if excluded:  # drop pretraining proteins that share a k-mer with an evaluation set's sequences
            from ..data.overlap import drop_overlapping, evaluation_sequences

            seqs, n_dropped = drop_overlapping(seqs, evaluation_sequences(excluded),
                                               int(data_cfg.get("overlap_kmer", 20)))
        rng = random.Random(self.seed)
        order = list(range(len(seqs)))
        rng.shuffle(order)
        n_val = int(data_cfg.get("val_sequences", 300))
        if self.data_path is not None and len(seqs) - n_val < 1:
            raise InputSpecError(f"{str(self.data_path)!r} has {len(seqs)} sequences after the overlap filter; the "
                                 f"recipe holds out data.val_sequences={n_val} for perplexity and needs at least one "
                                 f"more to train on")
        val = [seqs[i] for i in order[:n_val]]
        train = [seqs[i] for i in order[n_val:]]
        limit = data_cfg.get("max_train_sequences")
        if limit:
            train = train[: int(limit)]
        max_length = int(data_cfg.get("max_length", 1024))
        if self.data_path is not None:
            description = (f"{len(train)} protein sequences of {Path(self.data_path).name} (the user's own FASTA "
                           f"data; {n_val} more held out for perplexity, {n_dropped} dropped for overlap with "
                           f"{', '.join(excluded) or 'no evaluation set'}), crops of {max_length} tokens")
        else:
            description = (f"{len(train)} FLIP secondary_structure SET=train proteins ({n_val} more held out for "
                           f"perplexity), crops of {max_length} tokens")
        return PretrainData(dataset=train, files=files, description=description,
                            extra={"val": val, "n_val": n_val, "excluded": excluded, "n_dropped": n_dropped,
                                   "max_length": max_length, "sha": sha})

    def model(self, data: PretrainData):
        return build_model(self.recipe)

    def task(self, model, data: PretrainData, steps_per_epoch: int, max_epochs: int):
        """The steps of the schedule are counted by ``fit`` from the token-budget loader (``steps_per_epoch``,
        a count of sequences / tokens, does not apply)."""
        return self._task(model, None)

    def _task(self, model, total):
        optim = dict(self.recipe.get("optim", {}))
        return MLMTask(model, lr=float(optim.get("lr", 1e-4)), weight_decay=float(optim.get("weight_decay", 0.0)),
                       warmup_steps=int(optim.get("warmup_steps", 0)), max_steps=total)

    def loader(self, data: PretrainData, batch_size: int):
        """``batch_size`` is this process's share of the token budget: the run has ``max_tokens // batch_size``
        processes, and the sampler hands each its share of every global batch."""
        return make_loader(data.dataset, data.extra["max_length"], self.global_batch(), self.seed,
                           num_replicas=max(1, self.global_batch() // batch_size))

    def fit(self, task, loader, max_epochs: int, trainer_kwargs: dict):
        # max_tokens is the global budget: each process loads its share of every global batch (our sampler does the
        # split, Lightning must not swap in a DistributedSampler), so len(loader) counts optimizer steps
        tr = self.trainer_cfg
        tr.pop("max_epochs", None)
        max_steps = tr.pop("max_steps", None)
        optim = dict(self.recipe.get("optim", {}))
        kw = {"gradient_clip_val": float(optim.get("max_grad_norm", 1.0)), "log_every_n_steps": 20,
              "use_distributed_sampler": False, **tr, **trainer_kwargs}
        world = world_size(kw)
        if loader.batch_sampler.num_replicas != world:  # the recipe's own trainer section sets the processes
            loader = make_loader(loader.dataset.sequences, loader.dataset.max_res + 2, self.global_batch(),
                                 self.seed, num_replicas=world)
        total = int(max_steps) if max_steps else max_epochs * len(loader)
        task = self._task(task.model, total)
        if max_steps:
            kw["max_steps"] = int(max_steps)
        try:
            self._trainer = fit(task, loader, self.run_dir, max_epochs=max_epochs, **kw)
        finally:
            release_buffers()  # the attention kernels' reused buffers (models/layers.py)
        return self._trainer

    def evaluate(self, model, data: PretrainData) -> dict:
        return evaluate_mlm(model, data.extra["val"], data.extra["max_length"], self.global_batch())

    def card(self, data: PretrainData, metrics: dict) -> dict:
        card = dict(self.recipe.get("card", {}))
        card.setdefault("title", f"TAPE {self.recipe.get('family', 'transformer')} ({self.recipe.get('name', 'run')})")
        card.setdefault("citation", CITATION)
        if self.data_path is not None:  # the card says what was seen
            card["training_data"] = data.description
        n_val = data.extra["n_val"]
        source = "FLIP train proteins" if self.data_path is None else f"proteins of {Path(self.data_path).name}"
        card["results"] = [
            {"metric": "held-out MLM perplexity", "value": f"{metrics['perplexity']:.3f}",
             "setting": f"{n_val} held-out {source}, 15% masking, {metrics['masked_tokens']} masked tokens"},
            {"metric": "held-out masked-token accuracy", "value": f"{metrics['masked_accuracy']:.4f}",
             "setting": "same"},
        ] + list(card.get("results", []))
        return card

    def provenance(self, data: PretrainData) -> dict:
        max_length = data.extra["max_length"]
        return {
            "data_sha256": data.extra["sha"],
            "steps": int(self._trainer.global_step),
            "train_sequences": len(data.dataset),
            "excluded_overlap_with": data.extra["excluded"],
            "excluded_sequences": data.extra["n_dropped"],
            "train_tokens_per_epoch": int(sum(min(len(s), max_length - 2) + 2 for s in data.dataset)),
        }
