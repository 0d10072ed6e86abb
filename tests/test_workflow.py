"""The Snakemake workflow parses, lints clean and plans the expected jobs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


from tests.conftest import REPO

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def _snakemake(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run([*SNAKEMAKE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_lint_is_clean():
    result = _snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


def test_dry_run_default_config_plans_every_scene(tmp_path):
    result = _snakemake("-n", "--config", f"results={tmp_path}/results")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rule scene:" in result.stdout or "scene" in result.stdout
    for name in ("toy_static", "toy_kitchen"):
        assert f"{tmp_path}/results/{name}/scene.zarr" in result.stdout


def test_video_scene_plans_frames_sfm_scene(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    cfg = tmp_path / "video.yaml"
    cfg.write_text(
        f"scenes:\n  - name: clip\n    source: video\n    path: {video}\n"
        f"results: {tmp_path}/results\nintermediate: {tmp_path}/intermediate\n"
    )
    result = _snakemake("-n", "--configfile", str(cfg))
    assert result.returncode == 0, result.stdout + result.stderr
    for rule in ("frames", "sfm", "scene"):
        assert f"rule {rule}:" in result.stdout


def test_config_typo_is_rejected_with_the_key(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("scenes:\n  - name: a\n    source: synthetic\n    optionz: {}\n")
    result = _snakemake("-n", "--configfile", str(cfg))
    assert result.returncode != 0
    assert "optionz" in result.stdout + result.stderr
