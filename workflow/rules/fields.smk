# Stage 3: RGB pretraining, then feature distillation. Both resume from
# <out>/checkpoint.pt when a job is rerun after preemption or a kill. Beside
# distillation, training-free fusion lifts the teacher features onto the RGB
# field in one pass (seconds: nothing to resume; its outputs are written atomically).


rule pretrain_rgb:
    input:
        scene=scene_store(),
    output:
        model=f"{rgb_dir()}/model.pt",
        metrics=f"{rgb_dir()}/metrics.json",
    params:
        out=subpath(output.model, parent=True),
        settings=lambda wc: json.dumps(training_settings(wc, "rgb")),
    log:
        log_file("pretrain_rgb", "{scene}/{field}"),
    benchmark:
        benchmark_file("pretrain_rgb", "{scene}/{field}")
    priority: training_priority
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
        scene=scene_store(),
        features=feature_store(),
        init=f"{rgb_dir()}/model.pt",
    output:
        model=f"{distilled_dir()}/model.pt",
        metrics=f"{distilled_dir()}/metrics.json",
    params:
        out=subpath(output.model, parent=True),
        settings=lambda wc: json.dumps(training_settings(wc, "distill")),
    log:
        log_file("distill", "{scene}/{field}/{teacher}"),
    benchmark:
        benchmark_file("distill", "{scene}/{field}/{teacher}")
    priority: training_priority
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


rule fuse:
    input:
        scene=scene_store(),
        features=feature_store(),
        init=f"{rgb_dir()}/model.pt",
    output:
        model=f"{fused_dir()}/model.pt",
        metrics=f"{fused_dir()}/metrics.json",
    params:
        out=subpath(output.model, parent=True),
        settings=json.dumps(fusion_settings()),
    log:
        log_file("fuse", "{scene}/{field}/{teacher}"),
    benchmark:
        benchmark_file("fuse", "{scene}/{field}/{teacher}")
    threads: config["threads"]
    conda:
        "../../environment.yml"
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=1,
    shell:
        "n3f fuse --scene {input.scene:q} --features {input.features:q} --init {input.init:q}"
        " --out {params.out:q} --config-json {params.settings:q} > {log:q} 2>&1"
