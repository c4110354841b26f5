rule profile_composition:
    input:
        composition_tables(),
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


rule profile_marker_medians:
    input:
        expand("results/cyto/{modality}/marker_medians.tsv", modality=CYTO_MODALITIES),
    output:
        "results/profile/marker_medians.tsv",
    log:
        "logs/profile_marker_medians/profile_marker_medians.log",
    benchmark:
        "benchmarks/profile_marker_medians/profile_marker_medians.tsv"
    conda:
        "../envs/scanpy.yaml"
    threads: 1
    resources:
        mem_mb=mem_small,
        runtime=5,
    script:
        "../../scripts/profile_marker_medians.py"
