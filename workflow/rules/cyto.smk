# The cytometry chain: per file ingest → compensate → transform → clean, then per
# modality normalise → cluster → annotate → composition / figures.


rule cyto_ingest:
    input:
        fcs=cyto_fcs,
        panel=cyto_panel,
    output:
        h5ad="results/cyto/{modality}/ingest/{sample}.h5ad",
        panel="results/cyto/{modality}/panels/{sample}.tsv",
    log:
        "logs/cyto_ingest/{modality}/{sample}.log",
    benchmark:
        "benchmarks/cyto_ingest/{modality}/{sample}.tsv"
    conda:
        "../envs/cytometry.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_sample,
        runtime=10,
    params:
        metadata=cyto_metadata,
    script:
        "../../scripts/cyto_ingest.py"


rule cyto_compensate:
    input:
        h5ad="results/cyto/{modality}/ingest/{sample}.h5ad",
        spillover=cyto_spillover(),
    output:
        "results/cyto/{modality}/compensate/{sample}.h5ad",
    log:
        "logs/cyto_compensate/{modality}/{sample}.log",
    benchmark:
        "benchmarks/cyto_compensate/{modality}/{sample}.tsv"
    conda:
        "../envs/cytometry.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_sample,
        runtime=10,
    script:
        "../../scripts/cyto_compensate.py"


rule cyto_transform:
    input:
        "results/cyto/{modality}/compensate/{sample}.h5ad",
    output:
        "results/cyto/{modality}/transform/{sample}.h5ad",
    log:
        "logs/cyto_transform/{modality}/{sample}.log",
    benchmark:
        "benchmarks/cyto_transform/{modality}/{sample}.tsv"
    conda:
        "../envs/cytometry.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_sample,
        runtime=10,
    params:
        transform=config["cyto"]["transform"],
    script:
        "../../scripts/cyto_transform.py"


rule cyto_clean:
    input:
        h5ad="results/cyto/{modality}/transform/{sample}.h5ad",
        fcs=cyto_fcs,
        gating=cyto_gating(),
    output:
        h5ad="results/cyto/{modality}/clean/{sample}.h5ad",
        table="results/qc/cyto/{modality}/{sample}.tsv",
    log:
        "logs/cyto_clean/{modality}/{sample}.log",
    benchmark:
        "benchmarks/cyto_clean/{modality}/{sample}.tsv"
    conda:
        "../envs/cytometry.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_sample,
        runtime=10,
    params:
        population=config["cyto"]["clean"]["population"],
        clean={k: config["cyto"]["clean"][k] for k in ("mad", "bead_min")},
    script:
        "../../scripts/cyto_clean.py"


rule cyto_qc_summary:
    input:
        [f"results/qc/cyto/{m}/{s}.tsv" for m in CYTO_MODALITIES for s in cyto_samples(m)],
    output:
        report(
            "results/qc/cyto_qc.tsv",
            caption="../report/cyto_qc.rst",
            category="Quality control",
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
        lambda wc: expand(
            "results/cyto/{modality}/clean/{sample}.h5ad",
            modality=wc.modality,
            sample=cyto_samples(wc.modality),
        ),
    output:
        h5ad="results/cyto/{modality}/normalized.h5ad",
        model="results/cyto/{modality}/normalize_model.json",
        table="results/qc/cyto_batch/{modality}.tsv",
    log:
        "logs/cyto_normalize/{modality}.log",
    benchmark:
        "benchmarks/cyto_normalize/{modality}.tsv"
    conda:
        "../envs/cytometry.yaml"
    threads: 1
    resources:
        mem_mb=mem_cohort,
        runtime=60,
        gpu=0,
    params:
        normalize=config["cyto"]["normalize"],
        seed=config["seed"],
    script:
        "../../scripts/cyto_normalize.py"


rule cyto_batch_summary:
    input:
        expand("results/qc/cyto_batch/{modality}.tsv", modality=CYTO_MODALITIES),
    output:
        report(
            "results/qc/cyto_batch.tsv",
            caption="../report/cyto_batch.rst",
            category="Cytometry",
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
        "results/cyto/{modality}/normalized.h5ad",
    output:
        "results/cyto/{modality}/clustered.h5ad",
    log:
        "logs/cyto_cluster/{modality}.log",
    benchmark:
        "benchmarks/cyto_cluster/{modality}.tsv"
    conda:
        "../envs/cytometry.yaml"
    threads: 2
    resources:
        mem_mb=mem_cohort,
        runtime=120,
    params:
        cluster=config["cyto"]["cluster"],
        seed=config["seed"],
    script:
        "../../scripts/cyto_cluster.py"


rule cyto_annotate:
    input:
        clustered="results/cyto/{modality}/clustered.h5ad",
        normalized="results/cyto/{modality}/normalized.h5ad",
        markers=cyto_markers_table(),
    output:
        "results/cyto/{modality}/annotated.h5ad",
    log:
        "logs/cyto_annotate/{modality}.log",
    benchmark:
        "benchmarks/cyto_annotate/{modality}.tsv"
    conda:
        "../envs/cytometry.yaml"
    threads: 1
    resources:
        mem_mb=mem_cohort,
        runtime=60,
    params:
        annotate={k: v for k, v in config["cyto"]["annotate"].items() if k != "markers"},
    script:
        "../../scripts/cyto_annotate.py"


rule cyto_composition:
    input:
        "results/cyto/{modality}/annotated.h5ad",
    output:
        composition="results/cyto/{modality}/composition.tsv",
        medians="results/cyto/{modality}/marker_medians.tsv",
    log:
        "logs/cyto_composition/{modality}.log",
    benchmark:
        "benchmarks/cyto_composition/{modality}.tsv"
    conda:
        "../envs/cytometry.yaml"
    threads: 1
    resources:
        mem_mb=mem_cohort,
        runtime=30,
    script:
        "../../scripts/cyto_composition.py"


rule cyto_plots:
    input:
        "results/cyto/{modality}/annotated.h5ad",
    output:
        heatmap=report(
            "results/cyto/{modality}/figures/metacluster_heatmap.png",
            caption="../report/cyto_heatmap.rst",
            category="Cytometry",
        ),
        umap=report(
            "results/cyto/{modality}/figures/umap.png",
            caption="../report/cyto_umap.rst",
            category="Cytometry",
        ),
        abundance=report(
            "results/cyto/{modality}/figures/abundance.png",
            caption="../report/cyto_abundance.rst",
            category="Cytometry",
        ),
        umap_unnormalized=report(
            "results/cyto/{modality}/figures/umap_unnormalized.png",
            caption="../report/cyto_umap_unnormalized.rst",
            category="Cytometry",
        ),
    log:
        "logs/cyto_plots/{modality}.log",
    benchmark:
        "benchmarks/cyto_plots/{modality}.tsv"
    conda:
        "../envs/cytometry.yaml"
    threads: 1
    resources:
        mem_mb=mem_cohort,
        runtime=30,
    params:
        seed=config["seed"],
    script:
        "../../scripts/cyto_plots.py"
