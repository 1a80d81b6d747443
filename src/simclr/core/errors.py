"""One exception family: the stage entry points print its message as one line and exit 2."""


class SimCLRError(Exception):
    """A user-facing error: the message alone says what is wrong and what is allowed."""


class DataError(SimCLRError):
    """Source or prepared data is missing, unreadable or malformed; the message names the file/key."""


class CheckpointError(SimCLRError):
    """A checkpoint or encoder file cannot be used."""


class TrainingDiverged(SimCLRError):
    """The loss became NaN/inf; the last good checkpoint is kept."""


class LostProcesses(SimCLRError):
    """Another process of the run died or hung (a collective failed or timed out); the last good checkpoint is kept."""
