# Stage 5: a user's queries (scene entry ``queries:``), one job per (scene, field, teacher, query),
# so that adding or editing a query reruns only that query's job (and the scene's report).


rule query:
    input:
        unpack(query_inputs),
    output:
        summary=query_summary(),
    params:
        out=subpath(output.summary, parent=True),
        spec=query_spec,
        where=lambda wc: f"scenes[{wc.scene}].queries[{wc.query}]",
    log:
        log_file("query", "{scene}/{field}/{teacher}/{query}"),
    benchmark:
        benchmark_file("query", "{scene}/{field}/{teacher}/{query}")
    threads: config["threads"]
    conda:
        "../../environment.yml"
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=1,
    shell:
        "n3f query --scene {input.scene:q} --features {input.features:q} --model {input.model:q}"
        " --query {params.spec:q} --where {params.where:q} --out {params.out:q} > {log:q} 2>&1"
