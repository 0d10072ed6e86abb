# Stage 5: a user's queries (scene entry ``queries:``), one job per (scene, field, teacher, query),
# so that adding or editing a query reruns only that query's job (and the scene's report).


SEGMENT2D_PRODUCT = "2D segmentation: photo | teacher | field distance | field mask"


rule query:
    input:
        unpack(query_inputs),
    output:
        # query.json is written last; each product is its own output, so that the HTML report shows it
        summary=query_summary(),
        segment2d=query_product("segment2d", SEGMENT2D_PRODUCT),
        masks=query_product("masks", "2D mask"),
        amodal=query_product("amodal", "amodal: render | opacity | full-extent mask"),
        removal=query_product("removal", "removal: before | after"),
        segment3d=query_file("segment3d.ply", "3D segment (PLY)"),
        video=query_file("removal.mp4", "removal video: before | after"),
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


# The same query on the fused field (``fusion: {queries: false}`` leaves it out). Its products carry the same
# labels but ``method``: the HTML report lays a category out as a grid of label values, and a combination
# without a result (a product named after its method) breaks the page.
use rule query as query_fused with:
    input:
        unpack(lambda wc: query_inputs(wc, "fused")),
    output:
        summary=query_summary(method="fused"),
        segment2d=query_product("segment2d", SEGMENT2D_PRODUCT, "fused"),
        masks=query_product("masks", "2D mask", "fused"),
        amodal=query_product("amodal", "amodal: render | opacity | full-extent mask", "fused"),
        removal=query_product("removal", "removal: before | after", "fused"),
        segment3d=query_file("segment3d.ply", "3D segment (PLY)", "fused"),
        video=query_file("removal.mp4", "removal video: before | after", "fused"),
    log:
        log_file("query_fused", "{scene}/{field}/{teacher}/{query}"),
    benchmark:
        benchmark_file("query_fused", "{scene}/{field}/{teacher}/{query}")
