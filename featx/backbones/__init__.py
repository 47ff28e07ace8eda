"""Backbones: one kind per vertical slice, from its table row to a built, preprocessed Keras model.

``applications`` (the Keras rows), ``hub_table`` (the curated transformer rows) and ``hub``
(resolving a transformer snapshot) are data and need no Keras; ``build``, ``hub_build``,
``preprocessing``, ``weights`` and ``unfreeze`` build and change models.
"""

from featx.backbones.applications import BACKBONES, DEFAULT_BACKBONE, BackboneSpec, get_backbone, list_backbones
from featx.backbones.hub_table import HUB_BACKBONES, HUB_FAMILIES, get_hub_backbone, list_hub_backbones

__all__ = ["BACKBONES", "DEFAULT_BACKBONE", "BackboneSpec", "get_backbone", "list_backbones",
           "HUB_BACKBONES", "HUB_FAMILIES", "get_hub_backbone", "list_hub_backbones"]
