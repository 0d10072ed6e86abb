"""What a held-out PSNR target asks of a real capture: how sharp a render must be to reach it.

For each real capture in ``../shared/data`` (goldcape, fox; imported as their example configs
do, so the images are the ones training sees) and each held-out frame, this scores the photo
against two degraded copies of *itself*, i.e. renders with perfect geometry and colour that
are only less sharp:

1. Gaussian-blurred with sigma = 0.5 ... 4 px;
2. resampled through a grid whose cells cover ``k`` pixels (area-downscaled by ``k``, then
   bilinearly upscaled): what a field can show whose finest cells are ``k`` pixels wide at
   the object, for the ``k`` of the ``grid`` field's finest plane levels 256 / 512 / 1024
   (``n3f.fields.sizing``: cells per axis that put one cell on one pixel at the scene centre).

Neither is a bound a field must respect (view-dependent effects, floaters and misplaced
geometry cost more; a field's bilinear cells are not image-aligned), but together they say
which targets need pixel-scale detail. Nothing is trained; the run takes seconds.

Writes ``bench/results/sharpness.json`` and ``bench/results/sharpness.md``.

    python bench/bench_sharpness.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from measure import describe, machine, n3f_command, run_measured, write_results  # noqa: E402

from n3f.fields.sizing import pixel_footprint  # noqa: E402
from n3f.render.space import space_for_scene  # noqa: E402
from n3f.scene import SceneStore  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SCENES = {
    "goldcape": {"source": "llff", "path": "goldcape",
                 "options": {"images": "images_8", "masks": "masks_8", "layout": "object"}},
    "fox": {"source": "transforms", "path": "fox/transforms.json", "options": {"max_size": 480, "layout": "object"}},
}
"""As ``config/examples/<name>.yaml`` import them."""
SIGMAS = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
FINEST = (256, 512, 1024)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(-10 * np.log10(max(float(np.mean((a - b) ** 2)), 1e-12)))


def through_cells(img: np.ndarray, k: float) -> np.ndarray:
    """``img`` seen through square cells ``k`` pixels wide: area-downscaled, bilinearly upscaled."""
    h, w = img.shape[:2]
    if k <= 1.0:
        return img
    small = cv2.resize(img, (max(1, round(w / k)), max(1, round(h / k))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def cells_for_one_pixel(scene: SceneStore) -> float:
    """Cells per axis of the field's cube that put one cell on one pixel at the scene centre (the
    ``wanted`` of ``n3f.fields.sizing.grid_defaults`` for a contracted space)."""
    space = space_for_scene(scene.attrs["layout"], scene.c2w, scene.intrinsics, scene.bounds, scene.image_size).to_dict()
    footprint = pixel_footprint(scene.c2w, scene.intrinsics, np.asarray(space["centre"], float))
    return 2.0 * float(np.max(space["radius"])) / footprint / float(space["inner"])


def measure_scene(scene: SceneStore) -> dict:
    frames = scene.split("val")
    wanted = cells_for_one_pixel(scene)
    blur = {s: [] for s in SIGMAS}
    cells = {r: [] for r in FINEST}
    for i in frames:
        img = scene.frame(int(i)).astype(np.float32) / 255
        for s in SIGMAS:
            blur[s].append(psnr(cv2.GaussianBlur(img, (0, 0), s), img))
        for r in FINEST:
            cells[r].append(psnr(through_cells(img, wanted / r), img))
    return {
        "image_size": list(scene.image_size), "val_frames": len(frames), "cells_for_one_pixel": round(wanted, 1),
        "blur_psnr": {str(s): round(float(np.mean(v)), 2) for s, v in blur.items()},
        "cells": {str(r): {"pixels_per_cell": round(wanted / r, 2), "psnr": round(float(np.mean(v)), 2)}
                  for r, v in cells.items()},
    }


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table: the first column left-aligned, the others right-aligned."""
    return ["| " + " | ".join(head) + " |", "| --- | " + " | ".join("---:" for _ in head[1:]) + " |",
            *("| " + " | ".join(r) + " |" for r in rows)]


def markdown(res: dict) -> str:
    scenes = res["scenes"].items()
    blur = table(["scene", "image", "held-out frames", *(f"blur {s} px" for s in SIGMAS)],
                 [[name, f"{sc['image_size'][1]}x{sc['image_size'][0]}", str(sc["val_frames"]),
                   *(f"{sc['blur_psnr'][str(s)]:.2f}" for s in SIGMAS)] for name, sc in scenes])
    cells = table(["scene", "cells for one pixel", *(f"finest {r}: px per cell / PSNR" for r in FINEST)],
                  [[name, f"{sc['cells_for_one_pixel']:.0f}",
                    *(f"{sc['cells'][str(r)]['pixels_per_cell']:.1f} / {sc['cells'][str(r)]['psnr']:.2f}" for r in FINEST)]
                   for name, sc in scenes])
    lines = [
        "# How sharp a render must be: held-out photos against blurred copies of themselves",
        "",
        f"{describe(res['machine'])}. Produced by `bench/bench_sharpness.py`. Mean over each capture's "
        "held-out frames, at the resolution training sees. Nothing is rendered: these are photos scored "
        "against degraded copies of themselves, i.e. renders with perfect geometry that are only blurrier.",
        "",
        *blur,
        "",
        "Through the cells of a finest plane level (`n3f.fields.sizing`: cells per axis of the field's cube for "
        "one cell per pixel at the scene centre; the `grid` field's finest level is capped at 256 / 512 / 1024 "
        "cells for quality `fast` / `default` / `best`):",
        "",
        *cells,
    ]
    return "\n".join(lines) + "\n"


def main() -> dict:
    out: dict = {"machine": machine(), "scenes": {}}
    with tempfile.TemporaryDirectory(prefix="n3f-sharp-") as tmp:
        for name, spec in SCENES.items():
            src = DATA / spec["path"]
            if not src.exists():
                print(f"[bench] {name}: {src} not found, skipped", file=sys.stderr)
                continue
            store = Path(tmp) / f"{name}.zarr"
            full = {"name": name, "source": spec["source"], "path": str(src), "options": spec["options"]}
            run_measured(n3f_command("scene", "--spec", json.dumps(full), "--out", str(store)), Path(tmp) / f"{name}.log")
            out["scenes"][name] = measure_scene(SceneStore(store))
    write_results("sharpness", out, markdown(out))
    return out


if __name__ == "__main__":
    main()
