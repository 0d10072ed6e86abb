# Stage 2: teacher features, PCA-reduced, at patch resolution.


rule teacher_features:
    input:
        unpack(teacher_inputs),
    output:
        directory(f"{RESULTS}/{{scene}}/features/{{teacher}}.zarr"),
    params:
        flags=teacher_flags,
    log:
        f"{LOGS}/teacher_features/{{scene}}/{{teacher}}.log",
    benchmark:
        f"{BENCHMARKS}/teacher_features/{{scene}}/{{teacher}}.tsv"
    threads: config["threads"]
    conda:
        "../../environment.yml"
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=1,
    shell:
        "n3f features --scene {input.scene:q} --out {output:q} --teacher {wildcards.teacher}"
        " {params.flags} --no-progress > {log:q} 2>&1"
