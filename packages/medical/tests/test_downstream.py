"""`fmzoo evaluate` / `fmzoo finetune` for the medical architectures (the core's loop, this package's hooks), on
real MSD Hippocampus volumes."""

import json
import math
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from fmzoo.core import InputSpecError, from_pretrained
from fmzoo.core.cli import main
from fmzoo.core.downstream import Split, Task, hooks_for, train_network
from fmzoo.medical.data.hippocampus import hippocampus_root, list_cases, load_case
from fmzoo.medical.models.swin import ENCODER_PREFIXES, SwinUNETRSegmenter, VoCo
from fmzoo.medical.plugin import plugin
from fmzoo.medical.tasks.downstream import SegmentationHooks, SegmentationNetwork, find_pairs


def test_every_shipped_checkpoint_resolves_to_hooks():
    ids = sorted(p.name for p in plugin().checkpoints_dir.iterdir() if (p / "config.json").is_file())
    assert ids == ["voco-small", "volumefusion-small"]
    for name in ids:
        arch = json.loads((plugin().checkpoints_dir / name / "config.json").read_text())["architecture"]
        hooks = hooks_for(arch)
        assert isinstance(hooks, SegmentationHooks) and hooks.datasets[0] == "msd_hippocampus_quick"
    assert isinstance(hooks_for("SwinUNETRSegmenter"), SegmentationHooks)


def test_default_task_is_the_hippocampus_split_preprocessed_as_pretraining(hippo_root, monkeypatch):
    """The real loading path on the first 20 cases (the 260-case split itself: test_split_and_budgets)."""
    from fmzoo.medical.data import hippocampus

    first = list_cases()[:20]
    monkeypatch.setattr(hippocampus, "list_cases", lambda root=None: first)
    model = VoCo(proj_hidden=8, proj_out=8)  # only its input spec (the shipped checkpoints' MR spec) is read
    hooks = hooks_for("VoCo")
    quick = hooks.load(model, None, None)
    assert (quick.name, quick.kind, quick.metric, quick.n_outputs) == ("msd_hippocampus_quick", "segmentation", "dice", 3)
    assert len(quick.train) == 16 and len(quick.test) == 1  # test: every 5th case; quick: every 4th of those
    full = hooks.load(model, "msd_hippocampus", None)
    assert len(full.train) == 16 and len(full.test) == 4
    x, y = load_case(first[5], spec=model.input_spec)  # the second test case
    assert np.array_equal(full.test.items[1], x) and np.array_equal(full.test.targets[1], y)
    assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0 and set(np.unique(y)) == {0, 1, 2}
    assert hooks.canvas == tuple(max(s) for s in zip(*(v.shape for v in full.train.items + full.test.items), (32, 64, 32),
                                                    strict=True))


def _seg_task(n_train=2, n_test=1, n_outputs=3) -> Task:
    cases = list_cases()
    train = [load_case(c) for c in cases[1: 1 + n_train]]
    test = [load_case(c) for c in cases[:n_test]]
    return Task("hippo", "segmentation", Split([x for x, _ in train], [y for _, y in train]),
                Split([x for x, _ in test], [y for _, y in test]), n_outputs=n_outputs, metric="dice",
                class_names=["background", "anterior", "posterior"])


def test_score_is_foreground_dice_and_background_baseline_scores_zero(hippo_root):
    task = _seg_task(n_test=3)
    hooks = SegmentationHooks()
    hooks.canvas = (48, 64, 48)
    # logits that are the true labels, on the canvas: Dice 1 for every class
    perfect = torch.zeros(3, 3, 48, 64, 48)
    for i, y in enumerate(task.test.targets):
        sx, sy, sz = y.shape
        perfect[i, :, :sx, :sy, :sz] = torch.nn.functional.one_hot(torch.tensor(y), 3).movedim(-1, 0).float()
    assert hooks.score(task, perfect, task.test.targets) == {"dice_anterior": 1.0, "dice_posterior": 1.0, "dice": 1.0}
    # every class present in every volume: background everywhere scores 0
    name, base = hooks.baseline(task, task.train)
    assert name == "all background" and base["dice"] == 0.0
    # anterior predicted as posterior: anterior 0, posterior Dice 2|P|/(|P|+|A|+|P|)
    swapped = perfect.clone()
    swapped[:, 2] += swapped[:, 1]
    swapped[:, 1] = 0
    s = hooks.score(task, swapped, task.test.targets)
    assert s["dice_anterior"] == 0.0 and 0.0 < s["dice_posterior"] < 1.0


def test_training_crops_and_flips_line_up_with_the_labels(hippo_root):
    """A 'network' that outputs the input's class: the loss on the label crops is near 0 only if each label crop is
    cut where its image crop was, and a flipped crop's logits are flipped back."""
    task = _seg_task(n_train=2, n_outputs=2)
    labels = [(y > 0).astype(np.int64) for y in task.train.targets]

    class Threshold(torch.nn.Module):
        def forward(self, x):
            return torch.cat([(0.5 - x) * 40, (x - 0.5) * 40], dim=1)

    hooks = SegmentationHooks()
    hooks.canvas = None
    torch.manual_seed(0)
    net = SegmentationNetwork(Threshold(), 2, (32, 64, 32), freeze=False).train()
    batch = hooks.collate(None, [y.astype(np.float32) for y in labels])
    assert batch.x.shape[2:] == tuple(max(y.shape[a] for y in labels) for a in range(3))  # (smaller than the ROI in y)
    targets = hooks.collate_targets(task, labels)
    losses = []
    for _ in range(8):  # several crops and flips
        out = net(batch)
        losses.append(float(hooks.loss(task, out, targets)))
    assert max(losses) < 0.01
    # the same crops without flipping the logits back: the loss is far from 0 (the alignment above is not trivial)
    net.rng = np.random.default_rng(1)
    out = net(batch)
    bad = out.logits.flip(2)
    assert float(hooks.loss(task, type(out)(bad, out.starts), targets)) > 0.1


def test_frozen_encoder_stays_fixed_and_finetune_moves_it(hippo_root):
    model = from_pretrained("fmzoo/voco-small")
    hooks = hooks_for("VoCo")
    task = _seg_task(n_train=1)  # one volume: a batch of one crop
    hooks.canvas = hooks._canvas(task.train.items + task.test.items, model.input_spec)
    for freeze in (True, False):
        torch.manual_seed(0)
        net = hooks.network(model, task, freeze=freeze)
        before = {k: v.detach().clone() for k, v in net.net.state_dict().items()}
        train_network(hooks, net, model, task, task.train, 0, 1, 1e-3, 2, 1e-5)
        after = net.net.state_dict()
        enc_moved = any(not torch.equal(before[k], after[k]) for k in before if k.startswith(ENCODER_PREFIXES))
        dec_moved = any(not torch.equal(before[k], after[k]) for k in before if k.startswith(("decoder", "out.")))
        assert dec_moved and enc_moved == (not freeze), freeze
    # pooled encoder features of whole volumes, any size
    feats = hooks.features(model, hooks.collate(model, task.test.items))
    assert feats.shape == (1, 24 * 12) and torch.isfinite(feats).all()


def _write_msd_folder(root, n=5):
    """n real hippocampus cases in the Decathlon layout (imagesTr/, labelsTr/, a macOS '._' file to skip)."""
    base = hippocampus_root()
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for c in list_cases()[:n]:
        shutil.copy(base / "images" / f"{c}.nii.gz", root / "imagesTr" / f"{c}.nii.gz")
        shutil.copy(base / "labels" / f"{c}.nii.gz", root / "labelsTr" / f"{c}.nii.gz")
    (root / "imagesTr" / "._hippocampus_001.nii.gz").write_bytes(b"\0" * 10)
    return root


def _write_pairs_folder(root, n=5):
    """n real hippocampus cases re-written by nibabel as <case>_image.nii.gz / <case>_label.nii.gz."""
    base = hippocampus_root()
    root.mkdir(parents=True)
    for c in list_cases()[:n]:
        for part, folder in (("image", "images"), ("label", "labels")):
            img = nib.load(str(base / folder / f"{c}.nii.gz"))
            nib.save(nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header), str(root / f"{c}_{part}.nii.gz"))
    return root


def _check_result(path, mode, n_train, n_test, protocol, n_labelled):
    res = json.loads(path.read_text())
    assert res["mode"] == mode and res["kind"] == "segmentation" and res["metric"] == "dice"
    assert (res["train_examples"], res["test_examples"]) == (n_train, n_test)
    assert res["baseline"]["name"] == "all background"
    for row in res["rows"]:
        assert row["protocol"].startswith(protocol) and row["n_labelled"] == [n_labelled]
        assert sorted(row["metrics"]) == ["dice", "dice_class1", "dice_class2"]  # --data: classes by label value
        for key in row["metrics"]:
            v = row["metrics"][key]["values"][0]
            assert math.isfinite(v) and 0.0 <= v <= 1.0
        assert all(math.isfinite(v) for v in row["final_train_loss"])
    return res


def test_cli_evaluate_voco_on_a_decathlon_folder(hippo_root, tmp_path, capsys):
    data = _write_msd_folder(tmp_path / "Task04_Hippocampus")
    assert main(["evaluate", "fmzoo/voco-small", "--data", str(data), "--n-labelled", "2", "--epochs", "1",
                 "--no-progress", "--out", str(tmp_path / "out")]) == 0
    assert "frozen encoder, head trained (1 epochs)" in capsys.readouterr().out
    res = _check_result(tmp_path / "out" / "evaluate.json", "evaluate", 4, 1, "frozen encoder", 2)
    assert res["architecture"] == "VoCo" and [r["init"] for r in res["rows"]] == ["pretrained"]


def test_cli_finetune_volumefusion_on_image_label_pairs(hippo_root, tmp_path):
    data = _write_pairs_folder(tmp_path / "pairs")
    assert sorted(find_pairs(data)) == list_cases()[:5]
    assert main(["finetune", "fmzoo/volumefusion-small", "--data", str(data), "--n-labelled", "2", "--epochs", "1",
                 "--no-progress", "--out", str(tmp_path / "out")]) == 0
    res = _check_result(tmp_path / "out" / "finetune.json", "finetune", 4, 1, "fine-tuned end to end", 2)
    assert res["architecture"] == "VolumeFusionNet"


def test_cli_evaluate_a_segmenter_checkpoint(hippo_root, tmp_path):
    torch.manual_seed(0)
    SwinUNETRSegmenter().save_pretrained(tmp_path / "seg")
    data = _write_msd_folder(tmp_path / "msd", n=3)
    assert main(["evaluate", str(tmp_path / "seg"), "--data", str(data), "--fraction", "1.0", "--epochs", "1",
                 "--no-progress", "--out", str(tmp_path / "out")]) == 0
    res = _check_result(tmp_path / "out" / "evaluate.json", "evaluate", 2, 1, "frozen encoder", 2)
    assert res["architecture"] == "SwinUNETRSegmenter"


def test_bad_data_folders_are_clear_errors(hippo_root, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputSpecError, match="no imagesTr/ \\+ labelsTr/"):
        find_pairs(empty)
    (empty / "a_image.nii.gz").write_bytes(b"")
    with pytest.raises(InputSpecError, match="a_image has no a_label.nii.gz"):
        find_pairs(empty)
    one = _write_msd_folder(tmp_path / "one", n=1)
    assert main(["evaluate", "fmzoo/voco-small", "--data", str(one), "--no-progress"]) == 2
    assert "need at least 2" in capsys.readouterr().err
    unlabelled = _write_msd_folder(tmp_path / "unl", n=2)
    (unlabelled / "labelsTr" / f"{list_cases()[0]}.nii.gz").unlink()
    with pytest.raises(InputSpecError, match="without a label of the same name"):
        find_pairs(unlabelled)


def test_table_smoke_run(hippo_root, tmp_path):
    from fmzoo.core.reproduce import reproduce

    result = reproduce("medical-hippocampus", smoke=True, out_dir=tmp_path, echo=lambda *a: None)
    assert result["setting"] == "smoke"
    saved = json.loads((tmp_path / "medical-hippocampus.json").read_text())
    rows = saved["rows"]
    assert [(r["model"], r["init"]) for r in rows] == [("SwinUNETR @1", "scratch"), ("VoCo @1", "pretrained"),
                                                       ("VolumeFusion @1", "pretrained")]
    for r in rows:
        assert r["metric"] == "mean Dice (anterior, posterior)" and r["seeds"] == [0] and r["n_test_volumes"] == 1
        assert 0.0 <= r["ours"] <= 1.0 and len(r["labelled_cases"][0]) == 1
    assert "beats_scratch" in rows[1] and rows[0]["note"].startswith("smoke: 1 fine-tuning steps")
