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
        # the FASTQ sample's molecules and reads (measured max RSS 1.1 GB at 1,500 cells)
        mem_mb=mem(2500),
        runtime=10,
    params:
        outdir=demo_outdir,
        demo=PARAMS.demo_data,
        fastq=demo_fastq_used(),
    script:
        "../../scripts/demo_data.py"
