"""``keras.utils.PyDataset`` (and its Keras 2 name ``Sequence``): batches by index.

Subclass it, give ``__len__`` (the number of batches) and ``__getitem__(index)``
(batch ``index`` as ``(x, y)`` or ``(x, y, sample_weight)``; for predict, x
alone is enough); fit / evaluate / predict (and Keras 2's ``fit_generator``
...) read it one batch at a time, in index order or shuffled for training,
and call ``on_epoch_end`` after each epoch. Any object with ``__len__`` and
``__getitem__`` works the same way.

Example::

    class Batches(Sequence):
        def __init__(self, x, y, batch_size):
            super().__init__()
            self.x, self.y, self.batch_size = x, y, batch_size
        def __len__(self):
            return -(-len(self.x) // self.batch_size)
        def __getitem__(self, i):
            s = slice(i * self.batch_size, (i + 1) * self.batch_size)
            return self.x[s], self.y[s]

    model.fit(Batches(x_train, y_train, 64), epochs=5)
"""


class PyDataset:
    """Base class of index-addressed batch sources (Keras 3's ``keras.utils.PyDataset``).

    ``workers``, ``use_multiprocessing`` and ``max_queue_size`` are Keras's
    arguments, accepted and kept; minicnn reads the batches in its own thread."""

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self.workers = workers
        self.use_multiprocessing = use_multiprocessing
        self.max_queue_size = max_queue_size

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__(index)")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __len__()")

    @property
    def num_batches(self):
        return len(self)

    def on_epoch_begin(self):
        """Called before each epoch (override to prepare one)."""

    def on_epoch_end(self):
        """Called after each epoch (override e.g. to reshuffle your data)."""


Sequence = PyDataset   # Keras 2's keras.utils.Sequence; Keras 3 keeps the name as an alias
