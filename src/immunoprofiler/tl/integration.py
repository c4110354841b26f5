"""Batch integration: scVI (default), Harmony, or plain PCA."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Literal

import numpy as np
import scanpy as sc
from anndata import AnnData

from ..accelerator import Accelerator

logger = logging.getLogger(__name__)

Method = Literal["scvi", "harmony", "none"]
EMBEDDING = {"scvi": "X_scVI", "harmony": "X_pca_harmony", "none": "X_pca"}


def _pca(adata: AnnData, n_pcs: int, seed: int) -> np.ndarray:
    """PCA of ``X``; a dask ``X`` (read lazily from disk, block by block) gets scanpy's exact
    covariance-eigendecomposition PCA, computed here."""
    n = min(n_pcs, adata.n_obs - 1, adata.n_vars - 1)
    sc.pp.pca(adata, n_comps=n, random_state=seed, mask_var=None)
    pcs = adata.obsm["X_pca"]
    if hasattr(pcs, "compute"):  # a dask array
        adata.obsm["X_pca"] = pcs = np.asarray(pcs.compute(), dtype=np.float32)
    return pcs


def integrate(
    adata: AnnData,
    *,
    method: Method = "scvi",
    batch_key: str = "batch",
    n_pcs: int = 50,
    n_latent: int = 30,
    n_layers: int = 2,
    max_epochs: int | None = None,
    kl_warmup_epochs: int | None = None,
    batch_size: int = 128,
    counts_layer: str | None = "counts",
    seed: int = 0,
    accelerator: Accelerator = "cpu",
    model_dir: str | Path | None = None,
) -> str:
    """Integrate batches; the embedding lands in ``adata.obsm[<key>]`` and its key is returned.

    Parameters
    ----------
    adata
        Cells × highly variable genes: ``X`` shifted-log (PCA, Harmony), raw counts in
        ``layers[counts_layer]`` (scVI). The AnnData may be backed: scVI then reads its
        minibatches from disk.
    method
        ``"scvi"`` (scvi-tools SCVI on counts → ``X_scVI``), ``"harmony"`` (harmonypy on
        PCA → ``X_pca_harmony``) or ``"none"`` (PCA only → ``X_pca``).
    max_epochs
        scVI epochs; ``None`` uses scvi-tools' size-based default (``min(400, 8e6 / cells)``);
        the epochs trained are recorded in ``uns["integration"]["epochs"]``.
    kl_warmup_epochs
        Epochs over which scVI's KL weight rises to 1; ``None`` keeps scvi-tools' 400, which a
        shorter training never completes (the KL term then stays below full weight).
    batch_size
        scVI minibatch size.
    counts_layer
        The layer of raw counts scVI models; ``None``: ``X`` holds them (as in
        :func:`immunoprofiler.io.h5ad.layer_as_X`'s AnnData).
    accelerator
        ``"cpu"`` or ``"gpu"``, from :func:`immunoprofiler.accelerator.select_accelerator`.
    model_dir
        Where the trained scVI model is saved.

    Examples
    --------
    >>> key = integrate(adata, method="harmony")  # doctest: +SKIP
    >>> adata.obsm[key].shape  # doctest: +SKIP
    """
    if batch_key not in adata.obs:
        raise KeyError(f"obs has no batch column '{batch_key}'")
    n_batches = adata.obs[batch_key].nunique()
    key = EMBEDDING[method]
    if method == "scvi":
        import scvi

        scvi.settings.seed = seed
        scvi.model.SCVI.setup_anndata(adata, layer=counts_layer, batch_key=batch_key)
        model = scvi.model.SCVI(adata, n_latent=n_latent, n_layers=n_layers)
        plan = {} if kl_warmup_epochs is None else {"n_epochs_kl_warmup": kl_warmup_epochs}
        start = time.perf_counter()
        model.train(
            max_epochs=max_epochs,
            batch_size=batch_size,
            plan_kwargs=plan,
            accelerator=accelerator,
            devices=1,
            enable_progress_bar=False,
        )
        trained = time.perf_counter()
        adata.obsm[key] = model.get_latent_representation().astype(np.float32)
        history = model.history.get("elbo_train")
        if history is not None:
            adata.uns["scvi_elbo_train"] = history.to_numpy().ravel().astype(float)
        epochs = None if history is None else len(history)  # one ELBO value per epoch
        logger.info(
            "scVI: %s epochs (KL warm-up: %s) of batch size %d on %d cells%s: trained in %.1f s "
            "(%.2f s/epoch), latent space in %.1f s",
            epochs,
            "scvi-tools' 400 epochs" if kl_warmup_epochs is None else f"{kl_warmup_epochs} epochs",
            batch_size,
            adata.n_obs,
            " read from disk" if adata.isbacked else "",
            trained - start,
            (trained - start) / max(epochs or 1, 1),
            time.perf_counter() - trained,
        )
        if model_dir is not None:
            model.save(str(model_dir), overwrite=True, save_anndata=False)
    else:
        pcs = _pca(adata, n_pcs, seed)
        if method == "harmony":
            if n_batches < 2:
                logger.warning("only one batch: harmony is skipped, using PCA")
                adata.obsm[key] = pcs.copy()
            else:
                import harmonypy

                ho = harmonypy.run_harmony(
                    pcs,
                    adata.obs[[batch_key]].astype(str),
                    [batch_key],
                    random_state=seed,
                    verbose=False,
                )
                z = np.asarray(ho.Z_corr)
                # harmonypy < 2 returns PCs x cells, >= 2 cells x PCs
                adata.obsm[key] = (z if z.shape[0] == adata.n_obs else z.T).astype(np.float32)
    adata.uns["integration"] = {"method": method, "use_rep": key, "batch_key": batch_key}
    if method == "scvi" and epochs is not None:
        adata.uns["integration"]["epochs"] = epochs
    logger.info("integration %s: %s %s", method, key, adata.obsm[key].shape)
    return key
