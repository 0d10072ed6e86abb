"""The renderer: rays -> samples -> field -> compositing, for training and inference.

Sampling is two-pass and keeps a fixed number of samples per ray (dense
(R, S) tensors, no ragged packing, which is what keeps a CPU fast):

1. proposal: ``n_proposal`` stratified intervals in the space's spacing
   (``SceneSpace.t_from_s``). Fields with a trained coarse model (vanilla
   NeRF) evaluate it with gradients and it is supervised; with
   ``proposal="grid"`` (the ``grid`` field's default) the densities are looked
   up in an occupancy grid of the field (:mod:`n3f.render.occupancy`, refreshed
   by :meth:`Renderer.update_occupancy` during training); other fields
   evaluate their own density without gradients (no colour/feature heads, no
   backward). Renders with a density modifier or a stream selection use the
   field's density, since the grid knows neither.
2. fine: ``n_importance`` samples drawn from the (dilated) proposal weights,
   plus either the proposal points (NeRF's union) or ``n_uniform`` fresh
   stratified samples that keep exploring empty-looking space. Only these
   are evaluated with gradients and composited into the outputs.

Editing hooks: ``density_modifier(world_points, field_outputs) -> factor`` is
multiplied into the density (and per-stream densities) in both passes. It is
how later stages zero density where features match a query (object removal)
or keep only one object (segmentation / amodal rendering).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import Tensor, nn

from n3f.fields.base import OUTPUTS, Field, Samples
from n3f.fusion.volume import FeatureVolume
from n3f.render.background import BackgroundModel
from n3f.render.composite import composite
from n3f.render.occupancy import OccupancyGrid
from n3f.render.pose_offsets import PoseOffsets
from n3f.render.rays import RayBundle, camera_rays
from n3f.render.sampling import dilate_weights, sample_pdf, stratified_s
from n3f.render.settings import BACKGROUNDS, SamplerConfig
from n3f.render.space import SceneSpace

__all__ = ["BACKGROUNDS", "DensityModifier", "Renderer", "SamplerConfig", "default_chunk"]


def default_chunk(device: torch.device) -> int:
    """Rays per inference forward pass.

    Each layer's activations are rays x ~100 samples x 64 channels. On a CPU,
    4096 rays make that ~100 MB per tensor, freshly paged in at every layer;
    512 rays stay in cache and render a frame about 3x faster (bench/NOTES.md).
    A GPU wants large batches instead.
    """
    return 16384 if device.type == "cuda" else 512


DensityModifier = Callable[[Tensor, dict[str, Tensor]], Tensor]
"""(world points (P, 3), field outputs at them) -> (P,) factor multiplied into density.

A modifier may have a ``support(world) -> (P,) bool`` attribute: outside it the factor is 0
whatever the field outputs, so the renderer does not evaluate the field there (the density is
0, the other outputs 0 and weightless). Keeping only an object's region uses it.
"""


class Renderer(nn.Module):
    """A field together with its scene space and sampler; everything that renders goes through it."""

    def __init__(self, field: Field, space: SceneSpace, sampler: SamplerConfig | None = None, background: str = "learned",
                 pose_offsets: PoseOffsets | None = None):
        super().__init__()
        self.pose_offsets = pose_offsets  # learned corrections of the training cameras (camera refinement)
        self.fused: FeatureVolume | None = None  # training-free fused features replacing the field's (n3f.fusion)
        if background not in BACKGROUNDS:
            raise ValueError(f"background '{background}' unknown; one of {BACKGROUNDS}")
        self.field = field
        self.space = space
        self.sampler = sampler or SamplerConfig.for_field(field)
        self.background_kind = background
        self.background = BackgroundModel(field.feature_dim) if background == "learned" else None
        cfg = self.sampler
        self.occupancy = (
            OccupancyGrid(cfg.grid_resolution, cfg.grid_decay, cfg.grid_fraction) if cfg.proposal == "grid" else None
        )
        if self.occupancy is not None and not field.world_density:
            raise ValueError(f"field '{field.name}' has camera-frame parts: its density cannot be gridded (proposal 'grid')")

    @torch.no_grad()
    def update_occupancy(self, step: int, generator: torch.Generator | None = None) -> bool:
        """Refresh the occupancy grid at training step ``step``: a full fill at the first call
        from ``grid_warmup`` on, then ``grid_fraction`` of the cells every ``grid_update_every``
        steps; True when it was refreshed."""
        grid = self.occupancy
        if grid is None or step < self.sampler.grid_warmup or (grid.ready and step % self.sampler.grid_update_every != 0):
            return False
        dev = grid.density.device

        def density(points: Tensor) -> Tensor:
            n = len(points)
            samples = Samples(points, torch.zeros(n, 3, device=dev), torch.zeros(n, dtype=torch.long, device=dev))
            return self.field.density(samples)

        grid.update(density, generator)
        return True

    def feature_parameters(self) -> list[nn.Parameter]:
        """Parameters of every feature head (field and background): trained first in distillation."""
        extra = self.background.feature_parameters() if self.background is not None else []
        return [*self.field.feature_parameters(), *extra]

    def _background(self, rays: RayBundle, outputs: tuple[str, ...], override: dict[str, Any] | None) -> dict[str, Any]:
        if override is not None:
            return override
        if self.background is None:
            res: dict[str, Any] = {"rgb": 1.0} if self.background_kind == "white" else {}
        else:
            res = {k: v.float() for k, v in self.background(rays.directions, outputs).items()}
        if self.fused is not None and "features" in outputs:
            res["features"] = self.fused.background.float().expand(len(rays), -1)
        return res

    def _call_field(self, samples: Samples, outputs: Iterable[str], call: Callable[..., dict[str, Tensor]] | None = None,
                    **kw: Any) -> dict[str, Tensor]:
        """The field's outputs at ``samples`` (``call``: the field, or e.g. its ``at_points``); with fused
        features, ``features`` come from the volume."""
        outputs, call = tuple(outputs), call or self.field
        if self.fused is None or "features" not in outputs:
            return call(samples, outputs=outputs, **kw)
        out = call(samples, outputs=tuple(o for o in outputs if o != "features"), **kw)
        out["features"] = self.fused.features(self.field.feature_streams(samples, out))
        return out

    # -- samples -----------------------------------------------------------
    def _samples(self, rays: RayBundle, t: Tensor) -> tuple[Samples, Tensor]:
        r, s = t.shape
        world = rays.origins[:, None, :] + t[..., None] * rays.directions[:, None, :]
        world = world.reshape(r * s, 3)
        samples = Samples(
            positions=self.space.to_unit(world),
            directions=rays.directions[:, None, :].expand(r, s, 3).reshape(r * s, 3),
            frame=rays.frame[:, None].expand(r, s).reshape(r * s),
            cam_positions=(t[..., None] * rays.dirs_cam[:, None, :]).reshape(r * s, 3),
        )
        return samples, world

    @torch.no_grad()
    def _grid_density(self, rays: RayBundle, t_edges: Tensor, deltas: Tensor) -> Tensor:
        """Proposal densities (R, S) from the occupancy grid, read at the middle (in the cube) of
        each interval and capped so that one grid cell adds at most ``grid_cell_tau`` of optical
        depth: the grid holds each cell's *max* density (pooled over neighbours), so uncapped the
        first occupied cell, up to two cells before the surface, would take every importance sample."""
        r, s1 = t_edges.shape
        world = rays.origins[:, None, :] + t_edges[..., None] * rays.directions[:, None, :]
        edges = self.space.to_unit(world.reshape(-1, 3)).view(r, s1, 3)
        step = edges[:, 1:] - edges[:, :-1]
        sigma = self.occupancy.lookup((edges[:, :-1] + 0.5 * step).reshape(-1, 3)).view(r, s1 - 1)
        cells = step.norm(dim=-1) * (0.5 * self.occupancy.resolution)
        return torch.minimum(sigma, self.sampler.grid_cell_tau * cells / deltas.clamp_min(1e-12))

    def _t(self, rays: RayBundle, s: Tensor) -> Tensor:
        return self.space.t_from_s(s, rays.near, rays.far, rays.origins, rays.directions)

    def _field(self, samples: Samples, world: Tensor, outputs: Iterable[str], coarse: bool,
               modifier: DensityModifier | None, streams: Iterable[str] | None) -> dict[str, Tensor]:
        kw = {}
        if streams is not None:
            if not self.field.streams:
                raise ValueError(f"field '{self.field.name}' has no streams to select")
            kw["streams"] = tuple(streams)
        support = getattr(modifier, "support", None)
        if support is not None:  # samples outside it get factor 0 whatever the field says there: skip them
            inside = support(world)
            if not bool(inside.all()):
                idx = inside.nonzero().squeeze(1)
                sub = self._call_field(samples.subset(idx), outputs, coarse=coarse, **kw)
                factor = modifier(world[idx], sub).to(sub["density"].dtype)
                out = {}
                for k, v in sub.items():
                    full = v.new_zeros((len(world), *v.shape[1:]))
                    full[idx] = v * factor.view(-1, *([1] * (v.dim() - 1))) if (k == "density" or k.startswith("density_")) else v
                    out[k] = full
                return out
        out = self._call_field(samples, outputs, coarse=coarse, **kw)
        if modifier is not None:
            factor = modifier(world, out).to(out["density"].dtype)
            for k in list(out):
                if k == "density" or k.startswith("density_"):
                    out[k] = out[k] * factor
        return out

    def _composite(self, out: dict[str, Tensor], r: int, s: int, deltas: Tensor, t: Tensor,
                   outputs: Iterable[str], background: dict[str, Any] | None) -> dict[str, Tensor]:
        channels = {k: out[k].float().view(r, s, -1) for k in (*outputs, "beta") if k in out}
        res = composite(out["density"].float().view(r, s), deltas, channels, t=t, background=background)
        return res

    # -- rays --------------------------------------------------------------
    def render_rays(
        self,
        rays: RayBundle,
        outputs: Iterable[str] = OUTPUTS,
        train: bool = False,
        generator: torch.Generator | None = None,
        density_modifier: DensityModifier | None = None,
        streams: Iterable[str] | None = None,
        background: dict[str, Any] | None = None,
        keep_samples: bool = False,
    ) -> dict[str, Tensor]:
        """Render a ray bundle.

        ``background`` overrides the renderer's background (name -> value,
        e.g. ``{"rgb": 1.0}``; ``{}`` for none).

        Returns ``rgb`` (R, 3), ``features`` (R, C), ``depth`` (R, 1),
        ``opacity`` (R, 1), ``weights`` (R, S), ``t`` (R, S) and, where the
        field has them, ``beta`` (R, 1; NeuralDiff, with its ``beta_min``: the field's
        :meth:`~n3f.fields.base.Field.adjust_render` hook). In
        training mode also ``coarse`` (the NeRF coarse model's render) and
        ``losses`` (field regularisers) and ``s_edges`` (normalised interval edges of the
        fine samples, for the distortion loss). ``keep_samples`` adds the fine ``samples``
        (:class:`~n3f.fields.base.Samples`, ray-major) and the field's per-sample outputs ``field_out``.
        """
        outputs = tuple(outputs)
        cfg = self.sampler
        r = len(rays)
        dev = rays.origins.device
        result: dict[str, Any] = {}
        background = self._background(rays, outputs, background)

        # 1. proposal
        s_edges = stratified_s(r, cfg.n_proposal, train, generator, dev)
        t_edges = self._t(rays, s_edges)
        s_mid = 0.5 * (s_edges[:, 1:] + s_edges[:, :-1])
        t_mid = 0.5 * (t_edges[:, 1:] + t_edges[:, :-1])
        deltas = t_edges[:, 1:] - t_edges[:, :-1]
        use_grid = self.occupancy is not None and self.occupancy.ready and density_modifier is None and streams is None
        if not use_grid:
            samples, world = self._samples(rays, t_mid)
        if use_grid:  # no field evaluation: densities from the occupancy grid
            weights = composite(self._grid_density(rays, t_edges, deltas), deltas, {})["weights"]
        elif self.field.has_coarse:
            out_c = self._field(samples, world, outputs, True, density_modifier, streams)
            comp_c = self._composite(out_c, r, cfg.n_proposal, deltas, t_mid, outputs, background)
            result["coarse"] = comp_c
            weights = comp_c["weights"].detach()
        else:
            with torch.no_grad():
                if density_modifier is None and streams is None:
                    sigma = self.field.density(samples)
                else:
                    need = ("features",) if density_modifier is not None else ()
                    sigma = self._field(samples, world, need, False, density_modifier, streams)["density"]
                weights = composite(sigma.float().view(r, -1), deltas, {})["weights"]
        if cfg.dilate:
            weights = dilate_weights(weights)

        # 2. fine
        s_fine = [sample_pdf(s_edges, weights, cfg.n_importance, train, generator, cfg.pdf_floor)]
        if cfg.include_proposal:
            s_fine.append(s_mid)
        elif cfg.n_uniform > 0:
            e = stratified_s(r, cfg.n_uniform, train, generator, dev)
            s_fine.append(0.5 * (e[:, 1:] + e[:, :-1]))
        s_all = torch.cat(s_fine, dim=-1).sort(dim=-1).values.detach()
        s_e = torch.cat([torch.zeros_like(s_all[:, :1]), 0.5 * (s_all[:, 1:] + s_all[:, :-1]), torch.ones_like(s_all[:, :1])], -1)
        t_e = self._t(rays, s_e)
        t_all = self._t(rays, s_all)
        samples, world = self._samples(rays, t_all)
        out = self._field(samples, world, outputs, False, density_modifier, streams)
        comp = self._composite(out, r, s_all.shape[1], t_e[:, 1:] - t_e[:, :-1], t_all, outputs, background)
        comp = self.field.adjust_render(comp)
        comp["t"] = t_all
        result.update(comp)
        if keep_samples:
            result["samples"], result["field_out"] = samples, out
        if train:
            result["losses"] = self.field.extra_losses(out, comp["weights"])
            result["s_edges"] = s_e  # normalised interval edges of the fine samples (distortion loss)
        return result

    @torch.no_grad()
    def render_rays_chunked(self, rays: RayBundle, chunk: int | None = None, **kw: Any) -> dict[str, Tensor]:
        """Render many rays in bounded memory; returns per-ray outputs on the CPU.

        ``chunk`` rays go through the field at once (None: :func:`default_chunk` for the device).
        """
        chunk = chunk or default_chunk(rays.origins.device)
        keep = ("rgb", "features", "depth", "opacity", "beta")
        parts: dict[str, list[Tensor]] = {}
        for i in range(0, len(rays), chunk):
            out = self.render_rays(rays[i : i + chunk], train=False, **kw)
            for k in keep:
                if k in out:
                    parts.setdefault(k, []).append(out[k].float().cpu())
        return {k: torch.cat(v) for k, v in parts.items()}

    # -- cameras -----------------------------------------------------------
    @torch.no_grad()
    def render_camera(
        self,
        c2w: np.ndarray | Tensor,
        intrinsics: np.ndarray | Tensor,
        height: int,
        width: int,
        depth_bounds: tuple[float, float] | np.ndarray,
        frame: int = 0,
        chunk: int | None = None,
        downscale: int = 1,
        **kw: Any,
    ) -> dict[str, np.ndarray]:
        """Render a whole image from any (stored or novel) camera.

        ``frame`` selects the time/appearance code (the nearest stored frame for
        a novel view). Returns numpy arrays (H', W', C) with H' = height // downscale.
        """
        dev = next(self.field.parameters()).device
        rays = camera_rays(c2w, intrinsics, height, width, depth_bounds, frame, downscale).to(dev)
        out = self.render_rays_chunked(rays, chunk=chunk, **kw)
        h, w = height // downscale, width // downscale
        return {k: v.view(h, w, -1).numpy() for k, v in out.items()}

    def stored_pose(self, c2w: np.ndarray, index: int) -> np.ndarray:
        """Camera-to-world of stored frame ``index`` (its stored pose ``c2w``), with the correction
        camera refinement learned for it, if any."""
        if self.pose_offsets is None:
            return np.asarray(c2w)
        return self.pose_offsets.corrected(np.asarray(c2w), index)

    def render_frame(self, store, index: int, **kw: Any) -> dict[str, np.ndarray]:
        """Render stored frame ``index`` of a :class:`~n3f.scene.SceneStore` from its own (refined) camera."""
        h, w = store.image_size
        c2w = self.stored_pose(store.c2w[index], index)
        return self.render_camera(c2w, store.intrinsics[index], h, w, store.bounds[index], frame=index, **kw)

    # -- points ------------------------------------------------------------
    @torch.no_grad()
    def query(
        self,
        points: np.ndarray | Tensor,
        frame: int = 0,
        outputs: Iterable[str] = ("features",),
        chunk: int = 65536,
        direction: tuple[float, float, float] = (0.0, 0.0, 1.0),
    ) -> dict[str, Tensor]:
        """Field values (``density`` always, plus ``outputs``) at world points (P, 3).

        For 3D segmentation and editing: e.g. threshold the cosine of
        ``features`` to a query and use it in a density modifier. Bare world points
        have no camera, so the field leaves out what lives in camera coordinates
        (:meth:`n3f.fields.base.Field.at_points`: NeuralDiff's actor stream).
        """
        dev = next(self.field.parameters()).device
        pts = torch.as_tensor(np.asarray(points) if not isinstance(points, Tensor) else points, dtype=torch.float32)
        parts: dict[str, list[Tensor]] = {}
        if len(pts) == 0:  # e.g. no opaque pixel in a barely trained field: empty results, not a missing key
            pts = torch.zeros((0, 3), dtype=torch.float32)
        for i in range(0, max(len(pts), 1), chunk):
            p = pts[i : i + chunk].to(dev)
            n = len(p)
            samples = Samples(
                positions=self.space.to_unit(p),
                directions=torch.tensor(direction, dtype=p.dtype, device=dev).expand(n, 3),
                frame=torch.full((n,), frame, dtype=torch.long, device=dev),
                cam_positions=None,
            )
            out = self._call_field(samples, outputs, call=self.field.at_points)
            for k, v in out.items():
                parts.setdefault(k, []).append(v.float().cpu())
        return {k: torch.cat(v) for k, v in parts.items()}
