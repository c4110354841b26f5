# The scRNA-seq chain: per sample (BAM counting →) ingest → QC, then per cohort
# normalise → integrate → cluster → annotate → composition / figures.


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
    # before jobs that can wait: counting gates the RNA chain (and integration, its longest step)
    priority: 1
    conda:
        "../envs/scanpy.yaml"
    threads: 2
    resources:
        mem_mb=mem_bam,
        runtime=runtime(60, 60),
    params:
        on_failure=PARAMS.on_sample_failure,
        bam_count=PARAMS.rna_bam_count,
    script:
        "../../scripts/rna_bam_count.py"


rule rna_reference:
    input:
        unpack(reference_input),
    output:
        directory(REFERENCE_INDEX),
    log:
        "logs/rna_reference/rna_reference.log",
    benchmark:
        "benchmarks/rna_reference/rna_reference.tsv"
    # first of all: every FASTQ sample waits for the index
    priority: 2
    conda:
        "../envs/star.yaml"
    threads: 2
    resources:
        mem_mb=mem_reference,
        runtime=runtime(30, 30),
    params:
        quantify=PARAMS.rna_quantify,
    script:
        "../../scripts/rna_reference.py"


rule rna_quantify:
    input:
        unpack(fastq_input),
    output:
        **(
            {"bam": "results/rna/fastq_counts/{sample}/possorted_genome_bam.bam"}
            if PARAMS.rna_quantify.keep_bam
            else {}
        ),
        raw="results/rna/fastq_counts/{sample}/raw_feature_bc_matrix.h5",
        filtered="results/rna/fastq_counts/{sample}/filtered_feature_bc_matrix.h5",
        table="results/qc/fastq_counts/{sample}.tsv",
    log:
        "logs/rna_quantify/{sample}.log",
    benchmark:
        "benchmarks/rna_quantify/{sample}.tsv"
    # before jobs that can wait: counting gates the RNA chain (and integration, its longest step)
    priority: 1
    conda:
        "../envs/star.yaml"
    threads: 2
    resources:
        mem_mb=mem_quantify,
        runtime=runtime(30, 20),
    params:
        on_failure=PARAMS.on_sample_failure,
        quantify=PARAMS.rna_quantify,
        workdir=lambda wildcards: f"results/rna/fastq_counts/{wildcards.sample}/work",
    script:
        "../../scripts/rna_quantify.py"


rule rna_quantify_summary:
    input:
        expand(rules.rna_quantify.output.table, sample=fastq_samples()),
    output:
        report(
            "results/qc/starsolo.tsv",
            caption="../report/fastq_qc_table.rst",
            category="Quality control",
        ),
    log:
        "logs/rna_quantify_summary/rna_quantify_summary.log",
    benchmark:
        "benchmarks/rna_quantify_summary/rna_quantify_summary.tsv"
    conda:
        "../envs/scanpy.yaml"
    threads: 1
    resources:
        mem_mb=mem_small,
        runtime=5,
    script:
        "../../scripts/rna_quantify_summary.py"


rule rna_bam_summary:
    input:
        expand(rules.rna_bam_count.output.table, sample=bam_samples()),
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
    # every sample read before any is QC'd: the QC jobs, the longest per-sample work, are
    # then all ready at once and run in full waves (a late read held back the last one)
    priority: 1
    conda:
        "../envs/scanpy.yaml"
    threads: 1
    resources:
        mem_mb=mem_ingest,
        runtime=runtime(10, 20),
    params:
        on_failure=PARAMS.on_sample_failure,
        metadata=metadata,
        ingest=PARAMS.rna_ingest,
    script:
        "../../scripts/rna_ingest.py"


rule rna_qc:
    input:
        rules.rna_ingest.output[0],
    output:
        h5ad="results/rna/qc/{sample}.h5ad",
        table="results/qc/rna/{sample}.tsv",
        plot=report(
            "results/qc/rna/{sample}.png",
            caption="../report/rna_qc.rst",
            category="Quality control",
            subcategory="scRNA-seq",
            labels={"sample": "{sample}", "figure": "QC metrics"},
        ),
    log:
        "logs/rna_qc/{sample}.log",
    benchmark:
        "benchmarks/rna_qc/{sample}.tsv"
    conda:
        "../envs/scanpy.yaml"
    threads: 1
    resources:
        mem_mb=mem(1500, 12),
        runtime=runtime(20, 40),
    params:
        on_failure=PARAMS.on_sample_failure,
        qc=PARAMS.rna_qc,
    script:
        "../../scripts/rna_qc.py"


rule rna_qc_summary:
    input:
        expand(rules.rna_qc.output.table, sample=rna_samples()),
    output:
        report(
            "results/qc/rna_qc.tsv",
            caption="../report/rna_qc_table.rst",
            category="Quality control",
            subcategory="scRNA-seq",
            labels={"sample": "all", "figure": "QC per sample (table)"},
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
        expand(rules.rna_qc.output.h5ad, sample=rna_samples()),
    output:
        h5ad="results/rna/normalized.h5ad",
        hvg="results/rna/normalized_hvg.h5ad",
    log:
        "logs/rna_normalize/rna_normalize.log",
    benchmark:
        "benchmarks/rna_normalize/rna_normalize.tsv"
    conda:
        "../envs/scanpy.yaml"
    threads: 1
    resources:
        # a block of 10,000 cells and the cohort's obs: 0.8 GB at 200k cells, 0.9 GB at 1M
        mem_mb=mem(1500, 0.02),
        # ~0.3 min per GB of QC'd files (191 s for 10.4 GB at 1M cells): 2 leaves room
        runtime=runtime(30, 2),
    params:
        normalize=PARAMS.rna_normalize,
    script:
        "../../scripts/rna_normalize.py"


rule rna_integrate:
    input:
        rules.rna_normalize.output.hvg,
    output:
        h5ad="results/rna/integrated.h5ad",
        model=directory("results/rna/integrate_model"),
    log:
        "logs/rna_integrate/rna_integrate.log",
    benchmark:
        "benchmarks/rna_integrate/rna_integrate.tsv"
    # the RNA chain's longest step: before jobs that can wait
    priority: 1
    conda:
        "../envs/scvi.yaml"
    threads: 2
    resources:
        # scVI: the HVG counts in memory (trained from disk when they do not fit) and hours
        # of training; Harmony / PCA: the cells' PCA (at 1M cells: 0.7 GB and 40 s for a
        # 1.9 GB HVG file)
        mem_mb=mem(3000, 2) if SCVI_INTEGRATION else mem(1500, 0.5),
        runtime=runtime(120, 120) if SCVI_INTEGRATION else runtime(20, 10),
        gpu=0,
    params:
        integrate=PARAMS.rna_integrate,
    script:
        "../../scripts/rna_integrate.py"


rule rna_cluster:
    input:
        rules.rna_integrate.output.h5ad,
    output:
        "results/rna/clustered.h5ad",
    log:
        "logs/rna_cluster/rna_cluster.log",
    benchmark:
        "benchmarks/rna_cluster/rna_cluster.tsv"
    conda:
        "../envs/scanpy.yaml"
    threads: 2
    resources:
        mem_mb=mem(3000, 4),
        runtime=runtime(60, 40),
    params:
        cluster=PARAMS.rna_cluster,
    script:
        "../../scripts/rna_cluster.py"


rule rna_annotate:
    input:
        unpack(annotation_inputs),
        clustered=rules.rna_cluster.output[0],
        normalized=rules.rna_normalize.output.h5ad,
        integrated=rules.rna_integrate.output.h5ad,
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
        # the normalised cohort is read a few columns at a time (markers, a model's genes):
        # its size does not count; the cells do (at 1M: 31 GB, 0.9 GB of these two files)
        mem_mb=mem(2000, 2, only=("clustered", "integrated")),
        runtime=runtime(60, 40, only=("clustered", "integrated")),
        gpu=0,
    params:
        annotate=PARAMS.rna_annotate,
    script:
        "../../scripts/rna_annotate.py"


rule rna_composition:
    input:
        rules.rna_annotate.output[0],
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
        annotated=rules.rna_annotate.output[0],
    output:
        umap=report(
            "results/rna/figures/umap.png",
            caption="../report/rna_umap.rst",
            category="scRNA-seq",
            labels={"modality": "rna", "figure": "UMAP after integration"},
        ),
        umap_uncorrected=report(
            "results/rna/figures/umap_uncorrected.png",
            caption="../report/rna_umap_uncorrected.rst",
            category="scRNA-seq",
            labels={"modality": "rna", "figure": "UMAP before integration"},
        ),
        dotplot=report(
            "results/rna/figures/marker_dotplot.png",
            caption="../report/rna_dotplot.rst",
            category="scRNA-seq",
            labels={"modality": "rna", "figure": "marker dot plot"},
        ),
        abundance=report(
            "results/rna/figures/abundance.png",
            caption="../report/abundance.rst",
            category="scRNA-seq",
            labels={"modality": "rna", "figure": "composition per sample"},
        ),
    log:
        "logs/rna_plots/rna_plots.log",
    benchmark:
        "benchmarks/rna_plots/rna_plots.tsv"
    conda:
        "../envs/scanpy.yaml"
    threads: 1
    resources:
        mem_mb=mem(2000, 0.5),
        runtime=runtime(30, 10),
    script:
        "../../scripts/rna_plots.py"
