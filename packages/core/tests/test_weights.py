"""Official-weight import in the core: detection, safe unpickling, the convert-once cache, and hub ids resolved
through a Hugging Face cache laid out offline (no mocks of fmzoo's own code)."""

import json
import os

import pytest
import torch
from fmzoo.core import CheckpointError, from_pretrained


def _release(folder, hidden=16, seed=0):
    import sys

    DigitsMLP = sys.modules["fmzoo_fake_domain"].DigitsMLP
    torch.manual_seed(seed)
    ref = DigitsMLP(hidden=hidden)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "digits-mlp", "hidden": hidden}))
    torch.save({f"encoder.{k}": v for k, v in ref.state_dict().items()}, folder / "pytorch_model.bin")
    return ref


def test_release_folder_loads_by_path_and_matches(fake_plugin, tmp_hub, tmp_path):
    ref = _release(tmp_path / "release")
    model = from_pretrained(tmp_path / "release")
    x = torch.rand(5, 64)
    assert torch.allclose(model(x), ref(x), atol=1e-6)
    assert model.input_spec["scale"] == "pixels / 16"
    imported = list((tmp_hub / "imported" / "digits-release").iterdir())
    assert len(imported) == 1
    prov = json.loads((imported[0] / "provenance.json").read_text())
    assert {f["name"] for f in prov["imported_from"]["files"]} == {"config.json", "pytorch_model.bin"}


def test_converted_once_then_read_from_the_cache(fake_plugin, tmp_hub, tmp_path):
    _release(tmp_path / "release")
    from_pretrained(tmp_path / "release")
    (cached,) = (tmp_hub / "imported" / "digits-release").iterdir()
    stamp = (cached / "model.safetensors").stat().st_mtime_ns
    from_pretrained(tmp_path / "release")
    assert (cached / "model.safetensors").stat().st_mtime_ns == stamp


def test_pickle_with_code_is_refused_and_never_run(fake_plugin, tmp_hub, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    _release(tmp_path / "release")
    torch.save({"encoder.net.0.weight": Evil()}, tmp_path / "release" / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="does not unpickle"):
        from_pretrained(tmp_path / "release")
    assert not marker.exists()


def test_unknown_layout_is_a_clear_error(fake_plugin, tmp_hub, tmp_path):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(CheckpointError, match="digits-release: a folder with config.json"):
        from_pretrained(tmp_path / "other")


def _hf_cache(root, repo, files_by_rev):
    """The Hugging Face cache layout: blobs, snapshots/<commit>/<file>, refs/<revision> -> commit."""
    base = root / f"models--{repo.replace('/', '--')}"
    for rev, (commit, folder) in files_by_rev.items():
        snap = base / "snapshots" / commit
        snap.mkdir(parents=True)
        for f in folder.iterdir():
            (snap / f.name).write_bytes(f.read_bytes())
        ref = base / "refs" / rev
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)


def test_hub_id_from_the_hf_cache_offline_with_branches_and_pr_refs(fake_plugin, tmp_hub, tmp_path, monkeypatch):
    main = _release(tmp_path / "main", seed=0)
    pr = _release(tmp_path / "pr", seed=1)
    _hf_cache(tmp_path / "hf", "fake-org/digits-mlp", {"main": ("a" * 40, tmp_path / "main"),
                                                       "refs/pr/2": ("b" * 40, tmp_path / "pr")})
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    x = torch.rand(3, 64)
    assert torch.allclose(from_pretrained("fake-org/digits-mlp")(x), main(x), atol=1e-6)
    assert torch.allclose(from_pretrained("fake-org/digits-mlp", revision="refs/pr/2")(x), pr(x), atol=1e-6)
    with pytest.raises(CheckpointError, match="Hugging Face cache \\(offline\\) could not provide"):
        from_pretrained("fake-org/digits-mlp", revision="v9")


def test_cli_import_to_a_directory_and_list_shows_the_catalogue(fake_plugin, tmp_hub, tmp_path, capsys):
    from fmzoo.core.cli import main

    ref = _release(tmp_path / "release")
    assert main(["import", str(tmp_path / "release"), "--id", "fake-org/digits-mlp", "--out", str(tmp_path / "ck")]) == 0
    card = (tmp_path / "ck" / "README.md").read_text()
    assert "base_model: fake-org/digits-mlp" in card and "license: mit" in card
    x = torch.rand(2, 64)
    assert torch.allclose(from_pretrained(tmp_path / "ck")(x), ref(x), atol=1e-6)
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "fake-org/digits-mlp" in out and "digits-release" in out


def test_truncated_legacy_pickle_is_a_checkpoint_error(tmp_path):
    import pickle

    from fmzoo.core.weights import safe_torch_load

    path = tmp_path / "junk.pt"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=2)[:7])  # a legacy (non-zip) file cut short
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        safe_torch_load(path)


class _Terminal:
    """A stand-in for stderr on a terminal (tqdm draws only there)."""

    def __init__(self):
        import io

        self.buf = io.StringIO()

    def isatty(self):
        return True

    def write(self, text):
        return self.buf.write(text)

    def flush(self):
        pass


def test_cli_import_shows_a_step_bar_on_a_terminal_and_none_with_no_progress(fake_plugin, tmp_hub, tmp_path,
                                                                             monkeypatch):
    from fmzoo.core.cli import main

    _release(tmp_path / "release")
    term = _Terminal()
    monkeypatch.setattr("sys.stderr", term)
    assert main(["import", str(tmp_path / "release"), "--out", str(tmp_path / "a")]) == 0
    drawn = term.buf.getvalue()
    assert "import (digits-release)" in drawn and "4/4" in drawn
    for step in ("hash the release", "read (weights_only) + convert", "write", "check"):
        assert step in drawn
    term.buf.seek(0)
    term.buf.truncate()
    assert main(["import", str(tmp_path / "release"), "--out", str(tmp_path / "b"), "--no-progress"]) == 0
    assert "import (digits-release)" not in term.buf.getvalue() and "importing" in term.buf.getvalue()


def test_import_refuses_weights_that_differ_from_what_config_records(fake_plugin, tmp_hub, tmp_path, monkeypatch):
    """The check step: a write that went wrong is an error and leaves no checkpoint behind."""
    import fmzoo.core.hub as hub_mod
    from fmzoo.core.weights import import_weights

    _release(tmp_path / "release")
    real = hub_mod.HubMixin.save_pretrained

    def torn_write(self, directory, **kw):
        out = real(self, directory, **kw)
        with open(out / "model.safetensors", "r+b") as f:
            f.seek(-4, 2)
            f.write(b"\0\1\2\3")
        return out

    monkeypatch.setattr(hub_mod.HubMixin, "save_pretrained", torn_write)
    with pytest.raises(CheckpointError, match="do not match the sha256 config.json records"):
        import_weights(tmp_path / "release", out=tmp_path / "ck")
    assert not (tmp_path / "ck").exists() and [p.name for p in tmp_path.iterdir()] == ["release"]


def test_list_says_which_methods_released_no_weights(fake_plugin, tmp_hub, monkeypatch, capsys):
    from dataclasses import replace

    from fmzoo.core import registry
    from fmzoo.core.cli import main

    long = "Someone et al. (2031) released code only, " + "and a very long explanation of why " * 5
    other = replace(registry.plugins()["fake"], name="other", models={}, downstream={}, methods={}, weight_formats={},
                    official=None, no_released_weights={"NoWeightsNet": long})
    monkeypatch.setattr(registry, "plugins", lambda: {"fake": fake_plugin.plugin(), "other": other})
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    section = out[out.index("no released weights"):out.index("local hub")]
    assert "NoWeightsNet" in section and "(fmzoo-other)" in section
    assert " ".join(" ".join(section.split("\n")[1:]).split()).startswith("NoWeightsNet " + " ".join(long.split()))
    assert max(len(line) for line in section.splitlines()) <= 120
