rule demo_data:
    output:
        **demo_outputs(),
        truth=f"{config['demo']['outdir']}/truth.tsv.gz",
    params:
        outdir=config["demo"]["outdir"],
        n_cells=config["demo"]["n_cells"],
        seed=config["seed"],
    log:
        "logs/demo_data/demo_data.log",
    benchmark:
        "benchmarks/demo_data/demo_data.tsv"
    threads: 1
    resources:
        mem_mb=mem_small,
        runtime=10,
    conda:
        "../envs/scanpy.yaml"
    script:
        "../../scripts/demo_data.py"
