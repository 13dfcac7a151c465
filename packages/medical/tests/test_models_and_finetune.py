import numpy as np
import pytest
import torch
from fmzoo.core import InputSpecError, from_pretrained
from fmzoo.medical.data.hippocampus import label_budget_cases, list_cases, load_hippocampus, split_cases
from fmzoo.medical.models.swin import ENCODER_PREFIXES, SwinUNETRSegmenter, VoCo, VolumeFusionNet
from fmzoo.medical.tasks.segmentation import (
    dice_per_class,
    evaluate,
    few_label_run,
    make_segmenter,
    resample_image,
    resample_label,
    resample_logits,
)


def test_split_and_budgets(hippo_root):
    cases = list_cases()
    assert len(cases) == 260
    train, test = split_cases(cases)
    assert len(train) == 208 and len(test) == 52 and not set(train) & set(test)
    one = label_budget_cases(train, 1, seed=0)
    assert len(one) == 1 and one == label_budget_cases(train, 1, seed=0) and set(one) <= set(train)
    assert label_budget_cases(train, 5, 1) != label_budget_cases(train, 5, 2)
    assert label_budget_cases(train, "all", 0) == train


def test_dice_per_class():
    y = np.zeros((4, 4, 4), int)
    y[:2] = 1
    y[2:3] = 2
    p = y.copy()
    p[0] = 0
    d = dice_per_class(p, y)
    assert d[1] == pytest.approx(2 * 16 / (16 + 32)) and d[2] == 1.0
    assert dice_per_class(np.zeros_like(y), np.zeros_like(y)) == {1: 1.0, 2: 1.0}


def test_hub_roundtrip_fp16_storage(tmp_path):
    torch.manual_seed(0)
    m = VoCo(proj_hidden=32, proj_out=32)
    m.eval()
    m.half()
    m.save_pretrained(tmp_path / "ck")
    m.float()
    back = VoCo.from_pretrained(str(tmp_path / "ck"))
    assert isinstance(back, VoCo) and back.input_spec["roi_size"] == [32, 64, 32]
    for (k, a), (_, b) in zip(m.state_dict().items(), back.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
        if a.is_floating_point():
            assert b.dtype == torch.float32, k
    with pytest.raises(InputSpecError):
        back.features(torch.zeros(1, 1, 32, 32))


def test_transfer_to_swinunetr():
    torch.manual_seed(0)
    v = VoCo(proj_hidden=16, proj_out=16)
    net = v.to_swinunetr(3)
    sd = net.state_dict()
    for k, t in v.encoder_state_dict().items():
        assert torch.equal(sd[k], t), k
    f = VolumeFusionNet()
    net2 = f.to_swinunetr(3)
    for k, t in f.state_dict().items():
        if k.startswith("out."):
            assert net2.state_dict()[k].shape[0] == 3
        else:
            assert torch.equal(net2.state_dict()[k], t), k
    with pytest.raises(TypeError):
        make_segmenter(object())


@pytest.mark.parametrize("repo", ["fmzoo/voco-small", "fmzoo/volumefusion-small"])
def test_shipped_checkpoints(repo):
    from fmzoo.core import resolve_checkpoint

    path = resolve_checkpoint(repo)
    size = (path / "model.safetensors").stat().st_size
    assert size <= 10 * 1024 * 1024
    model = from_pretrained(repo)
    spec = model.input_spec
    assert spec["modality"] == "MR" and spec["axcodes"] == "RAS" and spec["spacing"] == [1.0, 1.0, 1.0]
    assert spec["intensity"]["kind"] == "percentile" and spec["roi_size"] == [32, 64, 32]
    card = (path / "README.md").read_text()
    assert "small-scale" in card.lower() or "SMALL-SCALE" in card
    # pretrained weights differ from a fresh initialisation
    fresh = type(model)(**model.init_args)
    w = "swinViT.patch_embed.proj.weight"
    assert not torch.equal(model.state_dict()[w], fresh.state_dict()[w])


@pytest.mark.parametrize("name", ["voco-small", "volumefusion-small"])
def test_shipped_checkpoint_ran_its_recipe_to_the_end(name):
    """(That the committed recipe is the run's recipe is checked for every package in tests/test_shipped_recipes.py.)"""
    import json

    from fmzoo.core import resolve_checkpoint

    path = resolve_checkpoint(f"fmzoo/{name}")
    prov = json.loads((path / "provenance.json").read_text())
    assert prov["recipe_name"] == name
    assert prov["metrics"]["steps"] == prov["recipe"]["max_steps"]  # the run finished its schedule
    assert prov["weights_dtype"] == prov["recipe"]["save_dtype"]
    assert prov["recipe_sha256"][:16] in (path / "README.md").read_text()


def test_sliding_window_predicts_whole_volumes(hippo_root):
    """(few_label_run, the table's cell, runs in test_downstream.py::test_table_smoke_run.)"""
    data = load_hippocampus()
    seg = SwinUNETRSegmenter()
    x, y = data["load"](data["test"][0])
    pred = seg.predict(torch.from_numpy(np.ascontiguousarray(x))[None, None])
    assert pred.shape[1:] == x.shape  # whole volume, any size, by sliding windows
    r = evaluate(seg.net, [x], [y])
    assert set(r) >= {"dice_class1", "dice_class2", "mean_dice"}


def test_resampling_keeps_image_and_label_aligned_and_round_trips(hippo_root):
    data = load_hippocampus()
    x, y = data["load"](data["train"][0])
    size = (96, 64, 96)  # VoCo's pretraining volume size
    xr, yr = resample_image(x, size), resample_label(y, size)
    assert xr.shape == size and yr.shape == size and xr.dtype == np.float32 and yr.dtype == np.int64
    assert set(np.unique(yr)) == set(np.unique(y))
    # the label's foreground sits where the image was resampled from: centroids agree to a fraction of a voxel
    for c in (1, 2):
        native = np.argwhere(y == c).mean(0)
        back = np.argwhere(yr == c).mean(0) * (np.array(y.shape) - 1) / (np.array(size) - 1)
        assert np.abs(native - back).max() < 0.5
    # one-hot "logits" resized up and back reproduce the label almost everywhere (Dice on the original grid)
    onehot = torch.from_numpy(np.stack([(yr == c) for c in range(3)]).astype(np.float32))[None]
    back = resample_logits(onehot, y.shape)[0].argmax(0).numpy()
    assert all(d > 0.9 for d in dice_per_class(back, y).values())


def test_few_label_run_at_the_pretraining_scale_scores_on_the_original_grid(hippo_root):
    data = load_hippocampus()
    res = few_label_run("scratch", 1, 0, data, data["test"][:1], steps=1, resample_to=(64, 64, 64))
    assert 0.0 <= res["mean_dice"] <= 1.0 and len(res["labelled_cases"]) == 1 and res["seconds_per_volume"] > 0


def test_encoder_prefixes_cover_voco_params():
    v = VoCo(proj_hidden=8, proj_out=8)
    names = [k for k in v.state_dict() if not k.startswith("proj_head.")]
    assert all(k.startswith(ENCODER_PREFIXES) for k in names)


def test_encoder_lr_scale_slows_only_the_encoder(hippo_root):
    """One AdamW step at encoder scale 0.1: the encoder moves a tenth as far as at scale 1 (Adam's first step is
    lr * sign-like, so the ratio is exact up to epsilon), every other parameter as far."""
    from fmzoo.medical.tasks.segmentation import finetune

    data = load_hippocampus()
    x, y = data["load"](data["train"][0])

    def moved(scale):
        torch.manual_seed(0)
        net = make_segmenter("scratch")
        before = {k: v.detach().clone() for k, v in net.state_dict().items()}
        finetune(net, [x], [y], steps=1, lr=1e-3, weight_decay=0.0, encoder_lr_scale=scale)
        after = net.state_dict()
        enc = sum(float((after[k] - before[k]).abs().sum()) for k in before if k.startswith("swinViT."))
        rest = sum(float((after[k] - before[k]).abs().sum()) for k in before
                   if not k.startswith("swinViT.") and after[k].is_floating_point())
        return enc, rest

    enc1, rest1 = moved(1.0)
    enc01, rest01 = moved(0.1)
    assert enc1 > 0 and rest1 > 0
    assert enc01 / enc1 == pytest.approx(0.1, rel=0.02)
    assert rest01 == pytest.approx(rest1, rel=1e-4)
