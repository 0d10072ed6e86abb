"""Extract frames from a video for SfM and the scene store.

Decoding uses the ffmpeg binary shipped with ``imageio-ffmpeg`` (a declared
dependency, so no system ffmpeg is needed). Frames are written as numbered
image files whose number is the frame's index in the video, plus a
``frames.json`` that records each file's timestamp and the parameters used.

Extraction is atomic and idempotent: files go to a temporary sibling folder
renamed into place at the end, and a second call with the same video and
parameters returns the existing files without decoding again.

Timestamps are ``index / fps``: ffmpeg passes every decoded frame through
(no frames are duplicated or dropped to force a constant rate), so for the
usual constant-frame-rate videos this is exact, and for variable-rate phone
videos a close approximation.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np

from n3f.atomic import atomic_dir
from n3f.errors import N3FInputError
from n3f.io.images import resize_factor_for

log = logging.getLogger(__name__)

INDEX_FILE = "frames.json"
FORMAT = "n3f.frames/1"


def _fingerprint(video_path: Path) -> dict:
    st = video_path.stat()
    return {"path": str(video_path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def read_frame_index(out_dir: str | Path) -> dict:
    """The ``frames.json`` written by :func:`extract_frames` (files, times, fps...)."""
    path = Path(out_dir) / INDEX_FILE
    if not path.is_file():
        raise N3FInputError(f"{path} not found; extract the frames with n3f first (extract_frames).")
    return json.loads(path.read_text())


def frame_times(out_dir: str | Path) -> dict[str, float]:
    """Map frame file name -> timestamp in seconds."""
    return {f["file"]: float(f["time"]) for f in read_frame_index(out_dir)["frames"]}


def _probe(video_path: Path) -> tuple[int, float]:
    """(number of frames, fps) of a readable video, or raise naming the file."""
    try:
        reader = imageio_ffmpeg.read_frames(str(video_path))
        meta = next(reader)
        reader.close()
        n_frames, _ = imageio_ffmpeg.count_frames_and_secs(str(video_path))
    except (OSError, RuntimeError, StopIteration, ValueError) as exc:
        raise N3FInputError(
            f"cannot read video {video_path} ({str(exc).strip().splitlines()[-1] if str(exc).strip() else exc!r}); "
            "check that it is a video file ffmpeg can decode (e.g. mp4/h264)."
        ) from exc
    if n_frames <= 0:
        raise N3FInputError(f"video {video_path} contains no frames; re-export it.")
    fps = float(meta.get("fps") or 0.0)
    return int(n_frames), fps


def _select(n_frames: int, every: int | None, target_count: int | None) -> list[int]:
    if every is not None and target_count is not None:
        raise N3FInputError("give either every=k or target_count=n for frame extraction, not both.")
    if target_count is not None:
        if target_count < 1:
            raise N3FInputError(f"target_count must be at least 1, got {target_count}.")
        if target_count >= n_frames:
            return list(range(n_frames))
        # Evenly spaced over the whole video, first and last frame included.
        return sorted({int(round(x)) for x in np.linspace(0, n_frames - 1, target_count)})
    every = 1 if every is None else every
    if every < 1:
        raise N3FInputError(f"every must be a positive integer, got {every}.")
    return list(range(0, n_frames, every))


def extract_frames(
    video_path: str | Path,
    out_dir: str | Path,
    *,
    every: int | None = None,
    target_count: int | None = None,
    max_size: int | None = None,
    image_format: str = "png",
    jpeg_quality: int = 95,
) -> list[Path]:
    """Write selected frames of ``video_path`` into ``out_dir``; return their paths.

    Either every ``every``-th frame, or ``target_count`` frames evenly spaced
    over the video (all frames if neither is given). ``max_size`` caps the
    longer side (area downsampling). Files are named ``frame_<index>.<ext>``
    with the frame's index in the video; ``frames.json`` beside them holds the
    timestamp of each file in seconds.
    """
    video_path = Path(video_path)
    out_dir = Path(out_dir)
    if not video_path.is_file():
        raise N3FInputError(f"video not found: {video_path}")
    ext = image_format.lower().lstrip(".")
    if ext not in ("png", "jpg", "jpeg"):
        raise N3FInputError(f"image_format must be png or jpg, got {image_format!r}.")
    params = {"every": every, "target_count": target_count, "max_size": max_size, "format": ext}

    if out_dir.exists():
        index_path = out_dir / INDEX_FILE
        if index_path.is_file():
            try:
                index = json.loads(index_path.read_text())
            except json.JSONDecodeError:
                index = {}
            files = [out_dir / f["file"] for f in index.get("frames", [])]
            if (
                index.get("video") == _fingerprint(video_path)
                and index.get("params") == params
                and files
                and all(p.is_file() for p in files)
            ):
                return files
        elif any(out_dir.iterdir()):
            raise N3FInputError(
                f"{out_dir} exists and holds files not written by n3f; choose an empty or new folder "
                "for the extracted frames."
            )

    n_frames, fps = _probe(video_path)
    wanted = _select(n_frames, every, target_count)
    wanted_set = set(wanted)
    last = wanted[-1]
    digits = max(6, len(str(n_frames - 1)))

    records: list[dict] = []
    # atomic_dir: the folder appears only when complete, leftovers of a killed extraction are removed.
    with atomic_dir(out_dir) as tmp:
        tmp.mkdir(parents=True)
        reader = imageio_ffmpeg.read_frames(str(video_path))
        meta = next(reader)
        w, h = meta["size"]
        factor = resize_factor_for((h, w), max_size)
        out_wh = (max(1, round(w * factor)), max(1, round(h * factor)))
        write_params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if ext != "png" else []
        for index, raw in enumerate(reader):
            if index in wanted_set:
                img = np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3)
                if out_wh != (w, h):
                    img = cv2.resize(img, out_wh, interpolation=cv2.INTER_AREA)
                name = f"frame_{index:0{digits}d}.{ext}"
                if not cv2.imwrite(str(tmp / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), write_params):
                    raise N3FInputError(f"cannot write {tmp / name}; check disk space and permissions.")
                records.append({"file": name, "index": index, "time": index / fps if fps > 0 else float(index)})
            if index >= last:
                break
        reader.close()
        if not records:
            raise N3FInputError(f"no frames could be decoded from {video_path}; the file may be truncated.")
        if len(records) < len(wanted):
            log.warning(
                "%s: decoded %d of the %d selected frames (the container over-reports its frame count)",
                video_path, len(records), len(wanted),
            )
        index = {
            "format": FORMAT,
            "video": _fingerprint(video_path),
            "params": params,
            "fps": fps,
            "n_video_frames": n_frames,
            "size": list(out_wh),
            "frames": records,
        }
        (tmp / INDEX_FILE).write_text(json.dumps(index, indent=1))
    log.info("extracted %d frames of %s into %s", len(records), video_path, out_dir)
    return [out_dir / r["file"] for r in records]
