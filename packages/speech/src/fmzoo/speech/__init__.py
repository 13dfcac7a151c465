"""fmzoo-speech: wav2vec 2.0 (Hugging Face Wav2Vec2 layout) and TERA self-supervised speech encoders,
16 kHz audio input spec, log-mel features without torchaudio, SUPERB-style probes on FSDD."""

from .models.tera import TERA
from .models.wav2vec2 import Wav2Vec2
from .spec import AudioSpec, ResampleWarning, load_audio, log_mel, resample, validate_waveform

__version__ = "0.1.0"
__all__ = ["AudioSpec", "ResampleWarning", "TERA", "Wav2Vec2", "load_audio", "log_mel", "resample", "validate_waveform"]
