"""Transformer snapshots on photos of their own sizes: ``featx embed`` against transformers.

    python benchmarks/hub_fidelity.py [--photos 300x451,741x500,500x375,224x224,150x100] [--json]

Saves tiny random DINOv2, DINOv2-with-registers and ViT snapshots with transformers, each with the
``preprocessor_config.json`` its real checkpoints ship (DINOv2: shortest edge 256, bicubic, centre
crop 224; ViT: 224x224 bilinear), writes photo-like JPEGs of the ``--photos`` sizes, runs the
command line a user would (``featx embed DIR --backbone FOLDER --pooling cls``) and compares the
class tokens with transformers' (``AutoImageProcessor``, PIL backend, + ``AutoModel``; the class
token after the final LayerNorm): the worst relative error (|ours - theirs| / max |theirs|, per
image). ``--resize stretch`` (what featx did before it followed the snapshot) is shown beside it.
Also: the processed pixels' largest difference, in 1/255 steps; and how far the vectors of an
exported model (raw photo in, ``PillowResize`` inside) are from featx embed's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embed_throughput import write_photos

PROCESSORS = {
    "dinov2": {"image_processor_type": "BitImageProcessor", "size": {"shortest_edge": 256}, "resample": 3,
               "do_center_crop": True, "crop_size": {"height": 224, "width": 224}, "do_rescale": True,
               "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.485, 0.456, 0.406],
               "image_std": [0.229, 0.224, 0.225], "do_convert_rgb": True},
    "vit": {"image_processor_type": "ViTImageProcessor", "size": {"height": 224, "width": 224}, "resample": 2,
            "do_normalize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]},
}
PROCESSORS["dinov2_with_registers"] = PROCESSORS["dinov2"]


def snapshot(folder: Path, kind: str) -> Path:
    import torch
    import transformers

    torch.manual_seed(0)
    common = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, patch_size=14)
    if kind == "vit":
        model = transformers.ViTModel(transformers.ViTConfig(**common, intermediate_size=64, image_size=224))
    elif kind == "dinov2":
        model = transformers.Dinov2Model(transformers.Dinov2Config(**common, mlp_ratio=2, image_size=224))
    else:
        model = transformers.Dinov2WithRegistersModel(transformers.Dinov2WithRegistersConfig(
            **common, mlp_ratio=2, image_size=224, num_register_tokens=4))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.3)
    model.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(PROCESSORS[kind]))
    return folder


def reference(folder: Path, paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """transformers' pixel values and class tokens."""
    import torch
    import transformers
    from PIL import Image

    processor = transformers.AutoImageProcessor.from_pretrained(folder, backend="pil")
    pixels = np.stack([processor(images=Image.open(p), return_tensors="np")["pixel_values"][0] for p in paths])
    model = transformers.AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        tokens = model(pixel_values=torch.from_numpy(pixels)).last_hidden_state.numpy()
    return pixels, tokens[:, 0]


def featx_embed(data: Path, folder: Path, cache: Path, *extra: str) -> tuple[list[str], np.ndarray]:
    """The command line a user runs, then the vectors from its cache."""
    import featx

    done = subprocess.run([sys.executable, "-m", "featx", "embed", str(data), "--backbone", str(folder),
                           "--pooling", "cls", "--cache", str(cache), "--json", *extra],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    features = featx.load_features(json.loads(done.stdout)["cache"])
    return list(features.paths), features.X


def exported_vectors(folder: Path, paths: list[Path]) -> np.ndarray:
    """Each raw photo through what an export holds: PillowResize, the normalisation layers, the backbone."""
    import keras

    from featx.backbones.build import build_backbone
    from featx.backbones.preprocessing import preprocess, preprocessing_layers, resize_layer
    from featx.data.images import decode_rgb
    from featx.options import EmbedOptions

    config = EmbedOptions(str(folder), pooling="cls").resolve()
    inputs = keras.Input((None, None, 3))
    resized = resize_layer(config.input_size, config.resize)(inputs)
    model = keras.Model(inputs, build_backbone(config)(preprocess(preprocessing_layers(config.preprocessing), resized)))
    return np.concatenate([keras.ops.convert_to_numpy(model(decode_rgb(p)[None].astype(np.float32))) for p in paths])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default="300x451,741x500,500x375,224x224,150x100",
                        help="WIDTHxHEIGHT of each photo, comma-separated")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from featx.backbones.hub_pipeline import load_model_input, processor_pipeline

    rows = []
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        for i, size in enumerate(args.photos.split(",")):
            width, height = (int(v) for v in size.split("x"))
            write_photos(root / "photos" / f"p{i}", 1, (width, height), classes=1, seed=i)
        paths = sorted((root / "photos").rglob("*.jpg"))
        for kind in PROCESSORS:
            folder = snapshot(root / kind, kind)
            pixels, tokens = reference(folder, paths)
            pipeline, mean, std = processor_pipeline(PROCESSORS[kind], kind)
            ours = np.stack([load_model_input(p, 224, pipeline.spec) for p in paths]) / 255
            theirs = pixels.transpose(0, 2, 3, 1) * np.asarray(std) + np.asarray(mean)
            row = {"snapshot": kind, "pipeline": pipeline.spec, "pixels_max_diff_255": float(np.abs(ours - theirs).max() * 255)}
            for label, extra in (("snapshot_pipeline", ()), ("stretch", ("--resize", "stretch"))):
                names, vectors = featx_embed(root / "photos", folder, root / "cache", *extra)
                order = [names.index(str(p)) for p in paths]
                error = np.abs(vectors[order] - tokens) / np.abs(tokens).max(axis=1, keepdims=True)
                row[f"rel_error_{label}"] = float(error.max())
                if label == "snapshot_pipeline":
                    exported = exported_vectors(folder, paths)
                    row["rel_error_export_vs_embed"] = float((np.abs(exported - vectors[order]) / np.abs(
                        vectors[order]).max(axis=1, keepdims=True)).max())
            rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"photos {args.photos}; featx embed --pooling cls against transformers (AutoImageProcessor PIL + AutoModel)")
    print(f"{'snapshot':<22} {'pipeline':<36} {'pixels (1/255)':>14} {'rel. error':>11} {'--resize stretch':>17} "
          f"{'export vs embed':>16}")
    for r in rows:
        print(f"{r['snapshot']:<22} {r['pipeline']:<36} {r['pixels_max_diff_255']:>14.3g} "
              f"{r['rel_error_snapshot_pipeline']:>11.2e} {r['rel_error_stretch']:>17.2f} "
              f"{r['rel_error_export_vs_embed']:>16.2e}")


if __name__ == "__main__":
    main()
