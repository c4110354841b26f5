"""Choose the torch accelerator from the number of GPUs a rule was given."""

from __future__ import annotations

import logging
import os
from typing import Literal

logger = logging.getLogger(__name__)

Accelerator = Literal["cpu", "gpu"]


class AcceleratorError(RuntimeError):
    """A GPU was requested but none is visible."""


def select_accelerator(gpu: int = 0) -> Accelerator:
    """Return ``"gpu"`` when ``gpu > 0`` and a CUDA device is visible, ``"cpu"`` when ``gpu == 0``.

    A job that asked for a GPU and finds none fails at once instead of training
    for hours on the CPU.

    Examples
    --------
    >>> select_accelerator(0)
    'cpu'
    """
    if gpu <= 0:
        return "cpu"
    import torch

    if not torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")
        msg = (
            f"this job requested gpu={gpu} but torch sees no CUDA device "
            f"(CUDA_VISIBLE_DEVICES={visible}, torch {torch.__version__}, "
            f"CUDA build: {torch.version.cuda or 'no'}). Run it on a GPU node, or set the "
            "rule's resource gpu=0 to train on the CPU."
        )
        raise AcceleratorError(msg)
    n = torch.cuda.device_count()
    if n < gpu:
        msg = f"this job requested gpu={gpu} but only {n} CUDA device(s) are visible"
        raise AcceleratorError(msg)
    logger.info("training on GPU: %s", torch.cuda.get_device_name(0))
    return "gpu"
