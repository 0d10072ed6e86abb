# Stage 2: teacher features, PCA-reduced, at patch resolution.


rule teacher_features:
    input:
        unpack(teacher_inputs),
    output:
        directory(feature_store()),
    params:
        settings=teacher_settings,
    log:
        log_file("teacher_features", "{scene}/{teacher}"),
    benchmark:
        benchmark_file("teacher_features", "{scene}/{teacher}")
    priority: PRIORITY["teacher_features"]
    threads: config["threads"]
    conda:
        "../../environment.yml"
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=1,
    shell:
        "n3f features --scene {input.scene:q} --out {output:q} --settings {params.settings:q}"
        " --no-progress > {log:q} 2>&1"
