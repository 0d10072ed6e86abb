"""transforms.json importer on the real fox capture (17 listed frames missing)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from n3f.errors import N3FInputError
from n3f.io.transforms import load_transforms
from n3f.scene import SceneStore, write_scene


def test_fox_skips_missing_frames_and_undistorts(fox, tmp_path, caplog):
    with caplog.at_level("WARNING"):
        scene = load_transforms(fox / "transforms.json", max_size=240)
    assert len(scene.frame_names) == 50
    assert "17 of 67 frames" in caplog.text
    assert len(scene.attrs["import"]["missing_frames"]) == 17
    assert scene.attrs["import"]["undistorted"]
    meta = json.loads((fox / "transforms.json").read_text())
    # undistorted pinhole intrinsics differ from the distorted camera's, scaled to 240 px height
    k = scene.intrinsics[0]
    assert k[0, 0] != pytest.approx(meta["fl_x"] * 240 / 1920, rel=1e-4)
    assert k[0, 0] == pytest.approx(meta["fl_x"] * 240 / 1920, rel=0.1)
    # OpenGL -> OpenCV: the camera's viewing direction is minus the file's z axis
    first = next(f for f in meta["frames"] if f["file_path"].endswith(scene.frame_names[0]))
    np.testing.assert_allclose(scene.c2w[0, :3, 2], -np.asarray(first["transform_matrix"])[:3, 2])
    store = SceneStore(write_scene(scene, tmp_path / "fox.zarr", progress=False))
    assert store.image_size == (240, 135) and store.n_frames == 50
    assert store.frame(0).std() > 10  # real image content, not black borders


def test_missing_file(tmp_path):
    with pytest.raises(N3FInputError, match="transforms file not found"):
        load_transforms(tmp_path / "nope.json")


def test_nan_matrix_names_the_frame(fox, tmp_path):
    meta = json.loads((fox / "transforms.json").read_text())
    meta["frames"] = [dict(f, file_path=str(fox / f["file_path"])) for f in meta["frames"]]
    present = [f for f in meta["frames"] if (fox / f["file_path"]).exists()]
    present[1]["transform_matrix"][0][3] = float("nan")
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(N3FInputError, match="NaN"):
        load_transforms(tmp_path / "transforms.json")


def test_no_focal_length(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    meta = {"w": 4, "h": 4, "frames": [{"file_path": "a.png", "transform_matrix": np.eye(4).tolist()}]}
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(N3FInputError, match="no focal length"):
        load_transforms(tmp_path)
