"""How many symbols the encoder's CPU squash (numpy's tanh) rounds differently from torch's tanh.

    python benchmarks/squash_flips.py       # a few seconds; writes results/entropy/squash_flips.json

``BoundedQuantizer.squash_`` runs numpy's vectorized tanh on the CPU (several times faster than
torch's here). The two agree within an ulp, so a latent lying on a rounding boundary can round to the
other symbol, as it can on another CPU. This codes the 24 Kodak images and the first 200 Imagenette
validation images with ``image-rgb-16x`` and ``image-rgb-4x`` at every quality, both ways, and counts
the symbols that differ.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def main() -> int:
    import torch

    from wavelatent.data import list_images, load_images
    from wavelatent.models import load_codec
    from wavelatent.nn.quantizer import BoundedQuantizer
    from wavelatent.pixels import pixels_to_tensor

    torch.set_num_threads(1)
    started = time.time()
    files = list_images(DATA / "images" / "kodak") + sorted(list_images(DATA / "imagenette" / "val"))[:200]
    images = load_images(files, 3)
    numpy_squash = BoundedQuantizer.squash_

    def torch_squash(self, y):
        return y.div_(self.bound).tanh_().mul_(self.bound)

    result = {"images": len(images), "sets": "Kodak (24) and the first 200 Imagenette validation images", "presets": {}}
    for preset in ("image-rgb-16x", "image-rgb-4x"):
        codec = load_codec(preset)
        symbols = differ = 0
        for im in images:
            with torch.inference_mode():
                y_numpy = codec.encode(pixels_to_tensor(im))
                BoundedQuantizer.squash_ = torch_squash
                try:
                    y_torch = codec.encode(pixels_to_tensor(im))
                finally:
                    BoundedQuantizer.squash_ = numpy_squash
                for quality in range(1, codec.config.qualities + 1):
                    a, b = codec.quantize(y_numpy, quality), codec.quantize(y_torch, quality)
                    symbols += a.numel()
                    differ += int((a != b).sum())
        result["presets"][preset] = {"symbols": symbols, "differ": differ, "qualities": codec.config.qualities}
        print(f"{preset}: {differ} of {symbols} symbols differ")
    sys.path.insert(0, str(ROOT / "scripts"))
    from provenance import provenance

    from wavelatent.io.files import atomic_write_bytes

    result["provenance"] = provenance("python benchmarks/squash_flips.py", 1)
    result["seconds"] = time.time() - started
    out = ROOT / "results" / "entropy" / "squash_flips.json"
    atomic_write_bytes(out, (json.dumps(result, indent=1) + "\n").encode(), force=True)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
