"""Immune cell-type annotation.

Default: marker based. A curated table (``resources/rna_cell_types.tsv``) gives each
cell type a Cell Ontology id, a lineage and positive / negative marker genes.
Each marker is scaled by its highest cluster mean (floored at ``min_expression``,
so a gene that no cluster really expresses cannot score high anywhere); a type's
score is the mean scaled positive markers minus the mean scaled negatives. Scores
are computed per cell and per cluster; clusters are labelled with their best type
(``unknown`` below ``min_score``), and a cluster whose cells split between two
well-supported types is re-clustered and labelled per sub-cluster.

Optional: scANVI label transfer from a labelled reference, CellTypist with a
user-given model file (nothing is downloaded).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from ..accelerator import Accelerator

logger = logging.getLogger(__name__)

LINEAGES = (
    "T cell",
    "NK cell",
    "B cell",
    "monocyte",
    "dendritic cell",
    "granulocyte",
    "myeloid cell",
    "non-myeloid cell",
    "other",
    "unknown",
)
UNKNOWN = {"cell_type": "unknown", "cell_ontology_id": "CL:0000000", "lineage": "unknown"}
MIN_EVIDENCE = 3
LABEL_COLUMNS = ("cell_type", "cell_ontology_id", "lineage", "cell_type_score")


def split_markers(value: object) -> list[str]:
    if not isinstance(value, str):
        return []
    return [g.strip() for g in value.split(",") if g.strip()]


def read_marker_table(path: str | Path) -> pd.DataFrame:
    """Read and check a marker table (``cell_type, cell_ontology_id, lineage, positive, negative``)."""
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    need = {"cell_type", "cell_ontology_id", "lineage", "positive", "negative"}
    if missing := need - set(df.columns):
        raise ValueError(f"{path}: marker table lacks columns {sorted(missing)}")
    bad = sorted(set(df["lineage"]) - set(LINEAGES))
    if bad:
        raise ValueError(f"{path}: unknown lineage(s) {bad}; allowed: {LINEAGES}")
    if df["cell_type"].duplicated().any():
        raise ValueError(
            f"{path}: duplicated cell types {df.loc[df['cell_type'].duplicated(), 'cell_type'].tolist()}"
        )
    for row in df.itertuples():
        if not split_markers(row.positive):
            raise ValueError(f"{path}: cell type '{row.cell_type}' has no positive markers")
    return df.set_index("cell_type", drop=False)


def marker_genes(markers: pd.DataFrame) -> list[str]:
    """All genes named in the table, in first-seen order."""
    seen: dict[str, None] = {}
    for col in ("positive", "negative"):
        for v in markers[col]:
            seen.update(dict.fromkeys(split_markers(v)))
    return list(seen)


def _weights(markers: pd.DataFrame, genes: pd.Index) -> tuple[np.ndarray, list[str]]:
    """Type × gene weights: +1/n_pos for positives, -1/n_neg for negatives (genes in the data)."""
    W = np.zeros((len(markers), len(genes)), dtype=np.float64)
    kept: list[str] = []
    for i, row in enumerate(markers.itertuples()):
        pos = [g for g in split_markers(row.positive) if g in genes]
        neg = [g for g in split_markers(row.negative) if g in genes]
        if not pos:
            logger.warning(
                "cell type '%s': none of its positive markers is in the data; skipped",
                row.cell_type,
            )
            continue
        # a type with fewer than MIN_EVIDENCE of its markers in the data cannot reach a full score
        W[i, genes.get_indexer(pos)] += 1.0 / max(
            len(pos), min(MIN_EVIDENCE, len(split_markers(row.positive)))
        )
        if neg:
            W[i, genes.get_indexer(neg)] -= 1.0 / len(neg)
        kept.append(row.cell_type)
    return W, kept


def _codes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct labels and each row's index into them (``np.unique(...,
    return_inverse=True)`` by hashing: no sort of the rows' strings)."""
    inv, cats = pd.factorize(labels, sort=True)
    return np.asarray(cats), inv


def _group_sums(X: np.ndarray, inv: np.ndarray, n_groups: int) -> np.ndarray:
    """Column sums of ``X`` per group code ``inv`` (float64, in row order)."""
    if not X.shape[1]:
        return np.zeros((n_groups, 0))
    return np.column_stack(
        [np.bincount(inv, weights=X[:, j], minlength=n_groups) for j in range(X.shape[1])]
    )


def _group_means(X: np.ndarray, inv: np.ndarray, n_groups: int) -> np.ndarray:
    """Column means of ``X`` per group code ``inv`` (float64 sums, in row order)."""
    return _group_sums(X, inv, n_groups) / np.bincount(inv, minlength=n_groups)[:, None]


def _cluster_means(X: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct labels and each label's column means of ``X``."""
    cats, inv = _codes(labels)
    return cats, _group_means(X, inv, len(cats))


def _resolve(scores: pd.DataFrame, min_score: float) -> pd.DataFrame:
    """Best type per row with its score and margin over the runner-up; ``unknown`` below min_score."""
    vals = scores.to_numpy()
    order = np.argsort(-vals, axis=1)
    best = vals[np.arange(len(vals)), order[:, 0]]
    second = vals[np.arange(len(vals)), order[:, 1]] if vals.shape[1] > 1 else np.zeros(len(vals))
    label = np.asarray(scores.columns)[order[:, 0]].astype(object)
    label[best < min_score] = UNKNOWN["cell_type"]
    return pd.DataFrame(
        {"label": label, "score": best, "margin": best - second}, index=scores.index
    )


def _scores(Xs: np.ndarray, W: np.ndarray, rule: str) -> np.ndarray:
    """Type scores of scaled rows ``Xs``: ``mean`` = mean positives − mean negatives
    (weights ``W``); ``gate`` = lowest positive − highest negative (every positive marker
    must be high, every negative low: how a cytometrist gates)."""
    if rule == "mean":
        return Xs @ W.T
    out = np.zeros((Xs.shape[0], W.shape[0]))
    for i, w in enumerate(W):
        pos, neg = w > 0, w < 0
        out[:, i] = Xs[:, pos].min(axis=1) - (Xs[:, neg].max(axis=1) if neg.any() else 0.0)
    return out


def _group_calls(
    cats: np.ndarray,
    scaled_means: np.ndarray,
    W: np.ndarray,
    types: list[str],
    min_score: float,
    rule: str = "mean",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scaled group means → type scores → best type, score and margin."""
    scores = pd.DataFrame(_scores(scaled_means, W, rule), index=cats, columns=types)
    return scores, _resolve(scores, min_score)


def _leiden(sub: AnnData, resolution: float, seed: int) -> np.ndarray:
    from .clustering import leiden

    labels = leiden(sub.obsp["connectivities"], resolution=resolution, seed=seed)
    return np.asarray(labels).astype(str)


_SEP = "\x1f"  # between a cluster and a sub-cluster label in one key (numpy keeps it, not NUL)

#: one block of cells: marker values (cells × genes), cluster labels, sub-cluster labels or None
Block = tuple[np.ndarray, np.ndarray, "np.ndarray | None"]


def _pairs(
    clusters: np.ndarray, subclusters: np.ndarray | None
) -> tuple[list[tuple[str, str]], np.ndarray]:
    """The distinct ``(cluster, sub-cluster or "")`` pairs of a block's cells and each cell's
    index into them."""
    clusters = np.asarray(clusters).astype(str)
    subs = np.full(len(clusters), "") if subclusters is None else np.asarray(subclusters)
    keys, inv = _codes(np.char.add(np.char.add(clusters, _SEP), subs.astype(str)))
    return [tuple(k.split(_SEP)) for k in keys], inv


@dataclasses.dataclass(frozen=True)
class _Scorer:
    """Marker values scaled to [0, 1] per gene (``(x - low) / scale``) and scored per type
    (``W``, ``rule``); a best score below ``min_score`` is unknown."""

    low: np.ndarray
    scale: np.ndarray
    W: np.ndarray
    rule: str
    min_score: float

    def scaled(self, M: np.ndarray) -> np.ndarray:
        return np.clip((M - self.low) / self.scale, 0.0, 1.0)

    def cell_scores(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every type's score per cell, the best type's column (-1: unknown) and score."""
        S = _scores(self.scaled(X), self.W, self.rule)
        best = np.argsort(-S, axis=1)[:, 0] if S.shape[1] else np.zeros(len(S), dtype=int)
        best_score = S[np.arange(len(S)), best] if S.shape[1] else np.zeros(len(S))
        return S, np.where(best_score < self.min_score, -1, best), best_score


class MarkerAnnotation:
    """Marker annotation fitted over blocks of cells (:func:`fit_marker_annotation`): the
    per-gene scale, the calls of every cluster and relabelled sub-cluster, and
    :meth:`label` to label any block of cells — so a cohort of 100M events is annotated one
    file at a time, with the same result as all at once."""

    def __init__(self, scorer: _Scorer, kept, final_of, call_of, table, uns):
        self.scorer, self.kept = scorer, kept
        self.final_of = final_of  # (cluster, sub-cluster or "") -> final annotation group
        self.groups = np.array(sorted(set(final_of.values())), dtype=object)
        self.types, type_of = _codes(np.array([call_of[g] for g in self.groups], dtype=object))
        self._type_of = type_of  # final group code -> type code
        self.columns = {}  # type code -> label columns (ontology id, lineage)
        for col in ("cell_ontology_id", "lineage"):
            values = [table.at[t, col] if t in table.index else UNKNOWN[col] for t in self.types]
            names, code = _codes(np.array(values, dtype=object))
            self.columns[col] = (names, code)
        # the column of each type in the score matrix (-1: not scored, e.g. unknown)
        self._column = np.array([kept.index(t) if t in kept else -1 for t in self.types], int)
        self.uns = uns

    def label(
        self, X: np.ndarray, clusters: np.ndarray, subclusters: np.ndarray | None = None
    ) -> dict[str, pd.Categorical | np.ndarray]:
        """``annotation_group``, ``cell_type``, ``cell_ontology_id``, ``lineage`` (categoricals
        with the categories of the whole fit) and ``cell_type_score`` of a block of cells."""
        pairs, inv = _pairs(clusters, subclusters)
        finals = [self.final_of.get(pair, pair[0]) for pair in pairs]
        group = pd.Index(self.groups).get_indexer(finals)[inv]
        type_code = self._type_of[group]
        out = {
            "annotation_group": pd.Categorical.from_codes(group, categories=pd.Index(self.groups)),
            "cell_type": pd.Categorical.from_codes(type_code, categories=pd.Index(self.types)),
        }
        for col, (names, code) in self.columns.items():
            out[col] = pd.Categorical.from_codes(code[type_code], categories=pd.Index(names))
        # each cell's score for its own type (its best score where the type is not scored)
        S, _, best_score = self.scorer.cell_scores(X)
        column = self._column[type_code]
        own = np.where(column >= 0, S[np.arange(len(S)), np.maximum(column, 0)], best_score)
        out["cell_type_score"] = own.astype(np.float32)
        return out

    def categories(self) -> dict[str, list[str] | np.dtype]:
        """The columns :meth:`label_stream` gives: each label column's categories (those of
        the whole fit) and the score's dtype."""
        return {
            "cell_type": list(self.types),
            **{col: list(names) for col, (names, _) in self.columns.items()},
            "cell_type_score": np.dtype(np.float32),
            "annotation_group": list(self.groups),
        }

    def label_stream(
        self,
        blocks: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
        rows: Sequence[slice],
    ) -> Iterator[tuple[slice, dict[str, np.ndarray]]]:
        """:meth:`label` of blocks of cells (``(X, clusters, subclusters)``; block ``i``
        holds the cells ``rows[i]``: one file's at a time) as ``(rows, columns)`` with a
        code per label column (into :meth:`categories`) and the score: what
        :class:`~immunoprofiler.io.h5ad.ObsBlocks` writes, nothing kept for all cells."""
        for (X, clusters, subs), r in zip(blocks, rows, strict=True):
            labels = self.label(X, clusters, subs)
            yield r, {col: v if col == "cell_type_score" else v.codes for col, v in labels.items()}


def fit_marker_annotation(
    blocks,
    *,
    genes: pd.Index,
    markers: pd.DataFrame,
    cluster_key: str,
    min_score: float = 0.3,
    min_expression: float = 1.0,
    split_fraction: float = 0.05,
    min_margin: float = 0.1,
    min_group_size: int = 5,
    rule: str = "mean",
    split: bool = False,
    resplit=None,
) -> MarkerAnnotation:
    """Fit the marker annotation of :func:`annotate` over ``blocks()`` (a callable giving
    an iterable of :data:`Block`, read again for each pass): cluster means (pass 1), each
    cell's best type voted per cluster (pass 2, when ``split``), sub-cluster means from the
    blocks' sub-cluster labels or from ``resplit(cluster) -> labels of its cells`` (one
    block in memory: re-clustering of the neighbour graph). Memory: one block plus
    clusters × sub-clusters × genes sums.
    """
    W, kept = _weights(markers, genes)
    W = W[[markers.index.get_loc(t) for t in kept]]
    sums, counts = {}, {}  # (cluster, sub-cluster or "") -> column sums, cells
    for X, clusters, subclusters in blocks():
        pairs, inv = _pairs(clusters, subclusters)
        part = _group_sums(np.asarray(X), inv, len(pairs))
        n = np.bincount(inv, minlength=len(pairs))
        for pair, m, k in zip(pairs, part, n, strict=True):
            sums[pair] = sums.get(pair, 0.0) + m
            counts[pair] = counts.get(pair, 0) + int(k)
    groups = np.array(sorted({c for c, _ in sums}), dtype=object)
    if not len(groups):
        raise ValueError("no cells to annotate")
    size = {c: sum(k for (g, _), k in counts.items() if g == c) for c in groups}
    means = np.array([sum(m for (g, _), m in sums.items() if g == c) / size[c] for c in groups])
    if rule == "gate":
        # positive level = the second-highest group mean: one cluster of doublets (high
        # in everything) must not set the positive level of every marker
        low = means.min(axis=0)
        high = np.sort(means, axis=0)[-2] if len(means) > 2 else means.max(axis=0)
        scale = np.maximum(high - low, min_expression)
    elif rule == "mean":
        low = np.zeros(means.shape[1])
        scale = np.maximum(means.max(axis=0), min_expression)
    else:
        raise ValueError(f"unknown annotation rule '{rule}' (mean, gate)")
    table = markers.set_index("cell_type")
    scorer = _Scorer(low, scale, W, rule, min_score)
    group_scores, group_calls = _group_calls(groups, scorer.scaled(means), W, kept, min_score, rule)
    call_of = dict(zip(groups, group_calls["label"], strict=True))
    final_of = {pair: pair[0] for pair in sums}
    if split:
        votes = np.zeros((len(groups), len(kept)), dtype=np.int64)
        for X, clusters, _ in blocks():  # cells of each cluster called each type (not unknown)
            _, best, _ = scorer.cell_scores(np.asarray(X))
            g = pd.Index(groups).get_indexer(np.asarray(clusters).astype(str))
            known = best >= 0
            votes += np.bincount(
                g[known] * len(kept) + best[known], minlength=len(groups) * len(kept)
            ).reshape(len(groups), len(kept))
        for gi, c in enumerate(groups):
            v = np.sort(votes[gi])[::-1] / max(size[c], 1)
            if len(v) < 2 or v[1] == 0 or v[1] < split_fraction:
                continue
            if resplit is not None:  # one block in memory: re-cluster this cluster's cells
                ((X, clusters, _),) = blocks()
                in_c = np.asarray(clusters).astype(str) == c
                sub_labels = resplit(c, in_c)
                names, sub_means = _cluster_means(np.asarray(X)[in_c], sub_labels)
                sizes = pd.Series(sub_labels).value_counts()
                del final_of[(c, "")]  # its cells are labelled by their sub-cluster now
                final_of.update({(c, str(name)): c for name in names})
            else:
                names = np.array(sorted(s for g, s in sums if g == c), dtype=object)
                sub_means = np.array([sums[(c, s)] / counts[(c, s)] for s in names])
                sizes = {s: counts[(c, s)] for s in names}
            sub_scores, sub_calls = _group_calls(
                names, scorer.scaled(sub_means), W, kept, min_score, rule
            )
            for name, row in zip(names, sub_calls.itertuples(), strict=True):
                # a sub-cluster keeps its parent's label unless it confidently is something else
                if (
                    row.label not in (UNKNOWN["cell_type"], call_of[c])
                    and row.margin >= min_margin
                    and sizes[name] >= min_group_size
                ):
                    sub_group = f"{c}.{name}"
                    final_of[(c, str(name))] = sub_group
                    call_of[sub_group] = row.label
                    group_scores.loc[sub_group] = sub_scores.loc[name]
                    group_calls.loc[sub_group] = [row.label, row.score, row.margin]
                    logger.info(
                        "cluster %s: sub-cluster %s relabelled %s (score %.2f)",
                        c,
                        name,
                        row.label,
                        row.score,
                    )
    uns = {
        "method": "markers",
        "cluster_key": cluster_key,
        "groups": pd.concat(
            [group_calls.rename(columns={"label": "cell_type"}), group_scores.round(4)], axis=1
        )
        .rename_axis("group")
        .reset_index(),
        "params": {
            "min_score": min_score,
            "min_expression": min_expression,
            "split_fraction": split_fraction,
            "rule": rule,
        },
    }
    return MarkerAnnotation(scorer, kept, final_of, call_of, table, uns)


def annotate(
    adata: AnnData,
    *,
    markers: pd.DataFrame,
    cluster_key: str = "leiden",
    min_score: float = 0.3,
    min_expression: float = 1.0,
    split_fraction: float = 0.05,
    split_resolution: float = 1.0,
    min_margin: float = 0.1,
    min_group_size: int = 5,
    rule: str = "mean",
    subcluster_key: str | None = None,
    seed: int = 0,
) -> None:
    """Marker-based annotation into ``obs[cell_type, cell_ontology_id, lineage, cell_type_score]``.

    Parameters
    ----------
    adata
        Cells with shifted-log expression of (at least) the marker genes in ``X`` and
        clusters in ``obs[cluster_key]``; a neighbour graph in ``obsp`` enables sub-clustering.
    markers
        From :func:`read_marker_table`.
    min_score
        Clusters whose best score is lower are ``unknown``.
    min_expression
        Floor of the per-gene scale (shifted-log units).
    split_fraction
        A cluster is sub-clustered when a second type wins in at least this fraction of
        its cells (cell-level calls with score ≥ ``min_score``). A sub-cluster (of at
        least ``min_group_size`` cells) takes another label than its parent only when that
        label beats the runner-up by ``min_margin``; otherwise it keeps the parent's label.
    rule
        ``mean`` (RNA: many weak markers, mean positive − mean negative, each gene scaled
        by its highest cluster mean) or ``gate`` (protein: few strong markers, lowest
        positive − highest negative, each marker scaled between its lowest and its
        second-highest cluster mean).
    subcluster_key
        Sub-groups to use when a cluster is split (e.g. FlowSOM nodes inside metaclusters)
        instead of re-clustering the neighbour graph.

    Examples
    --------
    >>> annotate(adata, markers=read_marker_table("resources/rna_cell_types.tsv"))  # doctest: +SKIP
    >>> adata.obs["cell_type"].value_counts()  # doctest: +SKIP
    """
    genes = pd.Index([g for g in marker_genes(markers) if g in adata.var_names])
    if len(genes) == 0:
        raise ValueError("none of the marker genes is in the data (are var_names gene symbols?)")
    X = adata[:, genes].X
    X = X.toarray() if sp.issparse(X) else np.asarray(X)  # float32 or 64: scores are float64
    clusters = adata.obs[cluster_key].astype(str).to_numpy()
    subs = None if subcluster_key is None else adata.obs[subcluster_key].astype(str).to_numpy()
    leiden = subcluster_key is None and "connectivities" in adata.obsp
    resplit_labels: dict[str, np.ndarray] = {}

    def resplit(c: str, in_c: np.ndarray) -> np.ndarray:
        resplit_labels[c] = _leiden(adata[in_c], split_resolution, seed)
        return resplit_labels[c]

    fit = fit_marker_annotation(
        lambda: [(X, clusters, subs)],
        genes=genes,
        markers=markers,
        cluster_key=cluster_key,
        min_score=min_score,
        min_expression=min_expression,
        split_fraction=split_fraction,
        min_margin=min_margin,
        min_group_size=min_group_size,
        rule=rule,
        split=subs is not None or leiden,
        resplit=resplit if leiden else None,
    )
    if leiden:  # each re-clustered cell's sub-cluster, "" elsewhere
        subs = np.full(len(clusters), "", dtype=object)
        for c, labels in resplit_labels.items():
            subs[clusters == c] = labels
    for col, values in fit.label(X, clusters, subs).items():
        adata.obs[col] = values
    adata.uns["annotation"] = fit.uns


def read_lineage_table(path: str | Path) -> pd.DataFrame:
    """Read a lineage fallback table: a marker table (:func:`read_marker_table`) plus
    ``stands_for``, the lineages each row stands in for (see :func:`resolve_panel_markers`)."""
    df = read_marker_table(path)
    if "stands_for" not in df:
        raise ValueError(f"{path}: lineage table lacks the column 'stands_for'")
    bad = sorted({x for v in df["stands_for"] for x in split_markers(v)} - set(LINEAGES))
    if bad:
        raise ValueError(f"{path}: stands_for names unknown lineage(s) {bad}; allowed: {LINEAGES}")
    return df


def resolve_panel_markers(
    markers: pd.DataFrame, panel_markers: list[str], lineages: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Rewrite a protein marker table in the panel's own marker names.

    Each comma-separated entry of ``positive`` / ``negative`` is a slot: alternatives
    separated by ``|`` (aliases and species equivalents, e.g. ``CD56|NK1.1``,
    ``TCRgd|TCRyd|GDTCR``), the first one the panel has is used; names are compared in
    :func:`~immunoprofiler.io.panel.canonical_marker` form (``HLA-DR`` = ``HLADR``,
    ``NK1/1`` = ``NK1.1``). A positive slot ending in ``?`` is optional; a negative slot
    ending in ``!`` is required when an optional positive is missing (CD8 T cell: CD8 is
    optional, but then CD4 is needed to call CD3+ CD4- cells CD8 T). A cell type
    with a required positive slot the panel cannot fill is dropped (logged): the panel
    cannot identify it.

    ``lineages`` (:func:`read_lineage_table`) gives coarser labels for what the panel cannot
    resolve: a row is used when the panel identifies no cell type of any lineage it
    ``stands_for`` and has its markers (a panel with CD3 but neither CD4 nor CD8 reports
    "T cell"; a myeloid panel without CD3/CD19/CD56 reports its myeloid subsets and
    "non-myeloid cell").
    """
    from ..io.panel import canonical_marker

    lookup: dict[str, str] = {}
    for m in panel_markers:
        lookup.setdefault(canonical_marker(m), m)

    def resolve(slot: str) -> str | None:
        for alt in slot.rstrip("?").split("|"):
            hit = lookup.get(canonical_marker(alt))
            if hit is not None:
                return hit
        return None

    def resolved(row) -> dict | None:
        pos, missing, optional_missing = [], [], False
        for slot in split_markers(row.positive):
            hit = resolve(slot)
            if hit is not None:
                pos.append(hit)
            elif not slot.endswith("?"):
                missing.append(slot)
            else:
                optional_missing = True
        negatives = split_markers(row.negative)
        if optional_missing:
            # "CD4!": without its optional marker (CD8) the type is CD3+ CD4-, which needs CD4
            missing += [n for n in negatives if n.endswith("!") and resolve(n.rstrip("!")) is None]
        neg = [
            h for slot in negatives if (h := resolve(slot.rstrip("!"))) is not None and h not in pos
        ]
        if missing or not pos:
            logger.info(
                "cell type '%s' not identifiable with this panel (lacks %s)", row.cell_type, missing
            )
            return None
        return {**row._asdict(), "positive": ",".join(pos), "negative": ",".join(neg)}

    rows = [r for row in markers.itertuples(index=False) if (r := resolved(row))]
    if lineages is not None:
        found = {r["lineage"] for r in rows}
        for row in lineages.itertuples(index=False):
            if found & set(split_markers(row.stands_for)):
                continue
            if (r := resolved(row)) is not None:
                r.pop("stands_for", None)
                logger.info("panel resolves no %s: labelled '%s'", row.stands_for, row.cell_type)
                rows.append(r)
                found.add(r["lineage"])
    if not rows:
        raise ValueError(
            f"no cell type of the marker table can be identified with markers {panel_markers}"
        )
    return pd.DataFrame(rows).set_index("cell_type", drop=False)


def _label_metadata(labels: pd.Series, markers: pd.DataFrame | None) -> pd.DataFrame:
    """Ontology id and lineage of each label (looked up once per distinct label)."""
    table = markers.set_index("cell_type") if markers is not None else pd.DataFrame()
    types, code = _codes(labels.astype(str).to_numpy())
    ont = [
        table.at[t, "cell_ontology_id"] if t in table.index else UNKNOWN["cell_ontology_id"]
        for t in types
    ]
    lin = [table.at[t, "lineage"] if t in table.index else "other" for t in types]
    lin = [UNKNOWN["lineage"] if t == "unknown" else x for t, x in zip(types, lin, strict=True)]
    return pd.DataFrame(
        {
            "cell_ontology_id": np.asarray(ont, dtype=object)[code],
            "lineage": np.asarray(lin, dtype=object)[code],
        },
        index=labels.index,
    )


def _set_labels(
    adata: AnnData, labels: pd.Series, score: np.ndarray, markers: pd.DataFrame | None, method: str
) -> None:
    meta = _label_metadata(labels, markers)
    adata.obs["cell_type"] = pd.Categorical(labels.astype(str).to_numpy())
    adata.obs["cell_ontology_id"] = pd.Categorical(meta["cell_ontology_id"].to_numpy())
    adata.obs["lineage"] = pd.Categorical(meta["lineage"].to_numpy())
    adata.obs["cell_type_score"] = np.asarray(score, dtype=np.float32)
    adata.uns["annotation"] = {"method": method}


def annotate_celltypist(
    adata: AnnData,
    *,
    model: str | Path,
    markers: pd.DataFrame | None = None,
    cluster_key: str | None = "leiden",
    min_prob: float = 0.5,
) -> None:
    """CellTypist with a model file given by the user (no download), majority voting over clusters.

    ``X`` must be ``log1p`` of counts normalised to 10,000 per cell (the pipeline's default).
    ``X`` may hold only the model's genes (CellTypist uses no others; it then warns that the
    per-cell sum is not 10,000, which is expected). Labels that match the marker table's cell types get its ontology id and
    lineage.
    """
    import celltypist

    m = celltypist.models.Model.load(str(model))
    pred = celltypist.annotate(
        adata,
        model=m,
        majority_voting=cluster_key is not None,
        over_clustering=adata.obs[cluster_key].astype(str).to_numpy() if cluster_key else None,
    )
    col = "majority_voting" if cluster_key else "predicted_labels"
    labels = pred.predicted_labels[col].astype(str)
    prob = pred.probability_matrix.max(axis=1).to_numpy()
    labels = labels.where(prob >= min_prob, "unknown")
    _set_labels(adata, labels, prob, markers, "celltypist")


def annotate_scanvi(
    adata: AnnData,
    *,
    reference: AnnData,
    label_key: str,
    batch_key: str = "batch",
    markers: pd.DataFrame | None = None,
    n_latent: int = 30,
    max_epochs: int | None = None,
    seed: int = 0,
    accelerator: Accelerator = "cpu",
    min_prob: float = 0.5,
) -> None:
    """scANVI label transfer from a labelled reference (raw counts in ``layers["counts"]`` or ``X``).

    Reference and query are modelled together on their shared genes (the query's
    ``layers["counts"]``); reference cells carry ``reference.obs[label_key]``.
    """
    import anndata as ad
    import scvi

    genes = adata.var_names.intersection(reference.var_names)
    if len(genes) < 50:
        raise ValueError(f"reference shares only {len(genes)} genes with the data (need >= 50)")
    if label_key not in reference.obs:
        raise KeyError(f"reference has no obs column '{label_key}'")
    ref_counts = reference.layers["counts"] if "counts" in reference.layers else reference.X
    ref = ad.AnnData(
        X=sp.csr_matrix(
            reference[:, genes].X
            if ref_counts is reference.X
            else reference[:, genes].layers["counts"]
        )
    )
    ref.obs_names = [f"ref_{i}" for i in reference.obs_names]
    ref.obs["_label"] = reference.obs[label_key].astype(str).to_numpy()
    ref.obs["_batch"] = "reference"
    qry = ad.AnnData(X=sp.csr_matrix(adata[:, genes].layers["counts"]))
    qry.obs_names = adata.obs_names
    qry.obs["_label"] = "Unknown"
    qry.obs["_batch"] = adata.obs[batch_key].astype(str).to_numpy()
    both = ad.concat([ref, qry])
    scvi.settings.seed = seed
    scvi.model.SCVI.setup_anndata(both, batch_key="_batch", labels_key="_label")
    vae = scvi.model.SCVI(both, n_latent=n_latent)
    vae.train(max_epochs=max_epochs, accelerator=accelerator, devices=1, enable_progress_bar=False)
    lvae = scvi.model.SCANVI.from_scvi_model(vae, unlabeled_category="Unknown", labels_key="_label")
    lvae.train(
        max_epochs=max(1, (max_epochs or 20) // 2),
        accelerator=accelerator,
        devices=1,
        enable_progress_bar=False,
    )
    q = both[both.obs["_batch"] != "reference"]
    soft = lvae.predict(q, soft=True)
    labels = pd.Series(soft.idxmax(axis=1).to_numpy(), index=adata.obs_names)
    prob = soft.max(axis=1).to_numpy()
    labels = labels.where(prob >= min_prob, "unknown")
    _set_labels(adata, labels, prob, markers, "scanvi")
    adata.obsm["X_scANVI"] = lvae.get_latent_representation(q).astype(np.float32)


Species = Literal["human", "mouse"]
#: human marker symbols whose mouse ortholog is not the same name in title case
#: (alternatives in order; every other symbol is matched without regard to case)
MOUSE_ALIASES: dict[str, tuple[str, ...]] = {
    "LYZ": ("Lyz2", "Lyz1"),
    "FCGR3A": ("Fcgr4", "Fcgr3"),
    "TRGC1": ("Tcrg-C1",),
    "TRGC2": ("Tcrg-C2",),
    "IGHA1": ("Igha",),
    "HBB": ("Hbb-bs", "Hbb-bt"),
    "HBA1": ("Hba-a1",),
    "HBA2": ("Hba-a2",),
    "CLEC4C": ("Siglech",),
}


class MarkerCoverageError(ValueError):
    """Too few of the marker genes are in the data: another species or other gene ids."""


def localize_markers(
    markers: pd.DataFrame, var_names: pd.Index, *, species: Species, min_found: float
) -> pd.DataFrame:
    """The marker table in the data's gene names: symbols matched without regard to case
    (``CD3E`` = ``Cd3e``) and, for ``mouse``, through :data:`MOUSE_ALIASES`; genes not in the
    data keep their name (they are left out when scoring).

    Raises
    ------
    MarkerCoverageError
        When fewer than ``min_found`` of the table's genes are in the data.
    """
    lookup: dict[str, str] = {}
    for v in map(str, var_names):
        lookup.setdefault(v.upper(), v)
    aliases = MOUSE_ALIASES if species == "mouse" else {}

    def find(gene: str) -> str | None:
        for cand in (*aliases.get(gene.upper(), ()), gene):
            if (hit := lookup.get(cand.upper())) is not None:
                return hit
        return None

    genes = marker_genes(markers)
    found = {g: h for g in genes if (h := find(g)) is not None}
    share = len(found) / max(len(genes), 1)
    if share < min_found:
        example = ", ".join(list(map(str, var_names[:5])))
        raise MarkerCoverageError(
            f"only {len(found)} of the {len(genes)} marker genes ({share:.0%}) are in the data "
            f"(its genes look like: {example}): wrong species or gene ids? Set rna.species "
            f"(now {species}), give gene symbols, or a marker table for these genes "
            f"(rna.annotate.markers); rna.annotate.min_markers_found is {min_found:g}"
        )
    out = markers.copy()
    for col in ("positive", "negative"):
        out[col] = [",".join(found.get(g, g) for g in split_markers(v)) for v in markers[col]]
    logger.info("%d of %d marker genes found in the data (%s)", len(found), len(genes), species)
    return out


Method = Literal["markers", "celltypist", "scanvi"]
#: the config key (``rna.annotate.<key>``) each method needs a file for
NEEDS = {"celltypist": "celltypist_model", "scanvi": "reference"}


def _needs(value, method: str):
    if value is None or (isinstance(value, str | Path) and not str(value)):
        raise ValueError(f"annotation method '{method}' needs config rna.annotate.{NEEDS[method]}")
    return value


def annotation_genes(
    method: Method, *, markers: pd.DataFrame, var_names: pd.Index, celltypist_model=None
) -> list[str] | None:
    """The genes (of ``var_names``) an annotation ``method`` reads from the normalised cohort:
    the marker table's for ``markers``, the model's for ``celltypist``; ``None`` for
    ``scanvi`` (it models the highly variable genes' counts)."""
    if method == "markers":
        return [g for g in marker_genes(markers) if g in var_names]
    if method == "celltypist":
        import celltypist

        model = celltypist.models.Model.load(str(_needs(celltypist_model, method)))
        return [g for g in model.features if g in var_names]
    if method == "scanvi":
        return None
    raise ValueError(f"unknown annotation method '{method}' (markers, celltypist, scanvi)")


def annotate_cells(
    adata: AnnData,
    *,
    method: Method,
    markers: pd.DataFrame,
    min_score: float,
    min_expression: float,
    split_fraction: float,
    seed: int,
    max_epochs: int | None = None,
    cluster_key: str = "leiden",
    reference: AnnData | None = None,
    reference_label_key: str = "cell_type",
    celltypist_model: str | Path | None = None,
    target_sum: float,
    accelerator: Accelerator = "cpu",
) -> None:
    """Label the cells of ``adata`` with ``method`` (obs columns :data:`LABEL_COLUMNS`).

    ``markers``: :func:`annotate` on ``X`` (the marker genes) and the clusters in
    ``obs[cluster_key]``; ``celltypist``: :func:`annotate_celltypist` with the user's model
    (``X`` must be log1p of 10,000 counts per cell: ``target_sum`` is checked);
    ``scanvi``: :func:`annotate_scanvi` from the labelled ``reference``.
    """
    if method == "markers":
        annotate(
            adata,
            markers=markers,
            cluster_key=cluster_key,
            min_score=min_score,
            min_expression=min_expression,
            split_fraction=split_fraction,
            seed=seed,
        )
    elif method == "celltypist":
        _needs(celltypist_model, method)
        if target_sum != 1e4:
            raise ValueError(
                f"CellTypist models expect log1p of 10,000 counts per cell; the cohort was "
                f"normalised to {target_sum} (rna.normalize.target_sum)"
            )
        annotate_celltypist(adata, model=celltypist_model, markers=markers, cluster_key=cluster_key)
    elif method == "scanvi":
        annotate_scanvi(
            adata,
            reference=_needs(reference, method),
            label_key=reference_label_key,
            markers=markers,
            max_epochs=max_epochs,
            seed=seed,
            accelerator=accelerator,
        )
    else:
        raise ValueError(f"unknown annotation method '{method}' (markers, celltypist, scanvi)")
