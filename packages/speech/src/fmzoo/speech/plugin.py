"""fmzoo-speech's plugin: models, pretraining methods, tables, recipes and shipped checkpoints."""

from pathlib import Path

from fmzoo.core import Plugin

HERE = Path(__file__).parent


def plugin() -> Plugin:
    return Plugin(
        name="speech",
        models={"Wav2Vec2": "fmzoo.speech.models.wav2vec2:Wav2Vec2", "TERA": "fmzoo.speech.models.tera:TERA"},
        methods={"wav2vec2": "fmzoo.speech.methods.wav2vec2:Wav2Vec2Method", "tera": "fmzoo.speech.methods.tera:TERAMethod"},
        datasets={"fsdd": "fmzoo.speech.data.fsdd:load_fsdd"},
        downstream={"Wav2Vec2": "fmzoo.speech.tasks.downstream:SpeechHooks",
                    "TERA": "fmzoo.speech.tasks.downstream:SpeechHooks"},
        weight_formats={"transformers-wav2vec2": "fmzoo.speech.weights:TransformersWav2Vec2",
                        "fairseq-wav2vec2": "fmzoo.speech.weights:FairseqWav2Vec2",
                        "s3prl-tera": "fmzoo.speech.weights:S3PRLTera"},
        official="fmzoo.speech.weights:OFFICIAL",
        recipes_dir=HERE / "recipes", tables_dir=HERE / "tables", checkpoints_dir=HERE / "checkpoints",
    )
