"""Thin wrapper around `mamba_ssm.Mamba2` (the CUDA kernels, optional extra `[cuda]`).

`mamba_ssm` is imported lazily: importing szflow never needs it, and a CPU-only install works.
The module built here is mamba_ssm's own class, unwrapped, so its state_dict keys are exactly
those of `szflow.model.mamba_torch.Mamba2Torch` built with the same arguments.
"""

from __future__ import annotations

from torch import nn

INSTALL_HINT = "pip install '.[cuda]' --no-build-isolation (see docs/install_cuda.md)"
CUDA_UNAVAILABLE = "CUDA unavailable"


def mamba_ssm_status() -> tuple[bool, str]:
    """(usable, reason): usable only when CUDA is available AND mamba_ssm imports."""
    import torch

    if not torch.cuda.is_available():
        return False, CUDA_UNAVAILABLE
    try:
        # Mamba2's fused training path calls causal_conv1d's kernel; without it the forward fails
        # later, deep inside a step, so check it up front.
        import causal_conv1d  # noqa: F401
        from mamba_ssm import Mamba2  # noqa: F401
    # Not only ImportError: a wheel built for another torch/CUDA fails at import with OSError or
    # RuntimeError (undefined symbol); either way the kernels are unusable.
    except Exception as exc:  # noqa: BLE001
        return False, f"mamba_ssm import failed: {type(exc).__name__}: {exc}"
    return True, "ok"


def build_mamba_ssm_block(
    d_model: int, d_state: int, d_conv: int, expand: int, chunk_size: int, headdim: int
) -> nn.Module:
    """mamba_ssm.Mamba2 with the same constructor arguments as our Mamba2Torch."""
    from mamba_ssm import Mamba2

    return Mamba2(
        d_model=d_model, d_state=d_state, d_conv=d_conv, expand=expand,
        headdim=headdim, chunk_size=chunk_size, ngroups=1,
    )
