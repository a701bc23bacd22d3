"""Errors raised by the dataset loaders."""


class DatasetUnavailableError(OSError):
    """No source could provide the dataset: not local files, cache or network.

    The message lists every source tried and why it failed, and says how to
    point the loader at files on disk instead.
    """
