"""Dataset manifests in shared/datasets match the real files under FMZOO_DATA (sha256)."""

from pathlib import Path

import pytest
import yaml
from fmzoo.core import sha256_file

MANIFESTS = sorted((Path(__file__).resolve().parent.parent / "shared" / "datasets").glob("*.yaml"))


@pytest.mark.parametrize("manifest", MANIFESTS, ids=[m.stem for m in MANIFESTS])
def test_manifest_matches_data(manifest, data_root):
    spec = yaml.safe_load(manifest.read_text())
    for f in spec["files"]:
        path = data_root / spec["root"] / f["path"]
        assert path.is_file(), f"{path} missing"
        assert sha256_file(path) == f["sha256"], f"{path} differs from {manifest.name}"


def test_there_are_manifests():
    assert MANIFESTS
