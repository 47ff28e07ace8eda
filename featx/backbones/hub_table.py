"""The curated keras-hub transformer rows (``HUB_BACKBONES``) and their families (``HUB_FAMILIES``:
poolings, defaults). Data only: no Keras."""

from __future__ import annotations

from dataclasses import dataclass

HUB_POOLINGS = ("cls", "avg", "cls+avg", "pooled")


@dataclass(frozen=True)
class HubFamily:
    """What one family of keras-hub transformers shares: its class, tokens, defaults."""

    name: str
    backbone_class: str  # keras_hub.models.<class>, the class a registry entry builds
    prefix_tokens: str  # "cls" (1), "cls+registers" (1 + num_register_tokens) or "none" (SigLIP)
    poolings: tuple[str, ...]  # what --pooling may ask
    default_pooling: str  # chosen for linear-probe quality
    mean: tuple[float, float, float]  # on 0–1 pixels, used when the snapshot declares none
    std: tuple[float, float, float]
    interpolates: bool  # whether the position embeddings follow another --image-size


_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


_HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


_CLIP = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
_DINOV2_POS = {"position_embedding_shape": (518, 518)}


HUB_FAMILIES: dict[str, HubFamily] = {f.name: f for f in [
    HubFamily("dinov2", "DINOV2Backbone", "cls+registers", ("cls", "avg", "cls+avg"), "cls+avg", *_IMAGENET, True),
    HubFamily("dinov3", "DINOV3Backbone", "cls+registers", ("cls", "avg", "cls+avg"), "cls+avg", *_IMAGENET, False),
    HubFamily("vit", "ViTBackbone", "cls", ("cls", "avg", "cls+avg"), "cls", *_HALF, False),
    HubFamily("siglip", "SigLIPVisionEncoder", "none", ("avg", "pooled"), "pooled", *_HALF, False),
    HubFamily("clip", "CLIPVisionEncoder", "cls", ("cls", "avg", "cls+avg", "pooled"), "pooled", *_CLIP, False),
]}


@dataclass(frozen=True)
class HubBackboneSpec:
    """One curated keras-hub preset: where its weights are, how to build it without them, its sizes."""

    name: str  # the keras-hub preset name, e.g. "dinov2_small"
    family: str  # a key of HUB_FAMILIES
    handle: str  # the pinned Kaggle handle keras-hub downloads the preset from
    input_size: int  # the size the weights were trained (and linear-probed) at, a multiple of the patch
    width: int  # token width: feature width of cls and avg (cls+avg is twice that)
    params: int  # parameters of the model featx builds at input_size with the default pooling (checked by the tests)
    arch: tuple[tuple[str, object], ...]  # keras-hub constructor arguments, for random weights (--weights none)
    pooled_width: int | None = None  # width of the model's own pooled embedding (SigLIP, CLIP)

    @property
    def feature_dims(self) -> dict[str, int]:
        """Feature width for each pooling this family offers."""
        widths = {"cls": self.width, "avg": self.width, "cls+avg": 2 * self.width, "pooled": self.pooled_width}
        return {p: widths[p] for p in HUB_FAMILIES[self.family].poolings}

    @property
    def default_pooling(self) -> str:
        return HUB_FAMILIES[self.family].default_pooling


def _vit(patch: int, layers: int, width: int, heads: int, mlp: int, **extra) -> tuple[tuple[str, object], ...]:
    args = dict(patch_size=patch, num_layers=layers, hidden_dim=width, num_heads=heads, intermediate_dim=mlp)
    return tuple({**args, **extra}.items())


def _kaggle(family: str, name: str, version: int = 1) -> str:
    return f"kaggle://keras/{family}/keras/{name}/{version}"


_HUB_BACKBONES: list[HubBackboneSpec] = [
    HubBackboneSpec("dinov2_small", "dinov2", _kaggle("dinov2", "dinov2_small"), 224, 384, 22_155_264,
                    _vit(14, 12, 384, 6, 1536, **_DINOV2_POS)),
    HubBackboneSpec("dinov2_base", "dinov2", _kaggle("dinov2", "dinov2_base"), 224, 768, 86_777_856,
                    _vit(14, 12, 768, 12, 3072, **_DINOV2_POS)),
    HubBackboneSpec("dinov2_large", "dinov2", _kaggle("dinov2", "dinov2_large"), 224, 1024, 304_631_808,
                    _vit(14, 24, 1024, 16, 4096, **_DINOV2_POS)),
    HubBackboneSpec("dinov2_with_registers_small", "dinov2", _kaggle("dinov2", "dinov2_with_registers_small"), 224,
                    384, 22_156_800, _vit(14, 12, 384, 6, 1536, num_register_tokens=4, **_DINOV2_POS)),
    HubBackboneSpec("dinov2_with_registers_base", "dinov2", _kaggle("dinov2", "dinov2_with_registers_base"), 224,
                    768, 86_780_928, _vit(14, 12, 768, 12, 3072, num_register_tokens=4, **_DINOV2_POS)),
    HubBackboneSpec("dinov2_with_registers_large", "dinov2", _kaggle("dinov2", "dinov2_with_registers_large"), 224,
                    1024, 304_635_904, _vit(14, 24, 1024, 16, 4096, num_register_tokens=4, **_DINOV2_POS)),
    HubBackboneSpec("dinov3_vit_small_lvd1689m", "dinov3", _kaggle("dinov3", "dinov3_vit_small_lvd1689m"), 224,
                    384, 21_596_544, _vit(16, 12, 384, 6, 1536, num_register_tokens=4, use_key_bias=False)),
    HubBackboneSpec("dinov3_vit_base_lvd1689m", "dinov3", _kaggle("dinov3", "dinov3_vit_base_lvd1689m"), 224,
                    768, 85_660_416, _vit(16, 12, 768, 12, 3072, num_register_tokens=4, use_key_bias=False)),
    HubBackboneSpec("siglip_base_patch16_224", "siglip", _kaggle("siglip", "siglip_base_patch16_224"), 224,
                    768, 92_884_420, _vit(16, 12, 768, 12, 3072), pooled_width=768),
    HubBackboneSpec("clip_vit_base_patch16", "clip", _kaggle("clip", "clip_vit_base_patch16", 3), 224,
                    768, 86_192_837, _vit(16, 12, 768, 12, 3072), pooled_width=512),
]


HUB_BACKBONES: dict[str, HubBackboneSpec] = {spec.name: spec for spec in _HUB_BACKBONES}


def list_hub_backbones(pattern: str | None = None) -> list[str]:
    """The curated keras-hub preset names, optionally only those containing ``pattern``."""
    return [n for n in HUB_BACKBONES if not pattern or pattern.lower() in n.lower()]


def get_hub_backbone(name: str) -> HubBackboneSpec | None:
    """The curated keras-hub entry named ``name`` (case-insensitive), or None."""
    return HUB_BACKBONES.get(name.lower())

