import numpy as np
import pytest
import torch
from fmzoo.core.evaluation import (
    fit_head,
    knn_probe,
    label_budget,
    linear_probe,
    mean_std,
    predict_head,
    regression_metrics,
)


def test_mean_std_uses_sample_std():
    assert mean_std([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0))
    assert mean_std([4.0]) == (4.0, 0.0)
    with pytest.raises(ValueError):
        mean_std([])


def test_label_budget_per_class_and_fraction():
    y = np.array([0] * 50 + [1] * 30 + [2] * 20)
    idx = label_budget(y, per_class=5, seed=1)
    assert len(idx) == 15 and all((y[idx] == c).sum() == 5 for c in range(3))
    assert not np.array_equal(idx, label_budget(y, per_class=5, seed=2))
    assert np.array_equal(idx, label_budget(y, per_class=5, seed=1))
    frac = label_budget(y, fraction=0.1)
    assert len(frac) == 10 and (y[frac] == 0).sum() == 5
    with pytest.raises(ValueError, match="fewer than"):
        label_budget(y, per_class=25)
    with pytest.raises(ValueError):
        label_budget(y)


def _blobs(n=400, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, 8)) + 3 * np.eye(8)[y]
    return x, y


def test_linear_and_knn_probes_separate_blobs_but_not_noise():
    x, y = _blobs()
    assert linear_probe(x[:300], y[:300], x[300:], y[300:])["accuracy"] > 0.9
    assert knn_probe(x[:300], y[:300], x[300:], y[300:], k=5)["accuracy"] > 0.9
    noise = np.random.default_rng(1).normal(size=x.shape)
    assert linear_probe(noise[:300], y[:300], noise[300:], y[300:])["accuracy"] < 0.6


def test_regression_probe_and_metrics():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5))
    y = x @ np.arange(5) + 0.01 * rng.normal(size=300)
    out = linear_probe(x[:200], y[:200], x[200:], y[200:], task="regression")
    assert out["r2"] > 0.99
    assert regression_metrics([1, 2, 3], [1, 2, 3])["rmse"] == 0


def test_fit_head_learns_and_early_stops():
    x, y = _blobs(600)
    head = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    head = fit_head(head, x[:400], y[:400], x[400:500], y[400:500], max_epochs=50, patience=3, lr=1e-2)
    acc = (predict_head(head, x[500:]).argmax(1) == y[500:]).mean()
    assert acc > 0.9


def test_fit_head_trains_a_network_on_several_inputs_with_its_own_lr_per_module():
    x, y = _blobs(600)
    codes = (y + np.arange(600)) % 2  # an integer input column: stays int64 (an embedding index)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Linear(8, 16)
            self.embed = torch.nn.Embedding(2, 16)
            self.out = torch.nn.Linear(16, 3)

        def forward(self, a, c):
            assert a.dtype == torch.float32 and c.dtype == torch.int64
            return self.out(torch.relu(self.body(a) + self.embed(c)))

    net = Net()
    frozen_by_lr = net.embed.weight.detach().clone()
    net = fit_head(net, (x[:400], codes[:400]), y[:400], (x[400:500], codes[400:500]), y[400:500], max_epochs=30,
                   lr=1e-2, module_lrs={net.embed: 0.0})
    assert torch.equal(net.embed.weight, frozen_by_lr)  # lr 0 for that module: untouched
    acc = (predict_head(net, (x[500:], codes[500:])).argmax(1) == y[500:]).mean()
    assert acc > 0.9
    with pytest.raises(ValueError, match="not parts of the trained network"):
        fit_head(Net(), (x[:10], codes[:10]), y[:10], (x[:10], codes[:10]), y[:10], max_epochs=1,
                 module_lrs={torch.nn.Linear(2, 2): 1e-3})
    with pytest.raises(ValueError, match="different numbers of rows"):
        fit_head(Net(), (x[:10], codes[:9]), y[:10], (x[:10], codes[:10]), y[:10], max_epochs=1)




def test_card_shows_seeds_of_old_and_new_provenance():
    from fmzoo.core.card import render_card

    config = {"architecture": "X", "init_args": {}, "input_spec": None}
    assert "- seeds: [3]" in render_card(config, {}, {"seed": 3})  # as the graph/medical/speech/RS checkpoints wrote it
    assert "- seeds: [0, 1]" in render_card(config, {}, {"seeds": [0, 1]})
    assert "seeds" not in render_card(config, {}, {"git_commit": "abc"})


def test_card_metadata_has_metric_ids_and_a_model_index(tmp_path):
    from fmzoo.core.card import render_card
    from huggingface_hub import ModelCard

    config = {"architecture": "X", "init_args": {}, "input_spec": None}
    card = {"title": "X on digits", "license": "mit", "base_model": "org/base", "pipeline_tag": "feature-extraction",
            "results": [{"metric": "pretraining time", "value": "3 s", "setting": "CPU"}],
            "eval_results": [{"dataset": "digits", "metric": "accuracy (linear probe)", "value": 0.91},
                             {"dataset": "digits", "metric": "pretraining time", "value": 3.0}]}
    (tmp_path / "README.md").write_text(render_card(config, card, {}))
    data = ModelCard.load(tmp_path / "README.md").data
    assert data.metrics == ["accuracy"]  # ids only, never prose
    assert data.base_model == "org/base" and data.pipeline_tag == "feature-extraction"
    (result,) = data.eval_results
    assert (result.metric_type, result.metric_value, result.dataset_type) == ("accuracy", 0.91, "digits")


def test_per_seed_seeds_each_call():
    import torch
    from fmzoo.core.reproduce import per_seed

    a = per_seed([3, 4, 3], lambda s: torch.rand(2))
    assert torch.equal(a[0], a[2]) and not torch.equal(a[0], a[1])


@pytest.mark.parametrize("where", ["train_y", "val_y", "train_x", "val_x"])
def test_fit_head_refuses_nan_or_infinite_inputs_and_targets(where):
    import numpy as np
    import torch
    from fmzoo.core.errors import InputSpecError
    from fmzoo.core.evaluation import fit_head

    rng = np.random.default_rng(0)
    data = {"train_x": rng.normal(size=(40, 4)).astype(np.float32), "train_y": rng.normal(size=40).astype(np.float32),
            "val_x": rng.normal(size=(20, 4)).astype(np.float32), "val_y": rng.normal(size=20).astype(np.float32)}
    data[where].flat[3] = np.inf if "y" in where else np.nan
    with pytest.raises(InputSpecError, match=f"{where}: expected finite numbers, got 1 NaN or infinite value"):
        fit_head(torch.nn.Linear(4, 1), data["train_x"], data["train_y"], data["val_x"], data["val_y"],
                 task="regression", max_epochs=1)
