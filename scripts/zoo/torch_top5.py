"""Top-5 of the trained EfficientNet-Lite0 in PyTorch on photos, with the
preprocessing written in zoo/efficientnet-lite0/network.yaml (RGB, shorter side
to 256 (PIL bilinear), centre crop 224, (x - 127) / 128, NCHW float32): the
numbers kann's output is compared with. Run like export_torch.py (Debian torch
on PYTHONPATH, see scripts/zoo-fetch.sh):

    python3 torch_top5.py CLASSES.txt IMAGE.png... [--save-npy DIR]

--save-npy writes each prepared input as DIR/<image stem>/images.npy.
"""

import os
import sys

import numpy as np
import torch
from PIL import Image

import export_torch


def prepare(path):
    img = Image.open(path).convert("RGB")
    w, h = img.size
    s = 256 / min(w, h)
    img = img.resize((round(w * s), round(h * s)), Image.BILINEAR)
    w, h = img.size
    left, top = (w - 224) // 2, (h - 224) // 2
    img = img.crop((left, top, left + 224, top + 224))
    x = (np.asarray(img, dtype=np.float32) - 127.0) / 128.0
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def main():
    args = sys.argv[1:]
    save = None
    if "--save-npy" in args:
        i = args.index("--save-npy")
        save = args[i + 1]
        del args[i : i + 2]
    classes = open(args[0]).read().splitlines()
    model, _ = export_torch.efficientnet_lite0()
    model.eval()
    for path in args[1:]:
        x = prepare(path)
        stem = os.path.splitext(os.path.basename(path))[0]
        if save:
            os.makedirs(os.path.join(save, stem), exist_ok=True)
            np.save(os.path.join(save, stem, "images.npy"), x)
        with torch.no_grad():
            p = torch.softmax(model(torch.from_numpy(x)), 1)[0]
        top = p.topk(5)
        row = " | ".join(f"{classes[k]} {v:.3f}" for v, k in zip(top.values.tolist(), top.indices.tolist()))
        print(f"{stem}: {row}")


if __name__ == "__main__":
    main()
