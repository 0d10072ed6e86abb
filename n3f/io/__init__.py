"""Importers: turn what users have into :class:`n3f.scene.SceneData`."""
