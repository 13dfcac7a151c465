"""Every shipped checkpoint's card is what its provenance.json renders (one shipping path: `fmzoo ship`)."""

import json

import yaml
from fmzoo.core.registry import shipped_checkpoints
from fmzoo.core.ship import check_cards


def test_every_shipped_card_agrees_with_its_provenance():
    assert check_cards() == []


def test_every_shipped_card_names_its_seeds_and_metric_ids():
    from fmzoo.core.card import METRIC_IDS

    shipped = shipped_checkpoints()
    assert len(shipped) >= 17
    for cid, path in shipped.items():
        text = (path / "README.md").read_text()
        prov = json.loads((path / "provenance.json").read_text())
        assert "- seeds: [" in text, cid
        header = yaml.safe_load(text.split("---\n")[1])
        assert set(header.get("metrics") or []) <= set(METRIC_IDS.values()), cid  # metric ids, never prose
        if prov["card"].get("eval_results"):
            metrics = [m for r in header["model-index"][0]["results"] for m in r["metrics"]]
            assert len(metrics) == len(prov["card"]["eval_results"]), cid


def test_every_shipped_card_loads_in_huggingface_hub_with_a_model_index_of_metric_ids():
    from fmzoo.core.card import METRIC_IDS
    from huggingface_hub import ModelCard

    for cid, path in shipped_checkpoints().items():
        results = ModelCard.load(path / "README.md").data.eval_results or []
        assert results, f"{cid}: no model-index"
        assert {r.metric_type for r in results} <= set(METRIC_IDS.values()), cid
