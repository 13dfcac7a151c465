"""fmzoo-protein: TAPE protein language models (Rao et al., NeurIPS 2019), their task heads and exact
import of TAPE's released layout."""

from .models import TapeResNet, TapeTransformer
from .models.task import TapeTaskModel
from .spec import IUPAC_VOCAB, TAPETokenizer

__all__ = ["IUPAC_VOCAB", "TAPETokenizer", "TapeResNet", "TapeTaskModel", "TapeTransformer"]
