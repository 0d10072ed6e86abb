"""Write a scene's frames as an H.264 mp4, the input of the video -> SfM path.

High quality (CRF 16) so compression artefacts do not dominate feature
matching; ``yuv420p`` for players, which needs even sizes: an odd last
row/column is cropped (not resized), which leaves the intrinsics valid.
"""

from __future__ import annotations

from pathlib import Path

import imageio_ffmpeg
import numpy as np

from n3f.scene_data import SceneData


def write_scene_video(scene: SceneData, path: str | Path, fps: int = 10, crf: int = 16) -> Path:
    """Encode ``scene.frames`` to ``path`` (mp4) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    first = np.asarray(scene.frames[0])
    h, w = first.shape[0] // 2 * 2, first.shape[1] // 2 * 2
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (w, h),
        fps=fps,
        codec="libx264",
        quality=None,
        pix_fmt_out="yuv420p",
        macro_block_size=1,
        output_params=["-crf", str(int(crf)), "-preset", "medium"],
    )
    writer.send(None)
    try:
        for i in range(len(scene.frames)):
            writer.send(np.ascontiguousarray(np.asarray(scene.frames[i])[:h, :w]))
    finally:
        writer.close()
    return path
