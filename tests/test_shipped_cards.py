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


# The Hub's pipeline tags (PIPELINE_DATA in huggingface.js packages/tasks/src/pipelines.ts; huggingface_hub has no
# constant for them): a card's pipeline_tag must be one of these or the Hub ignores it.
HUB_PIPELINE_TAGS = {
    "text-classification", "token-classification", "table-question-answering", "question-answering",
    "zero-shot-classification", "translation", "summarization", "feature-extraction", "text-generation",
    "text2text-generation", "fill-mask", "sentence-similarity", "text-to-speech", "text-to-audio",
    "automatic-speech-recognition", "audio-to-audio", "audio-classification", "audio-text-to-text",
    "voice-activity-detection", "depth-estimation", "image-classification", "object-detection",
    "image-segmentation", "text-to-image", "image-to-text", "image-to-image", "image-to-video",
    "unconditional-image-generation", "video-classification", "reinforcement-learning", "robotics",
    "tabular-classification", "tabular-regression", "text-ranking", "time-series-forecasting", "text-to-video",
    "image-text-to-text", "visual-question-answering", "document-question-answering",
    "zero-shot-image-classification", "graph-ml", "mask-generation", "zero-shot-object-detection", "text-to-3d",
    "image-to-3d", "image-feature-extraction", "video-text-to-text", "keypoint-detection",
    "visual-document-retrieval", "any-to-any",
}
# what each domain's checkpoints do, in the Hub's words (encoders: feature extraction of their modality)
DOMAIN_PIPELINE_TAGS = {
    "graph": {"graph-ml"}, "medical": {"image-feature-extraction"}, "protein": {"feature-extraction"},
    "remotesensing": {"image-feature-extraction"}, "speech": {"feature-extraction"},
    "tabular": {"tabular-classification", "tabular-regression"}, "timeseries": {"time-series-forecasting"},
}
HUB_DATASET_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*"  # namespace/name


def _init_source(prov: dict) -> str | None:
    """The checkpoint a run started from, as its provenance records it (None: trained from scratch)."""
    recipe = prov.get("recipe") or {}
    init = recipe.get("init") if isinstance(recipe.get("init"), dict) else {}
    return prov.get("init_from") or recipe.get("init_from") or init.get("from")


def test_every_shipped_card_has_hub_pipeline_tag_dataset_ids_language_and_base_model():
    import re

    from huggingface_hub import ModelCard

    shipped = shipped_checkpoints()
    assert len(shipped) >= 17
    for cid, path in shipped.items():
        data = ModelCard.load(path / "README.md").data
        domain = path.parent.parent.name
        assert data.pipeline_tag in HUB_PIPELINE_TAGS, f"{cid}: pipeline_tag {data.pipeline_tag!r}"
        assert data.pipeline_tag in DOMAIN_PIPELINE_TAGS[domain], f"{cid}: {data.pipeline_tag} for a {domain} model"
        for ds in data.datasets or []:
            assert re.fullmatch(HUB_DATASET_ID, ds), f"{cid}: datasets entry {ds!r} is not a Hub id (namespace/name)"
        # language only where the training data is speech in a language (FSDD: English digits)
        assert data.language == ("en" if domain == "speech" else None), f"{cid}: language {data.language!r}"
        # base_model exactly when provenance records the checkpoint the run continued from
        prov = json.loads((path / "provenance.json").read_text())
        source = _init_source(prov)
        assert data.base_model == source, f"{cid}: base_model {data.base_model!r}, provenance init {source!r}"
        if source is not None:
            assert source in shipped, f"{cid}: base_model {source} is not a shipped checkpoint"
