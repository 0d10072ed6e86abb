"""The canonical scene representation and its zarr store."""

from n3f.scene.data import Annotations, SceneData
from n3f.scene.store import SceneStore, write_scene

__all__ = ["Annotations", "SceneData", "SceneStore", "write_scene"]
