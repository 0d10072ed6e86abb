"""Importers: turn what users have into a :class:`n3f.scene_data.SceneData`.

One module per format; each registered importer has the signature
``(path, *, name, **options)`` and is listed in :data:`n3f.scene.sources.SOURCES`.
Nothing here imports :mod:`n3f.scene`: the store depends on the importers, not
the reverse.
"""
