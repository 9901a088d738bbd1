"""Which process of a distributed run this is, and the one rule that follows: rank zero alone
writes files and logs.

Once ``torch.distributed`` is initialised (inside a Lightning ``Trainer`` under DDP or FSDP) the
answer comes from it. Before that, a stage that claims its output folder or opens its logger reads
the variables the launchers set: Lightning's subprocess launcher (``LOCAL_RANK``, ``NODE_RANK``),
torchrun (``RANK``, ``GROUP_RANK``), SLURM (``SLURM_PROCID``) and LSF (``JSM_NAMESPACE_RANK``).
A process is rank zero only when every one of them that is set is 0.
"""

from __future__ import annotations

import os

import torch.distributed as dist

RANK_VARIABLES = (
    "RANK",
    "LOCAL_RANK",
    "NODE_RANK",
    "GROUP_RANK",
    "SLURM_PROCID",
    "JSM_NAMESPACE_RANK",
)


def _initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def is_rank_zero() -> bool:
    """True in the one process that writes files and logs (every process of a plain run)."""
    if _initialized():
        return dist.get_rank() == 0
    return all(int(os.environ.get(v) or 0) == 0 for v in RANK_VARIABLES)


def world_size() -> int:
    """Processes in the run: torch.distributed's, else 1 (before the process group exists)."""
    return dist.get_world_size() if _initialized() else 1


def rank_slice(count: int, rank: int | None = None, world: int | None = None) -> tuple[range, int]:
    """The positions ``0 .. count-1`` that ``rank`` of ``world`` (default: this process's) takes,
    ``rank::world`` (as ``DistributedSampler`` deals them: the ranks' shares of one global batch
    are its interleaved rows), and how many fillers it adds so that every rank yields
    ``ceil(count / world)`` items. Fillers are never trained on (their weight is 0); they keep
    the ranks' step counts equal."""
    if world is None:
        world = world_size()
    if rank is None:
        rank = dist.get_rank() if _initialized() else 0
    share = range(rank, count, world)
    return share, -(-count // world) - len(share)
