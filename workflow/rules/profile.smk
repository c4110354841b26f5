rule profile_composition:
    input:
        composition_tables(),
    output:
        report(
            "results/profile/composition.tsv",
            caption="../report/composition.rst",
            category="Immune profile",
            labels={"result": "composition (long table)"},
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
        expand(rules.cyto_composition.output.medians, group=CYTO_GROUPS),
    output:
        "results/profile/pseudobulk/marker_medians.tsv",
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


rule profile_tables:
    input:
        rules.profile_composition.output[0],
    output:
        wide=report(
            "results/profile/composition_wide.tsv",
            caption="../report/composition_wide.rst",
            category="Immune profile",
            labels={"result": "composition (wide table)"},
        ),
        lineage_wide="results/profile/composition_lineage_wide.tsv",
        cross=report(
            "results/profile/cross_modality.tsv",
            caption="../report/cross_modality.rst",
            category="Immune profile",
            labels={"result": "cross-modality concordance (table)"},
        ),
        scatter=report(
            "results/profile/figures/cross_modality.png",
            caption="../report/cross_modality.rst",
            category="Immune profile",
            labels={"result": "cross-modality concordance"},
        ),
        cross_panel=report(
            "results/profile/cross_panel.tsv",
            caption="../report/cross_panel.rst",
            category="Immune profile",
            labels={"result": "cross-panel concordance (table)"},
        ),
        panel_scatter=report(
            "results/profile/figures/cross_panel.png",
            caption="../report/cross_panel.rst",
            category="Immune profile",
            labels={"result": "cross-panel concordance"},
        ),
        bars=report(
            "results/profile/figures/composition.png",
            caption="../report/composition.rst",
            category="Immune profile",
            labels={"result": "composition"},
        ),
    log:
        "logs/profile_tables/profile_tables.log",
    benchmark:
        "benchmarks/profile_tables/profile_tables.tsv"
    conda:
        "../envs/scanpy.yaml"
    threads: 1
    resources:
        mem_mb=mem_small,
        runtime=10,
    params:
        samples=sample_records(),
    script:
        "../../scripts/profile_tables.py"


rule profile_differential_abundance:
    input:
        rules.profile_composition.output[0],
    output:
        table=report(
            "results/profile/differential_abundance.tsv",
            caption="../report/differential_abundance.rst",
            category="Immune profile",
            labels={"result": "differential abundance (table)"},
        ),
        figure=report(
            "results/profile/figures/differential_abundance.png",
            caption="../report/differential_abundance.rst",
            category="Immune profile",
            labels={"result": "differential abundance"},
        ),
    log:
        "logs/profile_differential_abundance/profile_differential_abundance.log",
    benchmark:
        "benchmarks/profile_differential_abundance/profile_differential_abundance.tsv"
    conda:
        "../envs/scanpy.yaml"
    threads: 1
    resources:
        mem_mb=mem_small,
        runtime=10,
    params:
        samples=sample_records(),
        da=PARAMS.profile_differential_abundance,
    script:
        "../../scripts/profile_differential_abundance.py"


rule profile_differential_state:
    input:
        medians=rules.profile_marker_medians.output[0],
        composition=rules.profile_composition.output[0],
        spill=expand(rules.cyto_spillover.output.pairs, modality=spill_pair_modalities()),
    output:
        table=report(
            "results/profile/differential_state.tsv",
            caption="../report/differential_state.rst",
            category="Immune state",
            labels={"result": "differential state, cytometry (table)"},
        ),
        heatmap=report(
            "results/profile/figures/differential_state_heatmap.png",
            caption="../report/differential_state.rst",
            category="Immune state",
            labels={"result": "differential state, cytometry (heatmap)"},
        ),
        volcano=report(
            "results/profile/figures/differential_state_volcano.png",
            caption="../report/differential_state.rst",
            category="Immune state",
            labels={"result": "differential state, cytometry (volcano)"},
        ),
    log:
        "logs/profile_differential_state/profile_differential_state.log",
    benchmark:
        "benchmarks/profile_differential_state/profile_differential_state.tsv"
    conda:
        "../envs/scanpy.yaml"
    threads: 1
    resources:
        mem_mb=mem(1000, 4),
        runtime=10,
    params:
        samples=sample_records(),
        ds=PARAMS.profile_differential_state,
        spill_modalities=spill_pair_modalities(),
    script:
        "../../scripts/profile_differential_state.py"


rule rna_pseudobulk:
    input:
        qc=rules.rna_qc.output.h5ad,
        annotated=rules.rna_annotate.output[0],
    output:
        "results/rna/pseudobulk/{sample}.h5ad",
    log:
        "logs/rna_pseudobulk/{sample}.log",
    benchmark:
        "benchmarks/rna_pseudobulk/{sample}.tsv"
    conda:
        "../envs/scanpy.yaml"
    threads: 1
    resources:
        # the sample's QC'd counts in memory and three obs columns of the cohort
        # (at 1M cells, 50,000 a sample: 0.5 + 0.35 GB of input, 1.4 GB used)
        mem_mb=mem(1500, 3),
        runtime=runtime(30, 30),
    params:
        metadata=metadata,
    script:
        "../../scripts/rna_pseudobulk.py"


rule profile_pseudobulk:
    input:
        expand(rules.rna_pseudobulk.output[0], sample=rna_samples()),
    output:
        counts="results/profile/pseudobulk/rna_counts.h5ad",
        cells="results/profile/pseudobulk/rna_cells.tsv",
    log:
        "logs/profile_pseudobulk/profile_pseudobulk.log",
    benchmark:
        "benchmarks/profile_pseudobulk/profile_pseudobulk.tsv"
    conda:
        "../envs/scanpy.yaml"
    threads: 1
    resources:
        mem_mb=mem(2000, 3),
        runtime=runtime(30, 10),
    script:
        "../../scripts/profile_pseudobulk.py"


rule profile_differential_expression:
    input:
        rules.profile_pseudobulk.output.counts,
    output:
        table=report(
            "results/profile/differential_expression.tsv",
            caption="../report/differential_expression.rst",
            category="Immune state",
            labels={"result": "differential expression, RNA (table)"},
        ),
        design=report(
            "results/profile/differential_expression_samples.tsv",
            caption="../report/differential_expression.rst",
            category="Immune state",
            labels={"result": "differential expression, RNA (samples per test)"},
        ),
        figure=report(
            "results/profile/figures/differential_expression_top.png",
            caption="../report/differential_expression.rst",
            category="Immune state",
            labels={"result": "differential expression, RNA (top genes)"},
        ),
    log:
        "logs/profile_differential_expression/profile_differential_expression.log",
    benchmark:
        "benchmarks/profile_differential_expression/profile_differential_expression.tsv"
    conda:
        "../envs/scanpy.yaml"
    threads: 2
    resources:
        mem_mb=mem(1500, 3),
        runtime=runtime(30, 10),
    params:
        samples=sample_records(),
        de=PARAMS.profile_differential_expression,
    script:
        "../../scripts/profile_differential_expression.py"


rule profile_qc_status:
    input:
        unpack(qc_status_inputs),
    output:
        table=report(
            "results/profile/qc_status.tsv",
            caption="../report/qc_status.rst",
            category="Quality control",
            subcategory="All samples",
            labels={"figure": "pass / fail per sample (table)"},
        ),
        figure=report(
            "results/profile/figures/qc_status.png",
            caption="../report/qc_status.rst",
            category="Quality control",
            subcategory="All samples",
            labels={"figure": "pass / fail per sample"},
        ),
    log:
        "logs/profile_qc_status/profile_qc_status.log",
    benchmark:
        "benchmarks/profile_qc_status/profile_qc_status.tsv"
    conda:
        "../envs/scanpy.yaml"
    threads: 1
    resources:
        mem_mb=mem_small,
        runtime=5,
    params:
        qc_status=PARAMS.profile_qc_status,
    script:
        "../../scripts/profile_qc_status.py"


rule profile_provenance:
    input:
        annotated=annotated_outputs(),
        lock=str(REPO / "requirements.lock"),
    output:
        table=report(
            "results/profile/provenance.tsv",
            caption="../report/provenance.rst",
            category="Provenance",
            labels={"file": "versions, parameters, checksums"},
        ),
        config=report(
            "results/profile/config_used.yaml",
            caption="../report/provenance.rst",
            category="Provenance",
            labels={"file": "configuration used"},
        ),
        environment=report(
            "results/profile/environment.tsv",
            caption="../report/provenance.rst",
            category="Provenance",
            labels={"file": "installed packages vs requirements.lock"},
        ),
    log:
        "logs/profile_provenance/profile_provenance.log",
    benchmark:
        "benchmarks/profile_provenance/profile_provenance.tsv"
    conda:
        "../envs/scanpy.yaml"
    threads: 1
    resources:
        mem_mb=mem_small,
        runtime=5,
    params:
        config=config_used(),
    script:
        "../../scripts/profile_provenance.py"
