# The cytometry chain: per file preprocess (ingest → compensate → transform → clean), then per panel
# group ({group}: the modality, or <modality>-<panel group> when its files come from several
# panels) normalise → cluster → annotate → composition / figures.


# one job per file: ingest → compensate → transform → clean in one process (one start-up,
# one write of only the layer later steps read)
rule cyto_spillover:
    input:
        fcs=lambda w: [CYTO.loc[(w.modality, s), "path"] for s in cyto_samples(w.modality)],
        panels=lambda w: [p for p in modality_panels(w.modality) if p],
    output:
        matrix="results/cyto/{modality}/spillover.tsv",
        pairs="results/qc/cyto_spillover/{modality}.tsv",
    log:
        "logs/cyto_spillover/{modality}.log",
    benchmark:
        "benchmarks/cyto_spillover/{modality}.tsv"
    conda:
        "../envs/cytometry.yaml"
    threads: 1
    resources:
        mem_mb=mem(1500, 0.05),
        runtime=runtime(30, 5),
    params:
        step=PARAMS.cyto_spillover,
        panels=lambda w: [p or None for p in modality_panels(w.modality)],
    script:
        "../../scripts/cyto_spillover.py"


rule cyto_preprocess:
    input:
        fcs=cyto_fcs,
        panel=cyto_panel,
        spillover=cyto_spillover_input,
        gating=optional_file(config["cyto"]["clean"]["gating"]),
    output:
        h5ad="results/cyto/{modality}/preprocess/{sample}.h5ad",
        panel="results/cyto/{modality}/panels/{sample}.tsv",
        table="results/qc/cyto/{modality}/{sample}.tsv",
    log:
        "logs/cyto_preprocess/{modality}/{sample}.log",
    benchmark:
        "benchmarks/cyto_preprocess/{modality}/{sample}.tsv"
    conda:
        "../envs/cytometry.yaml"
    threads: 1
    resources:
        mem_mb=mem(800, 12),
        runtime=runtime(10, 20),
    params:
        step=PARAMS.cyto_preprocess,
        spillover_estimated=config["cyto"]["spillover"] == "barcodes",
        on_failure=PARAMS.on_sample_failure,
        metadata=metadata,
    script:
        "../../scripts/cyto_preprocess.py"


rule cyto_qc_summary:
    input:
        [
            rules.cyto_preprocess.output.table.format(modality=m, sample=s)
            for m in CYTO_MODALITIES
            for s in cyto_samples(m)
        ],
    output:
        report(
            "results/qc/cyto_qc.tsv",
            caption="../report/cyto_qc.rst",
            category="Quality control",
            subcategory="Cytometry",
            labels={"sample": "all", "figure": "cleaning yield per file (table)"},
        ),
    log:
        "logs/cyto_qc_summary/cyto_qc_summary.log",
    benchmark:
        "benchmarks/cyto_qc_summary/cyto_qc_summary.tsv"
    conda:
        "../envs/cytometry.yaml"
    threads: 1
    resources:
        mem_mb=mem_small,
        runtime=5,
    script:
        "../../scripts/cyto_qc_summary.py"


rule cyto_normalize:
    input:
        cyto_files(rules.cyto_preprocess.output.h5ad),
    output:
        h5ad="results/cyto/{group}/normalized.h5ad",
        model="results/cyto/{group}/normalize_model.json",
        table="results/qc/cyto_batch/{group}.tsv",
    log:
        "logs/cyto_normalize/{group}.log",
    benchmark:
        "benchmarks/cyto_normalize/{group}.tsv"
    conda:
        "../envs/cytometry.yaml"
    threads: 1
    resources:
        mem_mb=mem(1500, 0.05),
        runtime=runtime(30, 5),
        gpu=0,
    params:
        normalize=PARAMS.cyto_normalize,
        group=lambda wildcards: cyto_group(wildcards.group).name,
    script:
        "../../scripts/cyto_normalize.py"


rule cyto_batch_summary:
    input:
        expand(rules.cyto_normalize.output.table, group=CYTO_GROUPS),
    output:
        report(
            "results/qc/cyto_batch.tsv",
            caption="../report/cyto_batch.rst",
            category="Cytometry",
            labels={"modality": "all", "figure": "batch distances (table)"},
        ),
    log:
        "logs/cyto_batch_summary/cyto_batch_summary.log",
    benchmark:
        "benchmarks/cyto_batch_summary/cyto_batch_summary.tsv"
    conda:
        "../envs/cytometry.yaml"
    threads: 1
    resources:
        mem_mb=mem_small,
        runtime=5,
    script:
        "../../scripts/cyto_batch_summary.py"


rule cyto_cluster:
    input:
        rules.cyto_normalize.output.h5ad,
    output:
        "results/cyto/{group}/clustered.h5ad",
    log:
        "logs/cyto_cluster/{group}.log",
    benchmark:
        "benchmarks/cyto_cluster/{group}.tsv"
    conda:
        "../envs/cytometry.yaml"
    # the seeded UMAPs, most of the step's time, are single-threaded (reproducible);
    # FlowSOM's fit on its subsample is seconds either way
    threads: 1
    resources:
        mem_mb=mem(1500, 0.1),
        runtime=runtime(30, 10),
    params:
        cluster=PARAMS.cyto_cluster,
    script:
        "../../scripts/cyto_cluster.py"


rule cyto_annotate:
    input:
        clustered=rules.cyto_cluster.output[0],
        normalized=rules.cyto_normalize.output.h5ad,
        markers=cyto_markers(),
        lineages=cyto_lineages(),
    output:
        "results/cyto/{group}/annotated.h5ad",
    log:
        "logs/cyto_annotate/{group}.log",
    benchmark:
        "benchmarks/cyto_annotate/{group}.tsv"
    conda:
        "../envs/cytometry.yaml"
    threads: 1
    resources:
        mem_mb=mem(1500, 0.1),
        runtime=runtime(30, 5),
    params:
        annotate=PARAMS.cyto_annotate,
    script:
        "../../scripts/cyto_annotate.py"


rule cyto_composition:
    input:
        rules.cyto_annotate.output[0],
    output:
        composition="results/cyto/{group}/composition.tsv",
        medians="results/cyto/{group}/marker_medians.tsv",
    log:
        "logs/cyto_composition/{group}.log",
    benchmark:
        "benchmarks/cyto_composition/{group}.tsv"
    conda:
        "../envs/cytometry.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000, 0.05),
        runtime=runtime(15, 5),
    params:
        modality=lambda wildcards: cyto_group(wildcards.group).modality,
    script:
        "../../scripts/cyto_composition.py"


rule cyto_plots:
    input:
        rules.cyto_annotate.output[0],
    output:
        heatmap=report(
            "results/cyto/{group}/figures/metacluster_heatmap.png",
            caption="../report/cyto_heatmap.rst",
            category="Cytometry",
            labels={"modality": "{group}", "figure": "metacluster heatmap"},
        ),
        umap=report(
            "results/cyto/{group}/figures/umap.png",
            caption="../report/cyto_umap.rst",
            category="Cytometry",
            labels={"modality": "{group}", "figure": "UMAP after normalisation"},
        ),
        umap_uncorrected=report(
            "results/cyto/{group}/figures/umap_uncorrected.png",
            caption="../report/cyto_umap_uncorrected.rst",
            category="Cytometry",
            labels={"modality": "{group}", "figure": "UMAP before normalisation"},
        ),
        abundance=report(
            "results/cyto/{group}/figures/abundance.png",
            caption="../report/abundance.rst",
            category="Cytometry",
            labels={"modality": "{group}", "figure": "composition per sample"},
        ),
    log:
        "logs/cyto_plots/{group}.log",
    benchmark:
        "benchmarks/cyto_plots/{group}.tsv"
    conda:
        "../envs/cytometry.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000, 0.05),
        runtime=runtime(15, 5),
    script:
        "../../scripts/cyto_plots.py"
