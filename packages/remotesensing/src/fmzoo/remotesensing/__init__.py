"""fmzoo.remotesensing: SoftCon-style continual pretraining for multispectral imagery.

- ``models``: timm ResNet / ViT backbones whose input layer is widened to any band set
  (:func:`fmzoo.remotesensing.models.widen.widen_input_weight`).
- ``methods.softcon``: the soft contrastive loss (targets = cross-scene similarity of multi-label
  land-cover vectors), Siamese masking and the pretraining recipe.
- ``spec``: band names and the input spec (bands, input size and size policy, per-band normalization, the
  radiometry of each accepted product) that travels with a checkpoint and is enforced or converted as declared.
"""

from .spec import S2_BANDS, Preprocessor, RemoteSensingInput, ResizeWarning, canonical_band

__all__ = ["S2_BANDS", "canonical_band", "Preprocessor", "RemoteSensingInput", "ResizeWarning"]
