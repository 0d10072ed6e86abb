# n3f: Neural Feature Fusion Fields as a staged, restartable pipeline.
# Stages live in workflow/rules/*.smk; the work itself is done by the n3f package.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/scene.smk"
include: "workflow/rules/teachers.smk"
include: "workflow/rules/fields.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/queries.smk"


rule all:
    input:
        all_targets,
    default_target: True
