# Stage 3: RGB pretraining, then feature distillation. Both resume from
# <out>/checkpoint.pt when a job is rerun after preemption or a kill.


rule pretrain_rgb:
    input:
        scene=f"{RESULTS}/{{scene}}/scene.zarr",
    output:
        model=f"{RESULTS}/{{scene}}/{{field}}/rgb/model.pt",
        metrics=f"{RESULTS}/{{scene}}/{{field}}/rgb/metrics.json",
    params:
        out=subpath(output.model, parent=True),
        settings=lambda wc: json.dumps(training_settings(wc, "rgb")),
    log:
        f"{LOGS}/pretrain_rgb/{{scene}}/{{field}}.log",
    benchmark:
        f"{BENCHMARKS}/pretrain_rgb/{{scene}}/{{field}}.tsv"
    threads: config["threads"]
    conda:
        "../../environment.yml"
    resources:
        mem_mb=8000,
        runtime=600,
        gpu=1,
    shell:
        "n3f pretrain-rgb --scene {input.scene:q} --out {params.out:q} --field {wildcards.field}"
        " --config-json {params.settings:q} > {log:q} 2>&1"


rule distill:
    input:
        scene=f"{RESULTS}/{{scene}}/scene.zarr",
        features=f"{RESULTS}/{{scene}}/features/{{teacher}}.zarr",
        init=f"{RESULTS}/{{scene}}/{{field}}/rgb/model.pt",
    output:
        model=f"{RESULTS}/{{scene}}/{{field}}/{{teacher}}/model.pt",
        metrics=f"{RESULTS}/{{scene}}/{{field}}/{{teacher}}/metrics.json",
    params:
        out=subpath(output.model, parent=True),
        settings=lambda wc: json.dumps(training_settings(wc, "distill")),
    log:
        f"{LOGS}/distill/{{scene}}/{{field}}/{{teacher}}.log",
    benchmark:
        f"{BENCHMARKS}/distill/{{scene}}/{{field}}/{{teacher}}.tsv"
    threads: config["threads"]
    conda:
        "../../environment.yml"
    resources:
        mem_mb=8000,
        runtime=600,
        gpu=1,
    shell:
        "n3f distill --scene {input.scene:q} --features {input.features:q} --init {input.init:q}"
        " --out {params.out:q} --config-json {params.settings:q} > {log:q} 2>&1"
