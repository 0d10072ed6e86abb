# Stage 1: frames, structure-from-motion and the canonical scene store.


rule frames:
    input:
        video=lambda wc: scene_entry(wc)["path"],
    output:
        directory(frames_dir()),
    params:
        frames=lambda wc: json.dumps(scene_entry(wc).get("frames", {})),
    log:
        log_file("frames", "{scene}"),
    benchmark:
        benchmark_file("frames", "{scene}")
    threads: 1
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "n3f frames --video {input.video:q} --out {output:q} --options {params.frames:q} > {log:q} 2>&1"


rule sfm:
    input:
        images=sfm_images,
    output:
        directory(sfm_dir()),
    params:
        sfm=lambda wc: json.dumps(sfm_options(wc)),
    log:
        log_file("sfm", "{scene}"),
    benchmark:
        benchmark_file("sfm", "{scene}")
    threads: 4
    conda:
        "../../environment.yml"
    resources:
        mem_mb=8000,
        runtime=240,
    shell:
        "n3f sfm --images {input.images:q} --out {output:q} --options {params.sfm:q}"
        " --threads {threads} > {log:q} 2>&1"


# a checkpoint: a scene's default queries (one per imported object) are known once it is imported
checkpoint scene:
    input:
        unpack(scene_inputs),
    output:
        directory(scene_store()),
    params:
        spec=lambda wc: json.dumps(import_spec(wc)),
        sfm=sfm_flags,
    log:
        log_file("scene", "{scene}"),
    benchmark:
        benchmark_file("scene", "{scene}")
    threads: 1
    conda:
        "../../environment.yml"
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "n3f scene --spec {params.spec:q} --out {output:q} {params.sfm} > {log:q} 2>&1"
