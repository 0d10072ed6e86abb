"""The command line turns user errors into one line and exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys


def _n3f(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "n3f.cli", *args], capture_output=True, text=True, timeout=120)


def test_unknown_option_is_one_clear_line(tmp_path, goldcape):
    spec = {"name": "g", "source": "llff", "path": str(goldcape), "options": {"imagez": "images_8"}}
    result = _n3f("scene", "--spec", json.dumps(spec), "--out", str(tmp_path / "g.zarr"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "option(s) ['imagez'] not understood" in result.stderr and "'images'" in result.stderr
    assert not (tmp_path / "g.zarr").exists()


def test_missing_data_path(tmp_path):
    spec = {"name": "g", "source": "llff", "path": str(tmp_path / "nowhere")}
    result = _n3f("scene", "--spec", json.dumps(spec), "--out", str(tmp_path / "g.zarr"))
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_unknown_source(tmp_path):
    result = _n3f("scene", "--spec", json.dumps({"name": "g", "source": "lidar"}), "--out", str(tmp_path / "g.zarr"))
    assert result.returncode == 2 and "unknown scene source 'lidar'" in result.stderr


def test_missing_video(tmp_path):
    result = _n3f("frames", "--video", str(tmp_path / "v.mp4"), "--out", str(tmp_path / "frames"))
    assert result.returncode == 2 and "video not found" in result.stderr
