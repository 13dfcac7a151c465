"""The catalogue of official released weights across the installed packages (fmzoo list)."""

from fmzoo.core.cli import main
from fmzoo.core.weights import catalogue, formats

PAPER_METHODS = ("wav2vec 2.0", "TERA", "TAPE", "VoCo", "SoftCon", "GraphMAE", "Volume Fusion")


def test_catalogue_size_and_methods(capsys):
    entries = catalogue()
    methods = {m for m in PAPER_METHODS if any(e.method.startswith(m) for e in entries.values())}
    assert len(entries) >= 12, sorted(entries)
    assert len(methods) >= 5, methods
    known = formats()
    for key, e in entries.items():
        assert e.format in known, f"{key}: format {e.format!r} is not registered"
        assert e.source.startswith("http") and e.license and e.params, key
        assert (e.hf_repo is None) or e.files, f"{key}: a Hugging Face entry names the files it reads"
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(key in out for key in entries)
    assert "datasets:   " in out and "cora (graph)" in out and "adult (tabular)" in out


def test_every_catalogue_entry_states_the_input_it_enforces():
    from fmzoo.core.weights import catalogue, input_of

    missing = [key for key, entry in catalogue().items() if len(input_of(entry)) < 20]
    assert missing == [], f"official entries without an input description (WeightFormat.input): {missing}"
