rule rna_bam_count:
    input:
        bam_input,
    output:
        raw="results/rna/bam_counts/{sample}/raw_feature_bc_matrix.h5",
        filtered="results/rna/bam_counts/{sample}/filtered_feature_bc_matrix.h5",
        table="results/qc/bam_counts/{sample}.tsv",
    log:
        "logs/rna_bam_count/{sample}.log",
    benchmark:
        "benchmarks/rna_bam_count/{sample}.tsv"
    conda:
        "../envs/scanpy.yaml"
    threads: 2
    resources:
        mem_mb=lambda wc, attempt: 2500 * attempt,
        runtime=240,
    params:
        bam_count=bam_count_params(),
    script:
        "../../scripts/rna_bam_count.py"


rule rna_bam_summary:
    input:
        expand("results/qc/bam_counts/{sample}.tsv", sample=bam_samples()),
    output:
        "results/qc/bam_counts.tsv",
    log:
        "logs/rna_bam_summary/rna_bam_summary.log",
    benchmark:
        "benchmarks/rna_bam_summary/rna_bam_summary.tsv"
    conda:
        "../envs/scanpy.yaml"
    threads: 1
    resources:
        mem_mb=mem_small,
        runtime=5,
    script:
        "../../scripts/rna_bam_summary.py"


rule rna_ingest:
    input:
        rna_input,
    output:
        "results/rna/ingest/{sample}.h5ad",
    log:
        "logs/rna_ingest/{sample}.log",
    benchmark:
        "benchmarks/rna_ingest/{sample}.tsv"
    conda:
        "../envs/scanpy.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_sample,
        runtime=30,
    params:
        metadata=rna_metadata,
        genome=config["rna"]["genome"],
    script:
        "../../scripts/rna_ingest.py"


rule rna_qc:
    input:
        "results/rna/ingest/{sample}.h5ad",
    output:
        h5ad="results/rna/qc/{sample}.h5ad",
        table="results/qc/rna/{sample}.tsv",
        plot=report(
            "results/qc/rna/{sample}.png",
            caption="../report/rna_qc.rst",
            category="Quality control",
        ),
    log:
        "logs/rna_qc/{sample}.log",
    benchmark:
        "benchmarks/rna_qc/{sample}.tsv"
    conda:
        "../envs/scanpy.yaml"
    threads: 1
    resources:
        mem_mb=mem_per_sample,
        runtime=60,
    params:
        qc=qc_params(),
    script:
        "../../scripts/rna_qc.py"


rule rna_qc_summary:
    input:
        expand("results/qc/rna/{sample}.tsv", sample=rna_samples()),
    output:
        report(
            "results/qc/rna_qc.tsv",
            caption="../report/rna_qc_table.rst",
            category="Quality control",
        ),
    log:
        "logs/rna_qc_summary/rna_qc_summary.log",
    benchmark:
        "benchmarks/rna_qc_summary/rna_qc_summary.tsv"
    conda:
        "../envs/scanpy.yaml"
    threads: 1
    resources:
        mem_mb=mem_small,
        runtime=5,
    script:
        "../../scripts/rna_qc_summary.py"


rule rna_normalize:
    input:
        expand("results/rna/qc/{sample}.h5ad", sample=rna_samples()),
    output:
        h5ad="results/rna/normalize/cohort.h5ad",
        hvg="results/rna/normalize/hvg.h5ad",
    log:
        "logs/rna_normalize/rna_normalize.log",
    benchmark:
        "benchmarks/rna_normalize/rna_normalize.tsv"
    conda:
        "../envs/scanpy.yaml"
    threads: 1
    resources:
        mem_mb=mem_cohort,
        runtime=120,
    params:
        normalize=config["rna"]["normalize"],
    script:
        "../../scripts/rna_normalize.py"


rule rna_integrate:
    input:
        "results/rna/normalize/hvg.h5ad",
    output:
        h5ad="results/rna/integrate/hvg.h5ad",
        model=directory("results/rna/scvi_model"),
    log:
        "logs/rna_integrate/rna_integrate.log",
    benchmark:
        "benchmarks/rna_integrate/rna_integrate.tsv"
    conda:
        "../envs/scvi.yaml"
    threads: 2
    resources:
        mem_mb=mem_embedding,
        runtime=720,
        gpu=0,
    params:
        integrate=integrate_params(),
    script:
        "../../scripts/rna_integrate.py"


rule rna_cluster:
    input:
        "results/rna/integrate/hvg.h5ad",
    output:
        "results/rna/cluster/hvg.h5ad",
    log:
        "logs/rna_cluster/rna_cluster.log",
    benchmark:
        "benchmarks/rna_cluster/rna_cluster.tsv"
    conda:
        "../envs/scanpy.yaml"
    threads: 2
    resources:
        mem_mb=mem_embedding,
        runtime=240,
    params:
        cluster=cluster_params(),
    script:
        "../../scripts/rna_cluster.py"


rule rna_annotate:
    input:
        unpack(annotation_inputs),
        clustered="results/rna/cluster/hvg.h5ad",
        normalized="results/rna/normalize/cohort.h5ad",
    output:
        "results/rna/annotated.h5ad",
    log:
        "logs/rna_annotate/rna_annotate.log",
    benchmark:
        "benchmarks/rna_annotate/rna_annotate.tsv"
    conda:
        "../envs/scvi.yaml"
    threads: 2
    resources:
        mem_mb=mem_embedding,
        runtime=240,
        gpu=0,
    params:
        method=config["rna"]["annotate"]["method"],
        annotate=annotate_params(),
        reference_label_key=config["rna"]["annotate"]["reference_label_key"],
    script:
        "../../scripts/rna_annotate.py"


rule rna_composition:
    input:
        "results/rna/annotated.h5ad",
    output:
        "results/rna/composition.tsv",
    log:
        "logs/rna_composition/rna_composition.log",
    benchmark:
        "benchmarks/rna_composition/rna_composition.tsv"
    conda:
        "../envs/scanpy.yaml"
    threads: 1
    resources:
        mem_mb=mem_small,
        runtime=10,
    script:
        "../../scripts/rna_composition.py"


rule rna_plots:
    input:
        annotated="results/rna/annotated.h5ad",
        normalized="results/rna/normalize/hvg.h5ad",
        markers=markers_table(),
    output:
        umap=report(
            "results/rna/figures/umap.png",
            caption="../report/rna_umap.rst",
            category="scRNA-seq",
        ),
        umap_unintegrated=report(
            "results/rna/figures/umap_unintegrated.png",
            caption="../report/rna_umap_unintegrated.rst",
            category="scRNA-seq",
        ),
        dotplot=report(
            "results/rna/figures/marker_dotplot.png",
            caption="../report/rna_dotplot.rst",
            category="scRNA-seq",
        ),
    log:
        "logs/rna_plots/rna_plots.log",
    benchmark:
        "benchmarks/rna_plots/rna_plots.tsv"
    conda:
        "../envs/scanpy.yaml"
    threads: 1
    resources:
        mem_mb=mem_embedding,
        runtime=30,
    params:
        seed=config["seed"],
    script:
        "../../scripts/rna_plots.py"
