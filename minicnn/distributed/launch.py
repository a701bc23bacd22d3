"""What the launcher told this process: its rank, the number of processes, its local rank.

``mpirun`` / ``mpiexec`` and Slurm's ``srun`` start every process of a job with
environment variables saying who it is. They are read here, before MPI is started,
so that a script run as plain ``python train.py`` (no launcher: one process) never
needs mpi4py at all.

=================  =====================  =====================  =========================
launcher           rank                   size                   local rank (on its machine)
=================  =====================  =====================  =========================
Open MPI mpirun    OMPI_COMM_WORLD_RANK   OMPI_COMM_WORLD_SIZE   OMPI_COMM_WORLD_LOCAL_RANK
MPICH / Intel MPI  PMI_RANK               PMI_SIZE               MPI_LOCALRANKID
Slurm srun         SLURM_PROCID           SLURM_NTASKS           SLURM_LOCALID
=================  =====================  =====================  =========================

The first launcher whose rank and size are both set wins (mpirun inside a Slurm
allocation sets its own variables beside Slurm's, and those describe the job).
"""
from dataclasses import dataclass

# (launcher, rank variable, size variable, local rank variable), in the order they are tried
LAUNCHERS = (
    ("mpirun (Open MPI)", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
    ("mpiexec (MPICH / Intel MPI)", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"),
    ("srun (Slurm)", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"),
)


@dataclass(frozen=True)
class Launch:
    """Who this process is, as its launcher said (``launcher`` None: no launcher)."""
    rank: int = 0
    size: int = 1
    local_rank: int | None = 0   # None: the launcher did not say (MPI finds it)
    launcher: str | None = None
    variables: str = ""          # e.g. "OMPI_COMM_WORLD_SIZE=2", for messages


def from_environment(environ):
    """The :class:`Launch` that mapping ``environ`` (e.g. ``os.environ``) describes.

    Example::

        >>> from_environment({"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2"}).rank
        1
    """
    for launcher, rank_var, size_var, local_var in LAUNCHERS:
        if environ.get(rank_var, "").strip() and environ.get(size_var, "").strip():
            rank = _count(environ, rank_var)
            size = _count(environ, size_var)
            if size < 1 or rank >= size:
                raise ValueError(f"minicnn.distributed: {launcher} set {rank_var}={rank} and "
                                 f"{size_var}={size}: the rank must be below the size, and the size >= 1.")
            local = _count(environ, local_var) if environ.get(local_var, "").strip() else None
            return Launch(rank, size, local, launcher, f"{size_var}={size}")
    return Launch()


def _count(environ, name):
    text = environ[name].strip()
    if not text.isdigit():
        raise ValueError(f"minicnn.distributed: the launcher's {name} must be a non-negative integer. "
                         f"Received: {name}={environ[name]!r}")
    return int(text)
