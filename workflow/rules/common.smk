# Shared helpers: config validation, scene lookup, output paths.
import json
import mimetypes
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

import yaml

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")

# What the schema cannot say (teacher names and the options each teacher uses,
# importer options, training settings' types and ranges) is checked here by the
# same code the stages use, so that a dry run already refuses it.
try:
    from n3f.config_check import check_config
except ImportError as err:  # Snakemake outside n3f's environment: the stages still check at their start
    logger.warning(f"n3f is not importable here ({err}); settings are checked when each stage starts")
else:
    from n3f.errors import N3FInputError

    try:
        check_config(config)
    except N3FInputError as err:
        raise WorkflowError(f"config: {err}") from None

# Rules call the ``n3f`` command. `.venv/bin/snakemake` from a venv that is not
# activated would not find it, so the interpreter's own bin folder is appended
# to PATH: an activated conda/venv environment still comes first.
shell.prefix(f'set -euo pipefail; export PATH="$PATH:{Path(sys.executable).parent}"; ')

# The HTML report offers point clouds as downloads (Python's mimetypes does not know PLY).
mimetypes.add_type("application/x-ply", ".ply")

RESULTS = config["results"]
INTERMEDIATE = config["intermediate"]


def run_tag(results):
    """The results folder as one path component, so that runs into different folders keep separate logs."""
    path = Path(results)
    if path.is_absolute():
        try:
            path = path.resolve().relative_to(Path.cwd().resolve())
        except ValueError:
            pass
    parts = [part for part in path.parts if part != path.anchor and part not in ("..", ".")]
    return "_".join(parts) or "results"


# logs/<run>/<rule>/... and benchmarks/<run>/<rule>/...: never inside results/, never shared by two runs
LOGS = f"logs/{run_tag(RESULTS)}"
BENCHMARKS = f"benchmarks/{run_tag(RESULTS)}"
SCENES = {entry["name"]: entry for entry in config["scenes"]}
if len(SCENES) != len(config["scenes"]):
    raise ValueError("config: scene names must be unique")


TEACHERS = {entry["name"]: entry for entry in config["teachers"]}
# field and task names come from the schema, which tests/test_registries.py holds equal to the
# registries (n3f.fields.FIELDS, n3f.tasks.defaults.TASKS)
_NAMES = yaml.safe_load(Path(workflow.basedir, "workflow/schemas/config.schema.yaml").read_text())["$defs"]
FIELDS = tuple(_NAMES["field"]["enum"])
ALL_TASKS = tuple(_NAMES["task"]["enum"])


# -- every path a rule reads or writes, once ---------------------------------
# Called without arguments they give the rules' wildcard patterns; with names,
# the files of one scene/field/teacher (target lists, report inputs).


def scene_store(scene="{scene}"):
    return f"{RESULTS}/{scene}/scene.zarr"


def feature_store(scene="{scene}", teacher="{teacher}"):
    return f"{RESULTS}/{scene}/features/{teacher}.zarr"


def rgb_dir(scene="{scene}", field="{field}"):
    """The RGB-pretrained field (stage 1)."""
    return f"{RESULTS}/{scene}/{field}/rgb"


def distilled_dir(scene="{scene}", field="{field}", teacher="{teacher}"):
    """The distilled field and everything evaluated on it."""
    return f"{RESULTS}/{scene}/{field}/{teacher}"


def fused_dir(scene="{scene}", field="{field}", teacher="{teacher}"):
    """The fused field (``n3f fuse``: the RGB field with the teacher's features lifted onto it) and its tasks."""
    return f"{distilled_dir(scene, field, teacher)}/fused"


def fusion_settings():
    """``fusion:`` of the config without the workflow's own switch, as ``n3f fuse --config-json`` reads it."""
    return {k: v for k, v in (config.get("fusion") or {}).items() if k not in ("enabled", "tasks", "queries")}


FUSED = bool((config.get("fusion") or {}).get("enabled", True))
"""Whether every (scene, field, teacher) is also fused and evaluated as method ``fused``."""
FUSED_TASKS = FUSED and bool((config.get("fusion") or {}).get("tasks", True))
"""Whether the synthetic tasks are scored on the fused field too."""
FUSED_QUERIES = FUSED and bool((config.get("fusion") or {}).get("queries", True))
"""Whether the scenes' ``queries:`` also run on the fused field."""
METHOD_DIRS = {"n3f": distilled_dir, "fused": fused_dir}
"""Where each rendered method's products live, per (scene, field, teacher)."""


def fused_task_dir(scene="{scene}", field="{field}", teacher="{teacher}", task="{task}"):
    """A task scored on the fused field: the same command and layout as on the distilled one."""
    return f"{fused_dir(scene, field, teacher)}/{task}"


def task_dir(scene="{scene}", field="{field}", teacher="{teacher}", task="{task}"):
    """A scored task's folder, one directory output: ``<task>.json`` (written last), and figures and point
    clouds that vary with the objects."""
    return f"{distilled_dir(scene, field, teacher)}/{task}"


def query_dir(scene="{scene}", field="{field}", teacher="{teacher}", query="{query}", method="n3f"):
    """A user's query run on the distilled field (``n3f``) or on the fused one (``fused``)."""
    return f"{METHOD_DIRS[method](scene, field, teacher)}/queries/{query}"


def query_summary(scene="{scene}", field="{field}", teacher="{teacher}", query="{query}", method="n3f"):
    """A user's query: its products beside query.json (written last)."""
    return f"{query_dir(scene, field, teacher, query, method)}/query.json"


def query_methods():
    """The fields every query runs on: the distilled one, and the fused one when fusion is on for queries."""
    return ("n3f", "fused") if FUSED_QUERIES else ("n3f",)


def scene_report(scene="{scene}"):
    return f"{RESULTS}/{scene}/report.md"


def scene_figures(scene="{scene}"):
    return f"{RESULTS}/{scene}/figures"


def table(name):
    return f"{RESULTS}/tables/{name}"


def frames_dir(scene="{scene}"):
    return f"{INTERMEDIATE}/{scene}/frames"


def sfm_dir(scene="{scene}"):
    return f"{INTERMEDIATE}/{scene}/sfm"


def log_file(rule, name):
    return f"{LOGS}/{rule}/{name}.log"


def benchmark_file(rule, name):
    return f"{BENCHMARKS}/{rule}/{name}.tsv"


wildcard_constraints:
    scene="|".join(map(str, SCENES)) or "NO_SCENES",
    teacher="|".join(map(str, TEACHERS)) or "NO_TEACHERS",
    field="|".join(FIELDS),
    task="|".join(ALL_TASKS),
    query="[A-Za-z0-9][A-Za-z0-9_.-]*",


def scene_entry(wildcards):
    return SCENES[wildcards.scene]


def import_spec(wildcards):
    """Only what the import reads, so that training/evaluation settings never rerun it."""
    entry = scene_entry(wildcards)
    return {k: entry[k] for k in ("name", "source", "path", "options") if k in entry}


def scene_fields(name):
    """Fields trained for a scene: its own ``fields`` list, else the global one."""
    return SCENES[name].get("fields") or config["fields"]


def evaluated(name):
    """Scenes without object masks (e.g. fox) are trained but not scored."""
    return SCENES[name].get("evaluate", True)


# Job order on few cores (Snakemake starts higher priorities first): the costliest training chain's
# two stages (training_priority), then the teacher features, so that every other scene's distillation
# can start the moment its RGB stage ends (starting every RGB stage first left the longest scene's
# distillation waiting for its teacher on 2 cores), then amodal segmentation,
# the costliest evaluation (a render per object and frame), before the cheaper ones so that it does
# not run alone at the end. Measured on the default pipeline: bench/NOTES.md.
PRIORITY = {"teacher_features": 2}


def _longest_training():
    """The (scene, field) whose training stages cost most (``n3f.train.config.training_cost``), when
    the run trains more than one: its RGB stage and distillation start before everything else (even
    the teacher features, which the other scenes' jobs wait for), since the run cannot end before
    that chain does. Measured on the default pipeline: bench/NOTES.md, session 8."""
    try:
        from n3f.train.config import training_cost
    except ImportError:
        return None
    costs = {}
    for scene in SCENES:
        for field in scene_fields(scene):
            wc = SimpleNamespace(scene=scene, field=field)
            costs[(scene, field)] = training_cost(field, training_settings(wc, "rgb"), training_settings(wc, "distill"))
    if len(costs) < 2:
        return None
    return max(costs, key=costs.get)


_LONGEST = []


def training_priority(wildcards):
    """3 for the stages of the costliest (scene, field), computed once when first asked."""
    if not _LONGEST:
        _LONGEST.append(_longest_training())
    return 3 if (wildcards.scene, wildcards.field) == _LONGEST[0] else 0


def task_priority(wildcards):
    return 1 if wildcards.task == "amodal" else 0


# the tasks this config runs, each as ``n3f eval-<task>``
TASK_COMMANDS = {task: f"eval-{task}" for task in config["tasks"]}


def task_dirs():
    """3D segmentation, editing and amodal scores need analytic ground truth: synthetic scenes only.
    Each is scored on the distilled field and, with fusion on, on the fused one."""
    folders = (task_dir, fused_task_dir) if FUSED_TASKS else (task_dir,)
    return [
        folder(name, field, teacher, task)
        for name in SCENES
        if SCENES[name]["source"] == "synthetic" and evaluated(name)
        for field in scene_fields(name)
        for teacher in TEACHERS
        for task in TASK_COMMANDS
        for folder in folders
    ]


def retrieval_inputs(wildcards):
    """The scene, teacher features and the distilled field (``eval_retrieval``), or the fused one
    (``eval_retrieval_fused``: its own job, so that it runs beside distillation)."""
    scene, field, teacher = wildcards.scene, wildcards.field, wildcards.teacher
    return {"scene": scene_store(scene), "features": feature_store(scene, teacher),
            "model": f"{distilled_dir(scene, field, teacher)}/model.pt"}


def scene_queries(name):
    """{query name: its entry}: the scene's ``queries:`` (``[]``: none). Without the key, a scene imported with
    annotations gets one query per object on the object's own mask; the objects are read from its store once
    imported (``scene`` is a checkpoint). Synthetic scenes are scored by the tasks instead."""
    entry = SCENES[name]
    if "queries" in entry or entry["source"] == "synthetic":
        return {q["name"]: q for q in entry.get("queries") or []}
    store = checkpoints.scene.get(scene=name).output[0]
    objects = json.loads(Path(store, "zarr.json").read_text())["attributes"].get("objects", [])
    try:
        from n3f.tasks.query_spec import annotation_queries
    except ImportError as err:
        raise WorkflowError(f"scenes[{name}]: default queries need n3f importable ({err}); "
                            "list `queries:` explicitly, or `queries: []` for none") from None
    return {q["name"]: q for q in annotation_queries(objects)}


def query_files(name):
    """Every query's query.json of a scene, per field, teacher and method."""
    return [
        query_summary(name, field, teacher, query, method)
        for field in scene_fields(name)
        for teacher in TEACHERS
        for query in scene_queries(name)
        for method in query_methods()
    ]


def query_product(name, product, method="n3f"):
    """A folder of per-view PNGs, in the HTML report under Queries / <scene> with its labels."""
    return report(
        directory(f"{query_dir(method=method)}/{name}"),
        patterns=["{view}.png"],
        caption="../report/query.rst",
        category="Queries",
        subcategory="{scene}",
        labels={"query": "{query}", "field": "{field}", "teacher": "{teacher}", "method": method, "product": product,
                "view": "{view}"},
    )


def query_file(name, product, method="n3f"):
    return report(
        f"{query_dir(method=method)}/{name}",
        caption="../report/query.rst",
        category="Queries",
        subcategory="{scene}",
        labels={"query": "{query}", "field": "{field}", "teacher": "{teacher}", "method": method, "product": product,
                "view": "all"},
    )


def query_spec(wildcards):
    """One query's config entry, as ``n3f query --query`` reads it."""
    return json.dumps(scene_queries(wildcards.scene)[wildcards.query])


def query_inputs(wildcards, method="n3f"):
    """The distilled (or fused) field, its scene and teacher features, and a mask query's file (edited: the
    query reruns)."""
    inputs = {
        "scene": scene_store(wildcards.scene),
        "features": feature_store(wildcards.scene, wildcards.teacher),
        "model": f"{METHOD_DIRS[method](wildcards.scene, wildcards.field, wildcards.teacher)}/model.pt",
    }
    mask = scene_queries(wildcards.scene)[wildcards.query].get("mask")
    if mask:
        inputs["mask"] = mask
    return inputs


def reported(name):
    """Scenes with a report: scored ones, and any with queries."""
    return evaluated(name) or bool(scene_queries(name))


def retrieval_row_files(name="retrieval_rows.csv"):
    """Every evaluated (scene, field, teacher)'s rows file ``name`` (retrieval or one-view segmentation):
    the teacher's and N3F's, and the fused field's when fusion is on."""
    folders = (distilled_dir, fused_dir) if FUSED else (distilled_dir,)
    return [
        f"{folder(scene, field, teacher)}/{name}"
        for scene in SCENES
        if evaluated(scene)
        for field in scene_fields(scene)
        for teacher in TEACHERS
        for folder in folders
    ]


def all_targets(wildcards=None):
    """Every final product (an input function: a scene's default queries wait for its import)."""
    targets = []
    for name in SCENES:
        targets.append(scene_store(name))
        for teacher in TEACHERS:
            targets.append(feature_store(name, teacher))
            for field in scene_fields(name):
                targets.append(f"{distilled_dir(name, field, teacher)}/metrics.json")
        targets += query_files(name)
        if reported(name):
            targets.append(scene_report(name))
    if retrieval_row_files():
        targets += [table(f"{name}.{ext}") for name in ("retrieval_map", "segmentation") for ext in ("csv", "md")]
    if task_dirs():
        targets += [table("tasks.csv"), table("tasks.md")]
    return targets


def teacher_inputs(wildcards):
    """The scene store, and the teacher's local weights file when the config names one (a missing file fails the dry run)."""
    inputs = {"scene": scene_store(wildcards.scene)}
    if "checkpoint" in TEACHERS[wildcards.teacher]:
        inputs["checkpoint"] = TEACHERS[wildcards.teacher]["checkpoint"]
    return inputs


def teacher_settings(wildcards):
    """The teacher's config entry, as ``n3f features --settings`` reads it."""
    return json.dumps(TEACHERS[wildcards.teacher])


def training_settings(wildcards, stage):
    """Training settings of one stage: global, then the field's, then the scene's."""
    training = config.get("training", {})
    settings = {**training.get(stage, {}), **training.get(wildcards.field, {}).get(stage, {})}
    settings.update(SCENES[wildcards.scene].get("training", {}).get(stage, {}))
    return settings


def sfm_images(wildcards):
    """Frames that SfM sees: extracted from a video, or a user's photo folder."""
    entry = scene_entry(wildcards)
    if entry["source"] == "video":
        return frames_dir(wildcards.scene)
    return entry["path"]


def scene_inputs(wildcards):
    entry = scene_entry(wildcards)
    if entry["source"] in ("video", "images"):
        return {
            "model": sfm_dir(wildcards.scene),
            "images": sfm_images(wildcards),
        }
    if entry["source"] == "synthetic":
        return {}
    return {"data": entry["path"]}


def sfm_flags(wildcards):
    entry = scene_entry(wildcards)
    if entry["source"] in ("video", "images"):
        model = f"{sfm_dir(wildcards.scene)}/model"
        return f"--colmap-model {shlex.quote(model)} --images {shlex.quote(str(sfm_images(wildcards)))}"
    return ""


def sfm_options(wildcards):
    """Unordered photos need exhaustive matching; video frames are matched sequentially."""
    entry = scene_entry(wildcards)
    default = {"matcher": "exhaustive" if entry["source"] == "images" else "sequential"}
    return {**default, **entry.get("sfm", {})}


def _pairs(scene):
    return [(field, teacher) for field in scene_fields(scene) for teacher in TEACHERS]


def report_inputs(wildcards):
    scene = wildcards.scene
    inputs = {"scene": scene_store(scene)}
    for field, teacher in _pairs(scene):
        folder = distilled_dir(scene, field, teacher)
        scored = ("retrieval.json", "retrieval_rows.csv", "segmentation_rows.csv") if evaluated(scene) else ()
        for name in (*scored, "metrics.json", "model.pt"):
            inputs[f"{field}_{teacher}_{name}".replace(".", "_")] = f"{folder}/{name}"
        if scored and FUSED:
            inputs[f"{field}_{teacher}_fused_retrieval"] = f"{fused_dir(scene, field, teacher)}/retrieval.json"
        for query in scene_queries(scene):
            for method in query_methods():
                inputs[f"{field}_{teacher}_{method}_query_{query}"] = query_summary(scene, field, teacher, query, method)
        inputs[f"features_{teacher}"] = feature_store(scene, teacher)
        if SCENES[scene]["source"] == "synthetic":
            for task in TASK_COMMANDS:
                inputs[f"{field}_{teacher}_{task}"] = task_dir(scene, field, teacher, task)
    return inputs


def report_pairs(wildcards):
    scene = wildcards.scene
    return " ".join(
        shlex.quote(f"{field},{teacher},{distilled_dir(scene, field, teacher)},{feature_store(scene, teacher)}")
        for field, teacher in _pairs(scene)
    )


def retrieval_limits(wildcards):
    """Scene-level ``evaluation`` limits on query/gallery frames (long captures)."""
    limits = SCENES[wildcards.scene].get("evaluation", {})
    return " ".join(f"--{k.replace('_', '-')} {shlex.quote(str(v))}" for k, v in limits.items())
