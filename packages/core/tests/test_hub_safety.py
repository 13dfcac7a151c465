"""The local hub copies only a checkpoint's own files, follows no link, serialises publishes of one id, never
modifies a published revision, refuses to shadow a shipped id, and writes files readable as the umask says."""

import json
import multiprocessing as mp
import os
import re
import stat

import pytest
import torch
from fmzoo.core import CheckpointError, LocalHub, RepoIdError, validate_repo_id
from fmzoo.core.cli import main
from fmzoo.core.hub import publish_dir


@pytest.fixture
def ckpt(fake_plugin, tmp_path):
    import sys

    torch.manual_seed(0)
    path = tmp_path / "ck"
    sys.modules["fmzoo_fake_domain"].DigitsMLP().save_pretrained(path)
    return path


def test_symlink_in_checkpoint_is_refused_and_extra_files_not_copied(ckpt, tmp_hub, tmp_path):
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY")
    (ckpt / "notes.txt").symlink_to(secret)  # not a checkpoint file: ignored, never copied
    (ckpt / "loop").symlink_to(ckpt)
    rev = publish_dir(ckpt, "lab/digits")
    published = LocalHub().resolve("lab/digits", rev)
    assert sorted(p.name for p in published.iterdir()) == ["README.md", "config.json", "model.safetensors", "provenance.json"]
    (ckpt / "README.md").unlink()
    (ckpt / "README.md").symlink_to(secret)  # a checkpoint file that is a link: refused
    with pytest.raises(CheckpointError, match="symbolic link"):
        publish_dir(ckpt, "lab/digits")
    assert "PRIVATE KEY" not in "".join(p.read_text(errors="ignore") for p in tmp_hub.rglob("*") if p.is_file())


def _publish(args):
    src, hub, name = args
    os.environ["FMZOO_HUB"] = hub
    return publish_dir(src, name)


def test_concurrent_publishes_both_land(ckpt, tmp_hub, tmp_path):
    import shutil
    import sys

    other = tmp_path / "ck2"
    shutil.copytree(ckpt, other)
    torch.manual_seed(1)
    sys.modules["fmzoo_fake_domain"].DigitsMLP().save_pretrained(other)
    with mp.get_context("fork").Pool(2) as pool:
        revs = pool.map(_publish, [(str(ckpt), str(tmp_hub), "lab/same"), (str(other), str(tmp_hub), "lab/same")] * 3)
    assert len(set(revs)) == 2
    assert sorted(LocalHub().revisions("lab/same")) == sorted(set(revs))
    for rev in set(revs):
        LocalHub().resolve("lab/same", rev)  # verified against its manifest


def test_shipped_id_is_not_shadowed_unless_asked(ckpt, tmp_hub, tmp_path, monkeypatch):
    from fmzoo.core import registry

    monkeypatch.setattr(registry, "shipped_checkpoints", lambda: {"fmzoo/digits": ckpt})
    with pytest.raises(RepoIdError, match="shipped by an installed fmzoo package"):
        publish_dir(ckpt, "fmzoo/digits")
    assert publish_dir(ckpt, "fmzoo/digits", replace_shipped=True)


def test_published_files_follow_the_umask(ckpt, tmp_hub):
    os.chmod(ckpt / "config.json", 0o600)
    old = os.umask(0o022)
    try:
        rev = publish_dir(ckpt, "lab/modes")
    finally:
        os.umask(old)
    for f in LocalHub().resolve("lab/modes", rev).iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f


@pytest.mark.parametrize("bad", ["a/b\n", "a/b/c", "../b", "a/..", "/a/b", "a\\b/c", ""])
def test_bad_repo_ids(bad):
    with pytest.raises(RepoIdError):
        validate_repo_id(bad)


def test_card_results_never_rewrite_a_published_revision(ckpt, tmp_hub, tmp_path, capsys):
    import json

    rev = publish_dir(ckpt, "lab/card")
    path = LocalHub().resolve("lab/card", rev)
    results = tmp_path / "r.json"
    results.write_text(json.dumps({"table": "t", "setting": "quick", "rows": []}))
    before = (path / "README.md").read_bytes()
    assert main(["card", str(path), "--results", str(results)]) == 2
    assert re.search("never modified", capsys.readouterr().err)
    assert (path / "README.md").read_bytes() == before
    LocalHub().resolve("lab/card", rev)  # still verifies


def test_unknown_revision_of_existing_repo_is_named(ckpt, tmp_hub):
    from fmzoo.core import from_pretrained

    publish_dir(ckpt, "lab/rev")
    with pytest.raises(CheckpointError, match="revision 'nope' is not in the local hub"):
        from_pretrained("lab/rev", revision="nope")


def test_empty_id_is_refused_not_the_current_directory(fake_plugin):
    from fmzoo.core import from_pretrained

    with pytest.raises(RepoIdError, match="empty model id"):
        from_pretrained("")


def test_edited_config_sizes_are_refused_before_allocation(ckpt):
    import json

    from fmzoo.core import from_pretrained

    original = json.loads((ckpt / "config.json").read_text())
    for hidden, message in ((2**20, r"would be \[1048576, 64\] but model.safetensors holds \[32, 64\]"),  # 4 TiB
                            (2**31, "too large to build")):  # hidden x hidden overflows
        config = json.loads(json.dumps(original))
        config["init_args"]["hidden"] = hidden
        (ckpt / "config.json").write_text(json.dumps(config))
        with pytest.raises(CheckpointError, match=message):
            from_pretrained(ckpt)


def test_config_for_another_class_is_a_clear_error(ckpt):
    import json

    from fmzoo.core import from_pretrained

    config = json.loads((ckpt / "config.json").read_text())
    config["init_args"]["depth"] = 3
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="init_args do not fit DigitsMLP"):
        from_pretrained(ckpt)


@pytest.mark.parametrize("raw,value", [("3e-4", 3e-4), ("010", 10), ("1.5", 1.5), ("-2", -2), ("true", True),
                                       ("abc", "abc"), ("[1, 2]", [1, 2]), ("1e3", 1000.0), (".5", 0.5)])
def test_set_values_parse_as_yaml_1_2(raw, value):
    from fmzoo.core.cli import yaml_value

    assert yaml_value(raw) == value and type(yaml_value(raw)) is type(value)


def test_the_same_weights_give_the_same_file_in_every_process(tmp_path):
    import subprocess
    import sys

    code = ("import sys, torch\nfrom fmzoo.core import HubMixin\n"
            "class M(torch.nn.Module, HubMixin):\n    def __init__(self):\n        super().__init__()\n"
            "        self.fc = torch.nn.Linear(2, 2)\n"
            "torch.manual_seed(0)\nM().save_pretrained(sys.argv[1])\n")
    shas = set()
    for i in range(4):  # two metadata keys came out in one order or the other, process to process
        subprocess.run([sys.executable, "-c", code, str(tmp_path / str(i))], check=True)
        shas.add(json.loads((tmp_path / str(i) / "config.json").read_text())["weights_sha256"])
    assert len(shas) == 1  # config.json records the same sha256 for the same tensors


@pytest.mark.parametrize("revision", ["../../lab/x", "/etc", "a\\b", "main\n", " "])
def test_a_revision_that_is_a_path_is_named_invalid(ckpt, tmp_hub, revision):
    from fmzoo.core import from_pretrained

    publish_dir(ckpt, "lab/revpath")
    with pytest.raises(RepoIdError, match="invalid revision"):
        from_pretrained("lab/revpath", revision=revision)


def test_publish_never_writes_through_a_link_planted_in_the_hub(ckpt, tmp_hub, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_hub / "lab").mkdir(parents=True)
    (tmp_hub / "lab" / "linked").symlink_to(outside, target_is_directory=True)
    with pytest.raises(RepoIdError, match="is a symbolic link"):
        publish_dir(ckpt, "lab/linked")
    (tmp_hub / "org").symlink_to(outside, target_is_directory=True)
    with pytest.raises(RepoIdError, match="is a symbolic link"):
        publish_dir(ckpt, "org/model")
    assert list(outside.iterdir()) == []


def test_a_hub_root_that_is_a_file_is_a_one_line_cli_error(ckpt, tmp_path, monkeypatch, capsys):
    hub = tmp_path / "hubfile"
    hub.write_text("not a folder")
    monkeypatch.setenv("FMZOO_HUB", str(hub))
    assert main(["publish", str(ckpt), "lab/x"]) == 2
    err = capsys.readouterr().err
    assert "(FMZOO_HUB) is not a folder" in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("key,value,named", [("hidden", -4, "hidden=-4"), ("hidden", 2.5, "hidden=2.5 (default 32)"),
                                             ("in_dim", "big", "in_dim='big' (default 64)")])
def test_init_args_that_cannot_be_sizes_are_a_checkpoint_error_naming_them(ckpt, key, value, named):
    from fmzoo.core import from_pretrained

    config = json.loads((ckpt / "config.json").read_text())
    config["init_args"][key] = value
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=re.escape(named)):
        from_pretrained(ckpt)
