"""Synthetic scenes: masks agree with the analytic geometry, determinism, dynamics, IO.

The ray/primitive intersections below are written independently of
``n3f.synthetic.geometry`` and read only the JSON in ``attrs["geometry"]``,
so they check what later stages will rely on, not the renderer against itself.
"""

from __future__ import annotations

import json

import imageio_ffmpeg
import numpy as np
import pytest

from n3f.scene import store as scene_store
from n3f.synthetic import make_scene, render_view, spec_from_attrs, write_scene_video

W, H = 64, 48


@pytest.fixture(scope="module")
def static_scene():
    return make_scene("syn_static", "static", n_frames=12, width=W, height=H, seed=3, supersample=1)


@pytest.fixture(scope="module")
def dynamic_scene():
    return make_scene("syn_dynamic", "dynamic", n_frames=40, width=W, height=H, seed=1, supersample=1)


# --- independent analytic intersections (world units, unit directions) -------------------


def _t_sphere(o, d, g):
    oc = o - np.asarray(g["center"])
    b = d @ oc
    disc = b * b - (oc @ oc - g["radius"] ** 2)
    if disc < 0:
        return np.inf
    for t in (-b - np.sqrt(disc), -b + np.sqrt(disc)):
        if t > 1e-6:
            return t
    return np.inf


def _t_box(o, d, g):
    r = np.asarray(g["rotation"])
    ol, dl = r.T @ (o - np.asarray(g["center"])), r.T @ d
    he = np.asarray(g["half_extents"])
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (-he - ol) / dl, (he - ol) / dl
    lo, hi = np.nanmax(np.minimum(t1, t2)), np.nanmin(np.maximum(t1, t2))
    if hi < max(lo, 1e-6):
        return np.inf
    return lo if lo > 1e-6 else hi


def _t_cylinder(o, d, g):
    base, r, h = np.asarray(g["base_center"]), g["radius"], g["height"]
    rel = o - base
    ts = []
    a = d[0] ** 2 + d[1] ** 2
    if a > 1e-12:
        b = rel[0] * d[0] + rel[1] * d[1]
        c = rel[0] ** 2 + rel[1] ** 2 - r * r
        disc = b * b - a * c
        if disc >= 0:
            for t in ((-b - np.sqrt(disc)) / a, (-b + np.sqrt(disc)) / a):
                if 0 <= rel[2] + t * d[2] <= h:
                    ts.append(t)
    if abs(d[2]) > 1e-12:
        for zc in (0.0, h):
            t = (zc - rel[2]) / d[2]
            p = rel + t * d
            if p[0] ** 2 + p[1] ** 2 <= r * r:
                ts.append(t)
    ts = [t for t in ts if t > 1e-6]
    return min(ts) if ts else np.inf


def _object_at(g, frame):
    """The object's JSON with its pose at ``frame`` (moving objects translated)."""
    g = dict(g)
    if g.get("moving") and "offsets_per_frame" in g:
        off = np.asarray(g["offsets_per_frame"][frame])
        key = "base_center" if g["type"] == "cylinder" else "center"
        g[key] = list(np.asarray(g[key]) + off)
    return g


def _t_object(o, d, g):
    return {"sphere": _t_sphere, "box": _t_box, "cylinder": _t_cylinder}[g["type"]](o, d, g)


def _ray(scene, frame, u, v):
    k, c2w = scene.intrinsics[frame], scene.c2w[frame]
    d_cam = np.array([(u + 0.5 - k[0, 2]) / k[0, 0], (v + 0.5 - k[1, 2]) / k[1, 1], 1.0])
    d = c2w[:3, :3] @ d_cam
    return c2w[:3, 3].copy(), d / np.linalg.norm(d)


def _ray_segment_distance(o, d, p0, p1, n=400):
    """Smallest distance between the half-line and points sampled on the segment (>= true)."""
    pts = p0[None] + np.linspace(0, 1, n)[:, None] * (p1 - p0)[None]
    t = np.maximum((pts - o) @ d, 0.0)
    return np.linalg.norm(pts - o - t[:, None] * d, axis=1).min(), np.linalg.norm(p1 - p0) / (n - 1)


def _check_masks_against_geometry(scene, n_samples=150):
    rng = np.random.default_rng(0)
    ann = scene.annotations
    geometry = scene.attrs["geometry"]
    by_name = {g["name"]: g for g in geometry}
    checked = 0
    for row, frame in enumerate(ann.frame_indices):
        objs = [_object_at(g, frame) for g in geometry if g["role"] == "object"]
        actor = by_name.get("actor")
        seg = actor["per_frame"][frame] if actor else None
        pixels = [tuple(p) for p in rng.integers(0, [H, W], size=(n_samples, 2))]
        for k in range(len(ann.object_names)):  # plus samples inside every modal mask
            vs, us = np.nonzero(ann.modal[row, k])
            pick = rng.permutation(len(vs))[:20]
            pixels += list(zip(vs[pick], us[pick]))
        for v, u in pixels:
            o, d = _ray(scene, frame, u, v)
            ts = np.array([_t_object(o, d, g) for g in objs])
            for k, g in enumerate(objs):  # amodal = the ray meets the object at all
                assert ann.amodal[row, ann.object_names.index(g["name"])][v, u] == np.isfinite(ts[k])
            visible = [ann.object_names[k] for k in range(len(ann.object_names)) if ann.modal[row, k, v, u]]
            assert len(visible) <= 1
            if seg is not None:
                dist, step = _ray_segment_distance(o, d, np.asarray(seg["p0"]), np.asarray(seg["p1"]))
                if visible == ["actor"]:
                    assert dist <= actor["radius"] + step
                    continue
                assert dist > actor["radius"] * (1 - 1e-9), "an object pixel lies behind the actor"
            elif visible == ["actor"]:
                pytest.fail("actor mask in a frame where the actor is absent")
            if visible:
                k = [g["name"] for g in objs].index(visible[0])
                assert np.isfinite(ts[k]) and ts[k] <= ts.min() + 1e-9, (frame, u, v, visible, ts)
                # The table (z = 0) is not in front of the object either.
                if d[2] < 0:
                    assert ts[k] <= -o[2] / d[2] + 1e-9
            else:  # table or sky: no object in front of the table hit
                t_table = -o[2] / d[2] if d[2] < 0 else np.inf
                p = o + t_table * d if np.isfinite(t_table) else None
                half = scene.attrs["synthetic"]["ground"]["half_size"]
                if p is not None and np.all(np.abs(p[:2]) <= half):
                    assert ts.min() >= t_table - 1e-9
                else:
                    assert not np.isfinite(ts).any()
            checked += 1
    assert checked > 100


def test_static_masks_match_analytic_geometry(static_scene):
    _check_masks_against_geometry(static_scene)


def test_dynamic_masks_match_analytic_geometry(dynamic_scene):
    _check_masks_against_geometry(dynamic_scene, n_samples=60)


@pytest.mark.parametrize("fixture", ["static_scene", "dynamic_scene"])
def test_amodal_contains_modal_and_occlusion_happens(fixture, request):
    ann = request.getfixturevalue(fixture).annotations
    assert ann.modal.shape == ann.amodal.shape
    assert not (ann.modal & ~ann.amodal).any()
    hidden = (ann.amodal & ~ann.modal).sum(axis=(2, 3))
    assert hidden.max() >= 10, "no object is partly occluded in any frame"
    assert ann.modal.any(axis=(0, 2, 3)).all(), "every object is visible somewhere"


def test_scene_contents(static_scene, dynamic_scene):
    s = static_scene
    assert s.layout == "object" and not s.dynamic
    assert np.asarray(s.frames).shape == (12, H, W, 3) and np.asarray(s.frames).dtype == np.uint8
    types = {g["type"] for g in s.attrs["geometry"]}
    assert {"sphere", "box", "cylinder"} <= types
    twins = s.attrs["synthetic"]["distractors"]
    assert len(twins) == 1
    (twin, ref), = twins.items()
    g = {x["name"]: x for x in s.attrs["geometry"]}
    assert g[twin]["type"] == g[ref]["type"] and g[twin]["texture"]["kind"] == g[ref]["texture"]["kind"]
    assert np.abs(np.subtract(g[twin]["texture"]["color_a"], g[ref]["texture"]["color_a"])).max() <= 0.051
    json.dumps(s.attrs)  # attrs must be JSON-serialisable for the store
    assert (s.bounds[:, 0] > 0).all() and (s.bounds[:, 1] > s.bounds[:, 0]).all()
    d = dynamic_scene
    assert d.layout == "egocentric" and d.dynamic
    np.testing.assert_array_equal(d.timestamps, np.arange(40))
    assert d.annotations.object_names[-1] == "actor" == d.attrs["synthetic"]["actor_names"][0]


def test_deterministic_by_seed():
    a = make_scene("a", "static", n_frames=3, width=40, height=30, seed=5)
    b = make_scene("b", "static", n_frames=3, width=40, height=30, seed=5)
    c = make_scene("c", "static", n_frames=3, width=40, height=30, seed=6)
    assert np.asarray(a.frames).tobytes() == np.asarray(b.frames).tobytes()
    np.testing.assert_array_equal(a.annotations.modal, b.annotations.modal)
    assert a.attrs == b.attrs
    assert np.asarray(a.frames).tobytes() != np.asarray(c.frames).tobytes()
    assert a.attrs["geometry"] != c.attrs["geometry"]


def test_moved_object_moves_and_static_ones_do_not(dynamic_scene):
    spec = spec_from_attrs(dynamic_scene.attrs)
    moving = dynamic_scene.attrs["synthetic"]["moving_objects"]
    assert len(moving) >= 1
    names = dynamic_scene.annotations.object_names
    # Look at the table from a fixed camera at the first and last time: only movers change.
    from n3f.synthetic.cameras import look_at

    c2w = look_at(np.array([0.0, -2.5, 3.0]), np.array([0.0, 0.2, 0.0]))
    early = render_view(spec, c2w, spec.K, H, W, frame_time=0.0, exclude=("actor",), supersample=1)
    late = render_view(spec, c2w, spec.K, H, W, frame_time=39.0, exclude=("actor",), supersample=1)
    for k, name in enumerate(names[:-1]):
        a, b = early["amodal"][k], late["amodal"][k]
        if name in moving:
            ca = np.argwhere(a).mean(axis=0)
            cb = np.argwhere(b).mean(axis=0)
            assert np.linalg.norm(ca - cb) > 2.0, name
        else:
            np.testing.assert_array_equal(a, b)
    g = {x["name"]: x for x in dynamic_scene.attrs["geometry"]}
    for name in moving:
        offs = np.asarray(g[name]["offsets_per_frame"])
        assert np.linalg.norm(offs[-1] - offs[0]) > 0.3


def test_actor_is_fixed_to_the_camera(dynamic_scene):
    s = dynamic_scene
    actor = {x["name"]: x for x in s.attrs["geometry"]}["actor"]
    present = [i for i, f in enumerate(actor["per_frame"]) if f is not None]
    assert 0 < len(present) < s.c2w.shape[0], "the actor is in part of the frames only"
    k = s.annotations.object_names.index("actor")
    for i, f in enumerate(actor["per_frame"]):
        row = list(s.annotations.frame_indices).index(i)
        if f is None:
            assert not s.annotations.modal[row, k].any()
            continue
        for end in ("p0", "p1"):  # camera-frame and world-frame descriptions agree
            world = s.c2w[i, :3, :3] @ np.asarray(f[end + "_camera"]) + s.c2w[i, :3, 3]
            np.testing.assert_allclose(world, f[end], atol=1e-9)
    # Away from its entry/exit, the hand barely moves in the image while the camera moves.
    enter = actor["actor"]["enter"]
    intervals = actor["actor"]["intervals"]
    steady = [i for i in present if all(not (a <= i < a + enter or b - enter < i <= b) for a, b in intervals)]
    assert len(steady) >= 5
    cam = np.array([actor["per_frame"][i]["p1_camera"] for i in steady])
    world = np.array([actor["per_frame"][i]["p1"] for i in steady])
    assert np.ptp(cam, axis=0).max() < 0.1
    assert np.ptp(world, axis=0).max() > 2 * np.ptp(cam, axis=0).max()
    rows = [list(s.annotations.frame_indices).index(i) for i in steady]
    cents = np.array([np.argwhere(s.annotations.modal[r, k]).mean(axis=0) for r in rows])
    assert np.ptp(cents, axis=0).max() < 0.25 * W


def test_render_view_reproduces_frames_and_removes_objects(static_scene):
    s = static_scene
    spec = spec_from_attrs(s.attrs)
    out = render_view(spec, s.c2w[4], s.intrinsics[4], H, W)
    np.testing.assert_array_equal(out["rgb"], np.asarray(s.frames)[4])
    np.testing.assert_array_equal(out["modal"], s.annotations.modal[4])
    names = s.annotations.object_names
    k = int(np.argmax(s.annotations.modal[4].sum(axis=(1, 2))))
    removed = render_view(spec, s.c2w[4], s.intrinsics[4], H, W, exclude=(names[k],))
    assert not removed["amodal"][k].any() and not removed["modal"][k].any()
    hole = out["modal"][k]
    assert np.abs(removed["rgb"][hole].astype(int) - out["rgb"][hole].astype(int)).mean() > 5
    others = np.ones(len(names), bool)
    others[k] = False
    assert (removed["modal"][others] >= out["modal"][others]).all()  # disocclusion only adds pixels
    np.testing.assert_array_equal(removed["amodal"][others], out["amodal"][others])
    assert np.isfinite(out["depth"]).any()


def test_forward_layout_and_bad_arguments():
    s = make_scene("fwd", "static", n_frames=4, width=32, height=24, layout="forward", supersample=1)
    assert s.layout == "forward"
    z = s.c2w[:, :3, 2]
    assert (z @ z.mean(axis=0) / np.linalg.norm(z.mean(axis=0)) > 0.95).all()  # roughly one direction
    with pytest.raises(ValueError):
        make_scene("x", "dynamic", layout="object")
    with pytest.raises(ValueError):
        make_scene("x", "moving")


def test_store_round_trip(dynamic_scene, tmp_path):
    s = dynamic_scene
    path = scene_store.write_scene(s, tmp_path / "scene.zarr", progress=False)
    st = scene_store.SceneStore(path)
    assert st.n_frames == 40 and st.image_size == (H, W)
    np.testing.assert_array_equal(np.asarray(st.frames[:]), np.asarray(s.frames))
    assert st.object_names == s.annotations.object_names
    np.testing.assert_array_equal(st.masks(7), s.annotations.modal[7])
    np.testing.assert_array_equal(st.masks(7, "amodal"), s.annotations.amodal[7])
    assert st.attrs["geometry"] == json.loads(json.dumps(s.attrs["geometry"]))
    assert st.attrs["synthetic"]["params"] == s.attrs["synthetic"]["params"]
    assert st.attrs["layout"] == "egocentric" and st.attrs["dynamic"] is True
    # Geometry maps into the normalised store frame with to_normalised.
    cams = st.to_normalised(s.c2w[:, :3, 3])
    np.testing.assert_allclose(cams, st.c2w[:, :3, 3], atol=1e-9)


def test_video_writer(static_scene, tmp_path):
    path = write_scene_video(static_scene, tmp_path / "v.mp4", fps=10)
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = reader.__next__()
    assert tuple(meta["size"]) == (W, H)
    frames = [np.frombuffer(f, np.uint8).reshape(H, W, 3) for f in reader]
    assert len(frames) == 12
    err = np.abs(np.stack(frames).astype(int) - np.asarray(static_scene.frames).astype(int)).mean()
    assert err < 8


def test_geometry_json_rebuilds_primitives_and_annotate_every():
    from n3f.synthetic import primitive_from_json

    s = make_scene("sub", "static", n_frames=6, width=32, height=24, seed=2, annotate_every=2, supersample=1)
    np.testing.assert_array_equal(s.annotations.frame_indices, [0, 2, 4])
    assert s.annotations.modal.shape[0] == 3
    for g in s.attrs["geometry"]:
        prim = primitive_from_json(g)
        centre, radius = prim.bounding_sphere()
        assert prim.contains(centre[None])[0]
        assert not prim.contains(centre[None] + [0.0, 0.0, radius * 1.01])[0]
