rule demo_data:
    output:
        **demo_outputs(),
        truth=f"{config['demo']['outdir']}/truth.tsv.gz",
        cyto_truth=f"{config['demo']['outdir']}/cyto_truth.tsv.gz",
    log:
        "logs/demo_data/demo_data.log",
    benchmark:
        "benchmarks/demo_data/demo_data.tsv"
    conda:
        "../envs/scanpy.yaml"
    threads: 1
    resources:
        mem_mb=mem_small,
        runtime=10,
    params:
        outdir=demo_outdir,
        demo=PARAMS.demo_data,
    script:
        "../../scripts/demo_data.py"
