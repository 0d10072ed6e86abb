# Stage 4: evaluation per (scene, field, teacher), then tables across scenes.


rule eval_retrieval:
    input:
        unpack(retrieval_inputs),
    output:
        rows=f"{distilled_dir()}/retrieval_rows.csv",
        segmentation=f"{distilled_dir()}/segmentation_rows.csv",
        summary=f"{distilled_dir()}/retrieval.json",
    params:
        sampling=config["evaluation"]["sampling"],
        limits=retrieval_limits,
        method="",  # a distilled model, with the teacher's rows
    log:
        log_file("eval_retrieval", "{scene}/{field}/{teacher}"),
    benchmark:
        benchmark_file("eval_retrieval", "{scene}/{field}/{teacher}")
    priority: training_priority
    threads: config["threads"]
    conda:
        "../../environment.yml"
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=1,
    shell:
        "n3f eval-retrieval --scene {input.scene:q} --features {input.features:q} --model {input.model:q}"
        " --teacher {wildcards.teacher} --sampling {params.sampling} {params.limits} {params.method}"
        " --rows {output.rows:q} --segmentation {output.segmentation:q} --summary {output.summary:q} > {log:q} 2>&1"


# The fused field on the same query and gallery frames (the teacher's rows are eval_retrieval's): a job of
# its own, which needs only the RGB stage, so that it runs while the field distils.
use rule eval_retrieval as eval_retrieval_fused with:
    input:
        scene=scene_store(),
        features=feature_store(),
        model=f"{fused_dir()}/model.pt",
    output:
        rows=f"{fused_dir()}/retrieval_rows.csv",
        segmentation=f"{fused_dir()}/segmentation_rows.csv",
        summary=f"{fused_dir()}/retrieval.json",
    log:
        log_file("eval_retrieval_fused", "{scene}/{field}/{teacher}"),
    benchmark:
        benchmark_file("eval_retrieval_fused", "{scene}/{field}/{teacher}")
    params:
        sampling=config["evaluation"]["sampling"],
        limits=retrieval_limits,
        method="--method fused --no-baseline",
    priority: 0


rule tables:
    input:
        rows=retrieval_row_files(),
        segmentation=retrieval_row_files("segmentation_rows.csv"),
    output:
        csv=table("retrieval_map.csv"),
        md=report(table("retrieval_map.md"), caption="../report/tables.rst", category="Tables"),
        segmentation_csv=table("segmentation.csv"),
        segmentation_md=report(table("segmentation.md"), caption="../report/segmentation.rst", category="Tables"),
    log:
        log_file("tables", "tables"),
    benchmark:
        benchmark_file("tables", "tables")
    threads: 1
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "n3f tables --rows {input.rows:q} --csv {output.csv:q} --md {output.md:q}"
        " --segmentation {input.segmentation:q} --segmentation-csv {output.segmentation_csv:q}"
        " --segmentation-md {output.segmentation_md:q} > {log:q} 2>&1"


rule report_scene:
    input:
        unpack(report_inputs),
    output:
        report=scene_report(),
        figures=report(
            directory(scene_figures()),
            patterns=["{name}.png"],
            caption="../report/scene_figures.rst",
            category="Scenes",
            subcategory="{scene}",
        ),
    params:
        evaluated=report_pairs,
        scored=lambda wc: "" if evaluated(wc.scene) else "--no-retrieval",
    log:
        log_file("report_scene", "{scene}"),
    benchmark:
        benchmark_file("report_scene", "{scene}")
    threads: 1
    conda:
        "../../environment.yml"
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "n3f report --scene {input.scene:q} --evaluated {params.evaluated} {params.scored} --out {output.report:q}"
        " > {log:q} 2>&1"


rule eval_task:
    input:
        scene=scene_store(),
        features=feature_store(),
        model=f"{distilled_dir()}/model.pt",
    output:
        # one folder: the task's scores ({task}.json, written last), figures and point clouds
        out=report(
            directory(task_dir()),
            # figures, and each object's selected points (not the whole-cloud highlight copies)
            patterns=["{figure}.png", "{figure,segment3d_(?!.*_highlight\.ply)[^/]+}.ply"],
            caption="../report/task.rst",
            category="Tasks",
            subcategory="{scene}",
            labels={"field": "{field}", "teacher": "{teacher}", "method": "n3f", "task": "{task}", "figure": "{figure}"},
        ),
    params:
        command=lambda wc: TASK_COMMANDS[wc.task],
    log:
        log_file("eval_{task}", "{scene}/{field}/{teacher}"),
    benchmark:
        benchmark_file("eval_{task}", "{scene}/{field}/{teacher}")
    priority: task_priority
    threads: config["threads"]
    conda:
        "../../environment.yml"
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=1,
    shell:
        "n3f {params.command} --scene {input.scene:q} --features {input.features:q} --model {input.model:q}"
        " --out {output.out:q} > {log:q} 2>&1"


use rule eval_task as eval_task_fused with:
    input:
        scene=scene_store(),
        features=feature_store(),
        model=f"{fused_dir()}/model.pt",
    output:
        out=report(
            directory(fused_task_dir()),
            patterns=["{figure}.png", "{figure,segment3d_(?!.*_highlight\.ply)[^/]+}.ply"],
            caption="../report/task.rst",
            category="Tasks",
            subcategory="{scene}",
            labels={"field": "{field}", "teacher": "{teacher}", "method": "fused", "task": "{task}", "figure": "{figure}"},
        ),
    log:
        log_file("eval_{task}_fused", "{scene}/{field}/{teacher}"),
    benchmark:
        benchmark_file("eval_{task}_fused", "{scene}/{field}/{teacher}")


rule task_tables:
    input:
        task_dirs(),
    output:
        csv=table("tasks.csv"),
        md=report(table("tasks.md"), caption="../report/task_tables.rst", category="Tables"),
    params:
        summaries=lambda wc, input: " ".join(shlex.quote(f"{d}/{Path(d).name}.json") for d in input),
    log:
        log_file("tables", "tasks"),
    benchmark:
        benchmark_file("tables", "tasks")
    threads: 1
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "n3f task-tables --json {params.summaries} --csv {output.csv:q} --md {output.md:q} > {log:q} 2>&1"
