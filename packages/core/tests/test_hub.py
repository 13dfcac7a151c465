import json
import os
import subprocess
import sys

import pytest
import torch
from fmzoo.core import CheckpointError, HubMixin, LocalHub, RepoIdError, from_pretrained, validate_repo_id
from fmzoo.core.hub import resolve_checkpoint
from torch import nn


class TinyNet(nn.Module, HubMixin):
    def __init__(self, d_in: int = 4, d_out: int = 3, act: str = "relu"):
        super().__init__()
        self.fc = nn.Linear(d_in, d_out)
        self.register_buffer("scale", torch.arange(d_out, dtype=torch.float32))
        self.input_spec = {"features": d_in, "names": [f"f{i}" for i in range(d_in)]}


class TiedNet(nn.Module, HubMixin):
    """Shared tensors (tied weights) must round-trip too."""

    def __init__(self, n: int = 5):
        super().__init__()
        self.a = nn.Embedding(n, 3)
        self.b = nn.Linear(3, n, bias=False)
        self.b.weight = self.a.weight


def test_round_trip_is_exact(tmp_path):
    torch.manual_seed(0)
    m = TinyNet(6, act="gelu")
    m.input_spec["mean"] = [0.5, 1.5]
    m.save_pretrained(tmp_path / "ck", card={"title": "tiny", "results": [{"metric": "acc", "value": 0.5, "setting": "x"}]})
    assert sorted(os.listdir(tmp_path / "ck")) == ["README.md", "config.json", "model.safetensors", "provenance.json"]
    m2 = TinyNet.from_pretrained(tmp_path / "ck")
    for (k, v), (k2, v2) in zip(m.state_dict().items(), m2.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2)
    assert m2.init_args == {"d_in": 6, "d_out": 3, "act": "gelu"}
    assert m2.input_spec == m.input_spec
    cfg = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert cfg["architecture"] == "TinyNet" and cfg["init_args"]["act"] == "gelu"
    card = (tmp_path / "ck" / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: fmzoo" in card and "| acc | 0.5 | x |" in card
    prov = json.loads((tmp_path / "ck" / "provenance.json").read_text())
    assert "torch" in prov["packages"] and "created_utc" in prov


def test_tied_weights_round_trip(tmp_path):
    m = TiedNet()
    m.save_pretrained(tmp_path)
    m2 = TiedNet.from_pretrained(tmp_path)
    assert torch.equal(m2.a.weight, m.a.weight) and m2.a.weight is m2.b.weight


def test_non_json_init_arg_is_a_clear_error(tmp_path):
    m = TinyNet(act=torch.nn.ReLU())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="act"):
        m.save_pretrained(tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_corrupt_weights_are_a_clear_error(tmp_path, damage):
    TinyNet().save_pretrained(tmp_path)
    w = tmp_path / "model.safetensors"
    data = w.read_bytes()
    if damage == "truncate":
        w.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        w.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    else:
        w.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        TinyNet.from_pretrained(tmp_path)


def test_truncated_file_without_recorded_hash_is_still_a_clear_error(tmp_path):
    TinyNet().save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    del cfg["weights_sha256"]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    w = tmp_path / "model.safetensors"
    w.write_bytes(w.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="safetensors"):
        TinyNet.from_pretrained(tmp_path)


def test_missing_file_and_bad_config(tmp_path):
    TinyNet().save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing model.safetensors"):
        TinyNet.from_pretrained(tmp_path)
    TinyNet().save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        TinyNet.from_pretrained(tmp_path)


def test_wrong_architecture_is_refused(tmp_path):
    TinyNet().save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="holds a 'TinyNet'"):
        TiedNet.from_pretrained(tmp_path)


def test_shape_mismatch_is_a_clear_error(tmp_path):
    TinyNet(4).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="does not fit"):
        TinyNet.from_pretrained(tmp_path, d_in=5)


@pytest.mark.parametrize("bad", ["../etc", "/abs/path", "a/../b", "a/b/c", "noslash", "a/", "a b/c", "", "org/.."])
def test_bad_repo_ids(bad):
    with pytest.raises(RepoIdError):
        validate_repo_id(bad)


def test_bad_repo_id_through_from_pretrained(tmp_hub):
    with pytest.raises(RepoIdError, match="invalid repo id"):
        TinyNet.from_pretrained("../../no-such-dir/weights")


def test_local_hub_revisions_and_offline(tmp_hub, monkeypatch):
    monkeypatch.setenv("FMZOO_OFFLINE", "1")
    torch.manual_seed(0)
    m1 = TinyNet()
    rev1 = m1.push_to_hub("lab/tiny", hub="local")
    torch.manual_seed(1)
    m2 = TinyNet()
    rev2 = m2.push_to_hub("lab/tiny", hub="local")
    assert rev1 != rev2
    hub = LocalHub()
    assert hub.revisions("lab/tiny") == [rev1, rev2]
    latest = TinyNet.from_pretrained("lab/tiny")
    assert torch.equal(latest.fc.weight, m2.fc.weight)
    old = TinyNet.from_pretrained("lab/tiny", revision=rev1)
    assert torch.equal(old.fc.weight, m1.fc.weight)
    path = LocalHub().resolve("lab/tiny", revision=rev1)
    assert LocalHub().publish(path, "lab/tiny") == rev1  # identical files: the same revision, moved to main
    assert torch.equal(TinyNet.from_pretrained("lab/tiny").fc.weight, m1.fc.weight)
    with pytest.raises(CheckpointError, match="not in the local hub"):
        TinyNet.from_pretrained("lab/tiny", revision="deadbeef")
    with pytest.raises(CheckpointError, match="networking is off"):
        TinyNet.from_pretrained("lab/unknown")


def test_hub_detects_tampering(tmp_hub):
    TinyNet().push_to_hub("lab/tiny", hub="local")
    path = LocalHub().resolve("lab/tiny")
    (path / "README.md").write_text("changed")
    with pytest.raises(CheckpointError, match="README.md"):
        resolve_checkpoint("lab/tiny")


def test_interrupted_publish_leaves_no_partial_revision(tmp_hub, tmp_path, monkeypatch):
    TinyNet().save_pretrained(tmp_path / "ck")
    import fmzoo.core.hub as hub_mod

    real_rename = os.rename

    def crash(*a, **k):
        raise KeyboardInterrupt("interrupted")

    monkeypatch.setattr(hub_mod.os, "rename", crash)
    with pytest.raises(KeyboardInterrupt):
        LocalHub().publish(tmp_path / "ck", "lab/tiny")
    monkeypatch.setattr(hub_mod.os, "rename", real_rename)
    assert LocalHub().revisions("lab/tiny") == []
    assert not LocalHub().has("lab/tiny")
    assert not list((tmp_hub / "lab" / "tiny").glob(".incoming-*"))
    rev = LocalHub().publish(tmp_path / "ck", "lab/tiny")
    assert LocalHub().revisions("lab/tiny") == [rev]


def test_killed_publish_process_leaves_hub_consistent(tmp_hub, tmp_path):
    """A publisher killed mid-copy (SIGKILL) leaves either nothing or a complete revision."""
    big = tmp_path / "ck"
    TinyNet(d_in=2000, d_out=2000).save_pretrained(big)
    code = (
        "import sys, time, shutil\n"
        "from fmzoo.core import LocalHub\n"
        "orig = shutil.copy2\n"
        "def slow(*a, **k):\n    r = orig(*a, **k); time.sleep(0.5); return r\n"
        "shutil.copy2 = slow\n"
        f"LocalHub().publish({str(big)!r}, 'lab/big')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ})
    import time

    time.sleep(1.5)
    proc.kill()
    proc.wait()
    hub = LocalHub()
    assert hub.revisions("lab/big") == [] or hub.has("lab/big")
    assert not hub.has("lab/big") or hub.resolve("lab/big")  # complete if visible (verify=True)


def test_registry_resolves_class_from_config(tmp_path, fake_plugin):
    fake_plugin.DigitsMLP(hidden=8).save_pretrained(tmp_path)
    loaded = from_pretrained(tmp_path)
    assert type(loaded) is fake_plugin.DigitsMLP and loaded.init_args["hidden"] == 8


def test_unknown_architecture_is_a_clear_error(tmp_path):
    TinyNet().save_pretrained(tmp_path)
    with pytest.raises(KeyError, match="TinyNet"):
        from_pretrained(tmp_path)


def test_hugging_face_hub_is_used_only_when_online_and_not_local(tmp_hub, tmp_path, monkeypatch):
    import shutil

    import huggingface_hub

    src = tmp_path / "remote"
    torch.manual_seed(3)
    remote = TinyNet()
    remote.save_pretrained(src)
    calls = []

    def fake_snapshot_download(repo_id, revision=None, allow_patterns=None):
        calls.append((repo_id, revision, tuple(allow_patterns)))
        dst = tmp_path / "hf-cache" / repo_id.replace("/", "--")
        shutil.copytree(src, dst, dirs_exist_ok=True)
        return str(dst)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.setenv("FMZOO_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="networking is off"):
        TinyNet.from_pretrained("someone/tiny")
    monkeypatch.setenv("FMZOO_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="networking is off"):
        TinyNet.from_pretrained("someone/tiny")
    assert calls == []
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    loaded = TinyNet.from_pretrained("someone/tiny", revision="v1")
    assert torch.equal(loaded.fc.weight, remote.fc.weight)
    assert calls == [("someone/tiny", "v1", ("config.json", "model.safetensors", "README.md", "provenance.json",
                                                   "preprocessor_config.json", "tokenizer_config.json", "vocab.json",
                                                   "special_tokens_map.json", "added_tokens.json"))]
    TinyNet().push_to_hub("someone/tiny", hub="local")  # a local copy now shadows the remote one
    TinyNet.from_pretrained("someone/tiny")
    assert len(calls) == 1


def _fake_hf_api(monkeypatch, calls: list):
    """A stand-in for huggingface_hub.HfApi that records each call after binding its arguments to the REAL
    method's signature (a keyword the real API does not take fails the test)."""
    import inspect

    import huggingface_hub

    real = huggingface_hub.HfApi

    class FakeApi:
        def __init__(self, token=None):
            pass

        def __getattr__(self, name):
            def method(*args, **kwargs):
                inspect.signature(getattr(real, name)).bind(self, *args, **kwargs)
                calls.append((name, kwargs))
                if name == "upload_folder":
                    from pathlib import Path

                    folder = Path(kwargs["folder_path"])
                    kwargs["files"] = sorted(p.name for p in folder.iterdir() if p.name in kwargs["allow_patterns"])
                    kwargs["config"] = json.loads((folder / "config.json").read_text())
                    return "https://huggingface.co/lab/tiny/commit/abc"
            return method

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setenv("FMZOO_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")


def test_push_to_hf_uploads_the_checkpoint_unchanged(tmp_path, monkeypatch):
    calls = []
    _fake_hf_api(monkeypatch, calls)
    url = TinyNet().push_to_hub("lab/tiny", hub="hf")
    assert url.endswith("/commit/abc") and calls[0] == ("create_repo", {"exist_ok": True, "private": False})
    upload = dict(calls)["upload_folder"]
    assert upload["files"] == ["README.md", "config.json", "model.safetensors", "provenance.json"]
    assert upload["config"]["architecture"] == "TinyNet" and upload["create_pr"] is False
    monkeypatch.setenv("FMZOO_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="networking is off"):
        TinyNet().push_to_hub("lab/tiny", hub="hf")


def test_publish_hf_private_branch_message_and_pr(tmp_path, monkeypatch):
    from fmzoo.core.cli import main

    calls = []
    _fake_hf_api(monkeypatch, calls)
    TinyNet().save_pretrained(tmp_path / "ck")
    assert main(["publish", str(tmp_path / "ck"), "lab/tiny", "--hub", "hf", "--private", "--revision", "v2",
                 "--commit-message", "second run"]) == 0
    got = dict(calls)
    assert got["create_repo"]["private"] is True and got["create_branch"] == {"branch": "v2", "exist_ok": True}
    assert got["upload_folder"]["revision"] == "v2" and got["upload_folder"]["commit_message"] == "second run"
    calls.clear()
    assert main(["publish", str(tmp_path / "ck"), "lab/tiny", "--hub", "hf", "--create-pr"]) == 0
    assert "create_branch" not in dict(calls) and dict(calls)["upload_folder"]["create_pr"] is True
    assert main(["publish", str(tmp_path / "ck"), "lab/tiny", "--private"]) == 2  # the local hub has no visibility


def test_publish_run_writes_only_on_rank_zero(tmp_path, monkeypatch):
    import torch.distributed as dist
    from fmzoo.core.training import publish_run

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    assert publish_run(TinyNet(), tmp_path / "rank1") == tmp_path / "rank1"
    assert not (tmp_path / "rank1").exists()
    monkeypatch.setattr(dist, "get_rank", lambda: 0)
    out = publish_run(TinyNet(), tmp_path / "rank0")
    assert (out / "model.safetensors").is_file()


def test_loading_reads_into_the_model_and_keeps_tied_weights(tmp_path):
    """Weights are read straight into the model (no second copy); a tied weight, stored once by safetensors, is
    filled through its twin; a float16 file casts into float32 parameters as load_state_dict would."""
    import torch
    from fmzoo.core.hub import load_weights
    from safetensors.torch import save_file

    class Tied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
            self.b.weight = self.a.weight

    src = Tied()
    save_file({"a.weight": src.a.weight.detach().half(), "a.bias": src.a.bias.detach(),
               "b.bias": src.b.bias.detach()}, str(tmp_path / "w.safetensors"))
    dst = Tied()
    load_weights(dst, tmp_path / "w.safetensors")
    assert torch.equal(dst.a.weight, src.a.weight.half().float()) and dst.b.weight is dst.a.weight
    assert torch.equal(dst.b.bias, src.b.bias)
    save_file({"a.weight": src.a.weight.detach()}, str(tmp_path / "short.safetensors"))
    with pytest.raises(CheckpointError, match=r"missing tensors \['a.bias', 'b.bias'\]"):
        load_weights(Tied(), tmp_path / "short.safetensors")


TOKENIZER_FILES = {"tokenizer_config.json": '{"tokenizer_class": "Wav2Vec2CTCTokenizer"}',
                   "vocab.json": '{"<pad>": 0, "A": 1}', "special_tokens_map.json": '{"pad_token": "<pad>"}'}


def test_transformers_tokenizer_files_travel_through_publish(tmp_hub, tmp_path, monkeypatch):
    """A wav2vec 2.0 checkpoint's tokenizer files go with it to the local hub and back; a stray file does not, and a
    link in place of one is refused."""
    monkeypatch.setenv("FMZOO_OFFLINE", "1")
    TinyNet().save_pretrained(tmp_path / "ck")
    for name, text in TOKENIZER_FILES.items():
        (tmp_path / "ck" / name).write_text(text)
    (tmp_path / "ck" / "notes.txt").write_text("not the checkpoint's")
    LocalHub().publish(tmp_path / "ck", "lab/speechy")
    loaded = TinyNet.from_pretrained("lab/speechy")
    for name, text in TOKENIZER_FILES.items():
        assert (loaded.checkpoint_dir / name).read_text() == text
    assert not (loaded.checkpoint_dir / "notes.txt").exists()
    (tmp_path / "ck" / "vocab.json").unlink()
    (tmp_path / "ck" / "vocab.json").symlink_to(tmp_path / "ck" / "notes.txt")
    with pytest.raises(CheckpointError, match="vocab.json.*symbolic link"):
        LocalHub().publish(tmp_path / "ck", "lab/speechy")


def test_push_to_hf_uploads_the_tokenizer_files(tmp_path, monkeypatch):
    calls = []
    _fake_hf_api(monkeypatch, calls)
    TinyNet().save_pretrained(tmp_path / "ck")
    for name, text in TOKENIZER_FILES.items():
        (tmp_path / "ck" / name).write_text(text)
    from fmzoo.core import publish_dir

    publish_dir(tmp_path / "ck", "lab/tiny", hub="hf")
    assert dict(calls)["upload_folder"]["files"] == ["README.md", "config.json", "model.safetensors",
                                                      "provenance.json", "special_tokens_map.json",
                                                      "tokenizer_config.json", "vocab.json"]


def test_push_to_hub_defaults_to_the_hugging_face_hub(tmp_hub, monkeypatch):
    calls = []
    _fake_hf_api(monkeypatch, calls)
    assert TinyNet().push_to_hub("lab/tiny").endswith("/commit/abc")  # no hub=: the Hugging Face Hub
    assert [c[0] for c in calls] == ["create_repo", "upload_folder"] and LocalHub().revisions("lab/tiny") == []
    monkeypatch.setenv("FMZOO_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="FMZOO_OFFLINE or HF_HUB_OFFLINE.*hub='local'"):
        TinyNet().push_to_hub("lab/tiny")
    assert LocalHub().revisions("lab/tiny") == []
    assert TinyNet().push_to_hub("lab/tiny", hub="local") in LocalHub().revisions("lab/tiny")
    with pytest.raises(ValueError, match="hub must be 'hf'.*or 'local'.*got 'github'"):
        TinyNet().push_to_hub("lab/tiny", hub="github")
