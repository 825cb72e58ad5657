"""Choose the Mamba block implementation: mamba_ssm's CUDA kernels or our pure-PyTorch SSD."""

from __future__ import annotations

import logging
from typing import Literal

from torch import nn

from szflow.errors import SzflowError
from szflow.model.mamba_cuda import CUDA_UNAVAILABLE, INSTALL_HINT, build_mamba_ssm_block, mamba_ssm_status
from szflow.model.mamba_torch import Mamba2Torch, default_headdim

log = logging.getLogger("szflow.model")

MambaImpl = Literal["auto", "torch", "cuda"]
IMPLS = ("auto", "torch", "cuda")


def resolve_mamba_impl(impl: str) -> str:
    """"auto" -> "cuda" when mamba_ssm imports and CUDA is available, else "torch".

    "cuda" never falls back silently (DESIGN.md §10): it raises when the kernels are unusable.
    """
    if impl not in IMPLS:
        raise SzflowError(f"mamba_impl: unknown value {impl!r}; use one of {list(IMPLS)}")
    if impl == "torch":
        return "torch"
    usable, reason = mamba_ssm_status()
    if impl == "cuda" and not usable:
        raise SzflowError(
            f"mamba_impl: cuda but mamba_ssm is not installed/CUDA unavailable ({reason}): {INSTALL_HINT}"
        )
    if not usable:
        _log_fallback_once(reason)
    return "cuda" if usable else "torch"


_fallbacks_logged: set[str] = set()


def _log_fallback_once(reason: str) -> None:
    """Say why `auto` runs the torch blocks, once per reason and process (a detector resolves the
    implementation once per layer): a silent fallback once cost every GPU figure in the docs."""
    if reason in _fallbacks_logged:
        return
    _fallbacks_logged.add(reason)
    # Without CUDA the fallback is the expected case; with CUDA it means broken kernels.
    level = logging.INFO if reason == CUDA_UNAVAILABLE else logging.WARNING
    log.log(level, "mamba_impl: auto -> torch blocks: %s", reason)


def make_mamba_block(
    d_model: int,
    d_state: int,
    d_conv: int,
    expand: int,
    chunk_size: int,
    impl: str = "auto",
    headdim: int | None = None,
) -> nn.Module:
    """One Mamba-2 mixer, (B, L, d_model) -> (B, L, d_model); `.mamba_impl_used` says which ran."""
    used = resolve_mamba_impl(impl)
    headdim = headdim or default_headdim(expand * d_model)
    if used == "cuda":
        block = build_mamba_ssm_block(d_model, d_state, d_conv, expand, chunk_size, headdim)
    else:
        block = Mamba2Torch(d_model, d_state, d_conv, expand, headdim=headdim, chunk_size=chunk_size)
    block.mamba_impl_used = used
    return block
