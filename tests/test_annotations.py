"""Object annotations of real captures: every layout through the llff, colmap, transforms and images sources.

Fixtures written per test: frames with three objects drawn as known
rectangles, their masks in each layout (a folder per object, instance-label
images in 8-bit grey, 16-bit grey and palette PNG, amodal masks), and the bad
inputs a user makes by mistake, each refused with one error naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from n3f.errors import N3FInputError
from n3f.io.annotations import AnnotationPaths, read_annotations
from n3f.io.colmap import import_colmap
from n3f.io.llff import load_llff
from n3f.io.transforms import load_transforms
from n3f.scene import SceneStore, write_scene
from n3f.scene.sources import build_scene
from tests.test_bad_inputs_import import write_llff, write_transforms
from tests.test_colmap import build_model, pinhole

OBJECTS = {"cup": 1, "box": 2, "ball": 7}  # label ids: not contiguous, as exported tools often write them


def boxes(w: int, h: int, frame: int) -> dict[str, tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) of each object in ``frame``; 'ball' is absent from frame 1, the box moves."""
    out = {"cup": (0, 0, w // 4, h // 2), "box": (w // 2 + frame % 2, h // 4, 3 * w // 4 + frame % 2, h // 2),
           "ball": (w // 4, 3 * h // 4, w // 2, h)}
    if frame == 1:
        del out["ball"]
    return out


def expected(w: int, h: int, frame: int, name: str) -> np.ndarray:
    m = np.zeros((h, w), bool)
    b = boxes(w, h, frame).get(name)
    if b:
        m[b[1]:b[3], b[0]:b[2]] = True
    return m


def write_folders(folder: Path, stems: list[str], w: int, h: int, skip: tuple[int, ...] = ()) -> Path:
    """<folder>/<object>/<stem>.png for every frame not in ``skip`` where the object is present."""
    for i, stem in enumerate(stems):
        if i in skip:
            continue
        for name in boxes(w, h, i):
            (folder / name).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / name / f"{stem}.png"), expected(w, h, i, name).astype(np.uint8) * 255)
    return folder


def write_labels(folder: Path, stems: list[str], w: int, h: int, mode: str = "L", skip: tuple[int, ...] = (),
                 names: dict | None = None) -> Path:
    """<folder>/<stem>.png instance-label images (mode L, I;16 or P) and objects.json."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, stem in enumerate(stems):
        if i in skip:
            continue
        lab = np.zeros((h, w), np.uint16 if mode == "I;16" else np.uint8)
        for name in boxes(w, h, i):
            lab[expected(w, h, i, name)] = OBJECTS[name] * (300 if mode == "I;16" else 1)
        if mode == "P":
            im = Image.fromarray(lab, mode="P")
            im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [200, 200, 0] * 253)  # DAVIS-like colours
        elif mode == "I;16":
            im = Image.fromarray(lab)
        else:
            im = Image.fromarray(lab, mode="L")
        im.save(folder / f"{stem}.png")
    scale = 300 if mode == "I;16" else 1
    (folder / "objects.json").write_text(json.dumps(names if names is not None else
                                                    {str(v * scale): k for k, v in OBJECTS.items()}))
    return folder


def check(ann, n_frames: int, w: int, h: int, annotated: list[int]) -> None:
    assert sorted(ann.object_names) == sorted(OBJECTS)
    assert ann.frame_indices.tolist() == annotated
    assert ann.modal.shape == (len(annotated), 3, h, w)
    for row, f in enumerate(annotated):
        for k, name in enumerate(ann.object_names):
            np.testing.assert_array_equal(ann.modal[row, k], expected(w, h, f, name), err_msg=f"{name} frame {f}")


@pytest.mark.parametrize("layout", ["folders", "L", "I;16", "P"])
def test_llff_layouts(tmp_path: Path, layout: str) -> None:
    root = write_llff(tmp_path / "cap")
    stems = [f"img_{i:02d}" for i in range(5)]
    if layout == "folders":
        write_folders(root / "objects", stems, 32, 24, skip=(3,))
        scene = load_llff(root, masks="objects")
    else:
        write_labels(root / "labels", stems, 32, 24, layout, skip=(3,))
        scene = load_llff(root, labels="labels")
    check(scene.annotations, 5, 32, 24, [0, 1, 2, 4])
    summary = scene.attrs["annotations"]
    assert summary["frames_without_annotations"] == 1 and summary["annotated_frames"] == 4
    store = SceneStore(write_scene(scene, tmp_path / "s.zarr", progress=False))
    assert store.object_names == scene.annotations.object_names and store.masks(4, "modal").shape == (3, 24, 32)


def test_masks_follow_resizing_with_nearest_and_amodal_includes_modal(tmp_path: Path) -> None:
    root = write_llff(tmp_path / "cap")
    stems = [f"img_{i:02d}" for i in range(5)]
    write_folders(root / "objects", stems, 32, 24)
    write_folders(root / "full", stems, 32, 24)
    (root / "full" / "cup" / "img_00.png").unlink()  # no amodal mask: its full extent is its visible part
    scene = load_llff(root, masks="objects", amodal_masks="full", max_size=16)
    ann = scene.annotations
    assert ann.modal.shape == (5, 3, 12, 16) and ann.amodal.shape == ann.modal.shape
    small = cv2.resize(expected(32, 24, 2, "box").astype(np.uint8), (16, 12), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(ann.modal[2, ann.object_names.index("box")], small.astype(bool))
    assert (ann.amodal >= ann.modal).all()
    np.testing.assert_array_equal(ann.amodal[0, ann.object_names.index("cup")], ann.modal[0, ann.object_names.index("cup")])


def test_transforms_and_colmap_and_images_sources(tmp_path: Path) -> None:
    tf = write_transforms(tmp_path / "tf")
    stems = [f"img_{i:02d}" for i in range(5)]
    write_labels(tf.parent / "labels", stems, 32, 24, "P")
    scene = load_transforms(tf, labels="labels")
    check(scene.annotations, 5, 32, 24, [0, 1, 2, 3, 4])

    info = build_model(tmp_path / "cm", [pinhole()])
    names = sorted(p.stem for p in info["images"].iterdir())
    write_folders(tmp_path / "cm" / "objects", names, 96, 64)
    scene = import_colmap(tmp_path / "cm", masks="objects")
    check(scene.annotations, 5, 96, 64, [0, 1, 2, 3, 4])

    # images source: the pipeline hands the importer its sfm model; relative paths are beside the photo folder
    entry = {"name": "photos", "source": "images", "path": str(info["images"]), "options": {"masks": "objects"}}
    scene = build_scene(entry, colmap_model=info["model"], images_dir=info["images"])
    check(scene.annotations, 5, 96, 64, [0, 1, 2, 3, 4])


def test_undistorted_frames_warp_their_masks(tmp_path: Path) -> None:
    """A distorted transforms camera: the mask goes through the frame's own undistortion."""
    tf = write_transforms(tmp_path / "tf")
    meta = json.loads(tf.read_text())
    meta.update(k1=-0.4, k2=0.1)
    tf.write_text(json.dumps(meta))
    stems = [f"img_{i:02d}" for i in range(5)]
    write_folders(tf.parent / "objects", stems, 32, 24)
    scene = load_transforms(tf, masks="objects")
    ann = scene.annotations
    cup = ann.modal[2, ann.object_names.index("cup")]  # in the image corner, where distortion is strongest
    raw = expected(32, 24, 2, "cup")
    assert cup.any() and not np.array_equal(cup, raw)  # moved by the undistortion
    assert (cup & raw).sum() > 0.5 * raw.sum()  # but still the cup


def _paths(**kw) -> AnnotationPaths:
    return AnnotationPaths(**kw)


def test_bad_annotations_name_the_file(tmp_path: Path) -> None:
    root = write_llff(tmp_path / "cap")
    stems = [f"img_{i:02d}" for i in range(5)]
    frames = sorted((root / "images").iterdir())

    write_labels(root / "labels", stems, 32, 24)
    Image.fromarray(np.zeros((12, 16), np.uint8), mode="L").save(root / "labels" / "img_02.png")
    with pytest.raises(N3FInputError, match=r"img_02\.png is 16x12 but its frame .*img_02\.png is 32x24"):
        load_llff(root, labels="labels")

    write_labels(root / "lab2", stems, 32, 24, names={"1": "cup", "2": "box", "7": "ball", "9": "ghost"})
    with pytest.raises(N3FInputError, match=r"objects\.json: id\(s\) \[9\] \(ghost\) occur in no label image"):
        load_llff(root, labels="lab2")

    write_folders(root / "objs", stems, 32, 24)
    (root / "objs" / "lamp").mkdir()
    cv2.imwrite(str(root / "objs" / "lamp" / "IMG_9999.png"), np.zeros((24, 32), np.uint8))
    with pytest.raises(N3FInputError, match=r"objs/lamp: none of its 1 masks matches a frame"):
        load_llff(root, masks="objs")

    write_labels(root / "rgb", stems, 32, 24)
    colour = np.zeros((24, 32, 3), np.uint8)
    colour[..., 0] = 128
    Image.fromarray(colour).save(root / "rgb" / "img_01.png")
    with pytest.raises(N3FInputError, match=r"rgb/img_01\.png is a colour \(RGB\) image"):
        load_llff(root, labels="rgb")

    with pytest.raises(N3FInputError, match="either 'masks' or 'labels'"):
        load_llff(root, masks="objs", labels="labels")
    with pytest.raises(N3FInputError, match=r"labels folder not found: .*nowhere"):
        load_llff(root, labels="nowhere")
    bad_name = root / "odd"
    (bad_name / "my cup").mkdir(parents=True)
    cv2.imwrite(str(bad_name / "my cup" / "img_00.png"), np.zeros((24, 32), np.uint8))
    with pytest.raises(N3FInputError, match="object name 'my cup'"):
        read_annotations(_paths(masks="odd"), root, frames, (24, 32), (24, 32))


def test_files_without_a_frame_are_counted(tmp_path: Path, caplog) -> None:
    root = write_llff(tmp_path / "cap")
    stems = [f"img_{i:02d}" for i in range(5)]
    write_folders(root / "objs", stems + ["img_77"], 32, 24)  # img_77 has no frame
    with caplog.at_level("WARNING"):
        scene = load_llff(root, masks="objs")
    assert scene.attrs["annotations"]["modal_files_without_frame"] == 1
    assert "img_77" in caplog.text
    check(scene.annotations, 5, 32, 24, [0, 1, 2, 3, 4])


# -- the IDR/NeuS importer ----------------------------------------------------
def write_idr(root: Path, n: int = 6, seed: int = 0) -> dict:
    """A scan in the NeuS layout from a synthetic scene's exact cameras: cameras_sphere.npz, image/, mask/.

    The world is the synthetic scene's; scale_mat maps a sphere of radius 1.5 around (0.2, -0.1, 0.3)
    onto it, so the imported poses must be the synthetic ones in that sphere's coordinates."""
    from n3f.synthetic import make_scene

    scene = make_scene("idr_src", kind="static", n_frames=n, width=40, height=30, seed=seed)
    (root / "image").mkdir(parents=True)
    (root / "mask").mkdir()
    scale = np.eye(4)
    scale[:3, :3] *= 1.5
    scale[:3, 3] = [0.2, -0.1, 0.3]
    mats = {}
    for i in range(n):
        k4 = np.eye(4)
        k4[:3, :3] = scene.intrinsics[i]
        mats[f"world_mat_{i}"] = k4 @ np.linalg.inv(scene.c2w[i])
        mats[f"scale_mat_{i}"] = scale
        cv2.imwrite(str(root / "image" / f"{i:03d}.png"), cv2.cvtColor(np.asarray(scene.frames[i]), cv2.COLOR_RGB2BGR))
        fg = np.repeat((scene.annotations.modal[i].any(0)[..., None] * 255).astype(np.uint8), 3, -1)
        cv2.imwrite(str(root / "mask" / f"{i:03d}.png"), fg)  # DTU's masks are 3-channel
    np.savez(root / "cameras_sphere.npz", **mats)
    expect = np.linalg.inv(scale)[None] @ scene.c2w
    expect[:, :3, :3] = scene.c2w[:, :3, :3]  # a uniform scale leaves the rotations as they are
    return {"c2w": expect, "K": scene.intrinsics, "mask": scene.annotations.modal.any(1)}


def test_idr_poses_are_exact(tmp_path: Path) -> None:
    from n3f.io.idr import load_idr

    truth = write_idr(tmp_path / "scan")
    scene = load_idr(tmp_path / "scan")
    np.testing.assert_allclose(scene.c2w, truth["c2w"], atol=1e-6)
    np.testing.assert_allclose(scene.intrinsics, truth["K"], atol=1e-6)
    assert scene.annotations.object_names == ["foreground"]
    np.testing.assert_array_equal(scene.annotations.modal[:, 0], truth["mask"])
    assert (scene.bounds[:, 0] < scene.bounds[:, 1]).all() and scene.layout == "object"
    small = build_scene({"name": "scan", "source": "idr", "path": str(tmp_path / "scan"), "options": {"max_size": 20}})
    np.testing.assert_allclose(small.intrinsics[:, 0, 0], truth["K"][:, 0, 0] / 2)
    SceneStore(write_scene(small, tmp_path / "s.zarr", progress=False))


def test_idr_bad_inputs(tmp_path: Path) -> None:
    from n3f.io.idr import load_idr

    write_idr(tmp_path / "scan", n=4)
    cv2.imwrite(str(tmp_path / "scan" / "image" / "004.png"), np.zeros((30, 40, 3), np.uint8))  # one image too many
    with pytest.raises(N3FInputError, match=r"cameras_sphere\.npz lacks \['world_mat_4'\] for the 5 images"):
        load_idr(tmp_path / "scan")
    (tmp_path / "scan" / "image" / "004.png").unlink()
    mats = dict(np.load(tmp_path / "scan" / "cameras_sphere.npz"))
    mats["world_mat_2"] = np.full((4, 4), np.nan)
    np.savez(tmp_path / "scan" / "cameras_sphere.npz", **mats)
    with pytest.raises(N3FInputError, match=r"world_mat_2/scale_mat_2 \(image 002\.png\) must be finite"):
        load_idr(tmp_path / "scan")
    (tmp_path / "scan" / "cameras_sphere.npz").unlink()
    with pytest.raises(N3FInputError, match=r"IDR cameras not found"):
        load_idr(tmp_path / "scan")


def test_epic_sequence_with_instance_labels(tmp_path: Path) -> None:
    from n3f.io.epic import load_epic
    from tests.test_epic import _write_sequence

    _write_sequence(tmp_path)
    seq = tmp_path / "P01_01"
    stems = sorted(p.stem for p in (seq / "frames").iterdir())
    write_labels(seq / "labels", stems, 48, 32, "P", skip=(0,))
    scene = load_epic(seq, labels="labels")
    check(scene.annotations, len(stems), 48, 32, list(range(1, len(stems))))
    assert len(scene.split["query"]) > 0  # the query/gallery split follows the annotated frames
