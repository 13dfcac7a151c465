"""benchmarks/official_sizes.py keeps working: every row finds the release-layout writers it takes from the
packages' equivalence tests (a rename fails here, naming the row, the file and the name), and its code runs end to
end on small inputs for a few architectures at their real size, matching the reference."""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path

import pytest
from fmzoo.core.weights import catalogue

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "official_sizes.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("official_sizes_under_test", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop(spec.name, None)


def _rounds_to(n: int, stated: str) -> bool:
    """``n`` parameters printed as ``stated`` (e.g. '1.86M', '317M') at the precision it is written with."""
    millions = stated.removesuffix("M")
    return round(n / 1e6, len(millions.partition(".")[2])) == float(millions)


def test_every_row_resolves_its_writers(bench):
    used = bench.check_writers(bench.ARCHS)  # raises WriterMissing naming the row, file and name
    assert set(used) == set(bench.ARCHS)
    # only TAPE is written by its reference package alone; every other row borrows the tests' writers
    assert [name for name, helpers in used.items() if not helpers] == ["tape-bert-base"]
    assert {"packages/medical/tests/test_official_weights.py:_tpami_release",
            "packages/medical/tests/test_official_weights.py:_voco_features"} <= set(used["voco-h"])
    assert "packages/speech/tests/test_official_weights.py:_to_fairseq" in used["wav2vec2-fairseq-base"]
    # the rows reach packages/*/tests through _writer only, so the list above is complete
    tree = ast.parse(BENCH.read_text())
    loaders = {"_writer", "_test_module", "_exec_test_file"}
    for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name not in loaders):
        calls = {c.func.id for c in ast.walk(fn) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
        assert not calls & {"_test_module", "_exec_test_file"}, f"{fn.name} reads packages/*/tests around _writer"
    catalogue_ids = set(catalogue())
    missing = [i for ids, *_ in bench.ARCHS.values() for i in ids if i not in catalogue_ids]
    assert missing == [], f"benchmark rows name release ids the catalogue does not have: {missing}"


def test_a_renamed_or_moved_writer_fails_with_a_clear_message(bench, tmp_path, monkeypatch, capsys):
    graph = tmp_path / "graph" / "tests"
    graph.mkdir(parents=True)
    text = (ROOT / "packages/graph/tests/test_official_weights.py").read_text()
    assert "\ndef reference(" in text
    (graph / "test_official_weights.py").write_text(text.replace("\ndef reference(", "\ndef reference_model("))
    monkeypatch.setattr(bench, "TESTS", tmp_path)  # packages/ as if graph's helper were renamed, the rest moved

    with pytest.raises(bench.WriterMissing) as err:
        bench.check_writers(["graphmae-chem-gin", "softcon-rn50", "tape-bert-base"])
    msg = str(err.value)
    assert "row 'graphmae-chem-gin' needs 'reference' from" in msg and "no longer defines it" in msg
    assert "row 'softcon-rn50' needs '_torchvision_rn50' from" in msg and "remotesensing/tests/test_weights.py" in msg
    assert "does not exist" in msg and "tape-bert-base" not in msg
    assert "'RefGNN'" not in msg  # still there: only what is missing is named

    with pytest.raises(bench.WriterMissing, match=r"remotesensing/tests/test_weights\.py, which does not exist"):
        bench._writer("remotesensing", "test_weights", "_torchvision_rn50")

    # the command fails the same way before building anything (exit 2, the message on stderr)
    assert bench.main(["--tiny", "--in-process", "--only", "graphmae-chem-gin"]) == 2
    err = capsys.readouterr().err
    assert "graphmae-chem-gin" in err and "'reference'" in err


def test_real_size_configs_match_the_catalogue(bench):
    """wav2vec 2.0 rows are too slow to write in a test: their configs are counted on the meta device instead."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2ForPreTraining

    cat = catalogue()
    for size, row in (("base", "wav2vec2-base"), ("large", "wav2vec2-large")):
        with torch.device("meta"):
            model = Wav2Vec2ForPreTraining(Wav2Vec2Config(**bench._w2v_config(size)))
        n = sum(p.numel() for p in model.parameters())
        stated = cat[bench.ARCHS[row][0][0]].params
        assert _rounds_to(n, stated), f"{row}: the benchmark's config has {n:,} parameters, the catalogue {stated}"


def test_tiny_run_of_two_architectures_matches_the_reference(bench, tmp_path, tmp_hub):
    rows = ["graphmae-chem-gin", "softcon-rn50"]
    out = tmp_path / "rows.json"
    argv = ["--tiny", "--in-process", "--keep", str(tmp_path / "work"), "--out", str(out)]
    assert bench.main(argv + [a for r in rows for a in ("--only", r)]) == 0
    result = json.loads(out.read_text())
    assert result["tiny"] and result["repeats"] == 1
    cat = catalogue()
    for row, name in zip(result["rows"], rows, strict=True):
        assert row["architecture"] == name and "error" not in row, row
        f, ref = row["fmzoo"], row["reference"]
        # the models are the real size even when the input is tiny
        assert f["params"] == ref["params"], (name, f["params"], ref["params"])
        assert _rounds_to(f["params"], cat[row["release_ids"][0]].params), (name, f["params"])
        assert row["max_abs_diff"] <= 1e-5, (name, row["max_abs_diff"])
        assert f["output_shape"] == ref["output_shape"] and f["forward_ms"] > 0 and len(f["times_ms"]) == 1
        assert (tmp_path / "work" / name / row["prepare"]["release_file"]).is_file()
    by_name = {r["architecture"]: r for r in result["rows"]}
    assert by_name["graphmae-chem-gin"]["prepare"]["inputs_per_forward"] == 8
    assert "13 x 64 x 64" in by_name["softcon-rn50"]["input"]
