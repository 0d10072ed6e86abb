# Stage 4: evaluation per (scene, field, teacher), then tables across scenes.


rule eval_retrieval:
    input:
        scene=f"{RESULTS}/{{scene}}/scene.zarr",
        features=f"{RESULTS}/{{scene}}/features/{{teacher}}.zarr",
        model=f"{RESULTS}/{{scene}}/{{field}}/{{teacher}}/model.pt",
    output:
        rows=f"{RESULTS}/{{scene}}/{{field}}/{{teacher}}/retrieval_rows.csv",
        summary=f"{RESULTS}/{{scene}}/{{field}}/{{teacher}}/retrieval.json",
    params:
        sampling=config["evaluation"]["sampling"],
        limits=retrieval_limits,
    log:
        f"{LOGS}/eval_retrieval/{{scene}}/{{field}}/{{teacher}}.log",
    benchmark:
        f"{BENCHMARKS}/eval_retrieval/{{scene}}/{{field}}/{{teacher}}.tsv"
    threads: config["threads"]
    conda:
        "../../environment.yml"
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=1,
    shell:
        "n3f eval-retrieval --scene {input.scene:q} --features {input.features:q} --model {input.model:q}"
        " --teacher {wildcards.teacher} --sampling {params.sampling} {params.limits}"
        " --rows {output.rows:q} --summary {output.summary:q} > {log:q} 2>&1"


rule tables:
    input:
        rows=retrieval_row_files(),
    output:
        csv=f"{RESULTS}/tables/retrieval_map.csv",
        md=report(f"{RESULTS}/tables/retrieval_map.md", caption="../report/tables.rst", category="Tables"),
    log:
        f"{LOGS}/tables/tables.log",
    benchmark:
        f"{BENCHMARKS}/tables/tables.tsv"
    threads: 1
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "n3f tables --rows {input.rows:q} --csv {output.csv:q} --md {output.md:q} > {log:q} 2>&1"


rule report_scene:
    input:
        unpack(report_inputs),
    output:
        report=f"{RESULTS}/{{scene}}/report.md",
        figures=report(
            directory(f"{RESULTS}/{{scene}}/figures"),
            patterns=["{name}.png"],
            caption="../report/scene_figures.rst",
            category="Scenes",
            subcategory="{scene}",
        ),
    params:
        evaluated=report_pairs,
    log:
        f"{LOGS}/report_scene/{{scene}}.log",
    benchmark:
        f"{BENCHMARKS}/report_scene/{{scene}}.tsv"
    threads: 1
    conda:
        "../../environment.yml"
    resources:
        mem_mb=4000,
        runtime=30,
    shell:
        "n3f report --scene {input.scene:q} --evaluated {params.evaluated} --out {output.report:q} > {log:q} 2>&1"


rule eval_task:
    input:
        scene=f"{RESULTS}/{{scene}}/scene.zarr",
        features=f"{RESULTS}/{{scene}}/features/{{teacher}}.zarr",
        model=f"{RESULTS}/{{scene}}/{{field}}/{{teacher}}/model.pt",
    output:
        summary=f"{RESULTS}/{{scene}}/{{field}}/{{teacher}}/{{task}}/{{task}}.json",
    params:
        out=subpath(output.summary, parent=True),
        command=lambda wc: TASK_COMMANDS[wc.task],
    log:
        f"{LOGS}/eval_{{task}}/{{scene}}/{{field}}/{{teacher}}.log",
    benchmark:
        f"{BENCHMARKS}/eval_{{task}}/{{scene}}/{{field}}/{{teacher}}.tsv"
    threads: config["threads"]
    conda:
        "../../environment.yml"
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=1,
    shell:
        "n3f {params.command} --scene {input.scene:q} --features {input.features:q} --model {input.model:q}"
        " --out {params.out:q} > {log:q} 2>&1"


rule task_tables:
    input:
        task_json_files(),
    output:
        csv=f"{RESULTS}/tables/tasks.csv",
        md=f"{RESULTS}/tables/tasks.md",
    log:
        f"{LOGS}/tables/tasks.log",
    benchmark:
        f"{BENCHMARKS}/tables/tasks.tsv"
    threads: 1
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "n3f task-tables --json {input:q} --csv {output.csv:q} --md {output.md:q} > {log:q} 2>&1"
