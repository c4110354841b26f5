rule profile_composition:
    input:
        "results/rna/composition.tsv",
    output:
        report(
            "results/profile/composition.tsv",
            caption="../report/composition.rst",
            category="Immune profile",
        ),
    log:
        "logs/profile_composition/profile_composition.log",
    benchmark:
        "benchmarks/profile_composition/profile_composition.tsv"
    conda:
        "../envs/scanpy.yaml"
    threads: 1
    resources:
        mem_mb=mem_small,
        runtime=5,
    script:
        "../../scripts/profile_composition.py"
