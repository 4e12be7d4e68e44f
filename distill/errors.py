"""The errors distill raises; d2m_nas turns them into one-line user errors."""


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, of the wrong kind or for other settings."""


class DivergenceError(RuntimeError):
    """A loss or a weight became NaN/inf: training stops before the bad step is kept."""
