"""Uses of fused features, each scored against ground truth where it exists.

One module per task, each with its protocol and driver: :mod:`~n3f.tasks.retrieval`
(2D object retrieval), :mod:`~n3f.tasks.segment3d`, :mod:`~n3f.tasks.editing`
(object removal) and :mod:`~n3f.tasks.amodal`. The three 3D tasks select the
field's samples through :mod:`~n3f.tasks.selection` (settings:
:class:`~n3f.tasks.settings.SelectionSettings`) and share loading, ground
truth and writers in :mod:`~n3f.tasks.common`; defaults are in
:mod:`~n3f.tasks.defaults`. The scores are :mod:`n3f.metrics`; reports and
tables built from the outputs are :mod:`n3f.reporting`.
"""
