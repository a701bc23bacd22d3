"""The callback protocol of fit/evaluate/predict: Callback, CallbackList, History.

These live with the models because the training loop drives them; users
import them, with the ready-made callbacks, from :mod:`minicnn.callbacks`
(``keras.callbacks.Callback``, ``keras.callbacks.History``).

Hooks and their order, as in Keras::

    fit:      on_train_begin
                on_epoch_begin(epoch)
                  on_train_batch_begin(batch) / on_train_batch_end(batch, logs)   per batch
                  on_test_begin ... on_test_end(logs)   validation, when it runs this epoch
                on_epoch_end(epoch, logs)               logs: loss, accuracy, val_loss, ...
              on_train_end(logs)
    evaluate: on_test_begin, on_test_batch_begin/end per batch, on_test_end(logs)
    predict:  on_predict_begin, on_predict_batch_begin/end(batch, {'outputs': ...}), on_predict_end

``epoch`` and ``batch`` are 0-based. Batch logs hold running means over the
batches so far. Reading them needs the loss back from the device every batch,
so the loop calls a batch hook only when some callback overrides it; without
such a callback the sums stay on the device, as without callbacks.
"""

class Callback:
    """Base class of callbacks (``keras.callbacks.Callback``): override the hooks you need.

    ``self.model`` is the model being trained, evaluated or run;
    ``self.params`` holds ``verbose``, ``epochs`` and ``steps``.

    Example::

        class Print(Callback):
            def on_epoch_end(self, epoch, logs=None):
                print(epoch, logs['loss'])
    """

    def __init__(self):
        self.model = None
        self.params = {}

    def set_params(self, params):
        self.params = params

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None):
        """Called at the start of fit."""

    def on_train_end(self, logs=None):
        """Called at the end of fit; ``logs`` are the last epoch's."""

    def on_epoch_begin(self, epoch, logs=None):
        """Called at the start of each epoch of fit."""

    def on_epoch_end(self, epoch, logs=None):
        """Called at the end of each epoch of fit with the epoch's values (val_* included)."""

    def on_batch_begin(self, batch, logs=None):
        """Keras 2 alias of on_train_batch_begin (called by its default)."""

    def on_batch_end(self, batch, logs=None):
        """Keras 2 alias of on_train_batch_end (called by its default)."""

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        """Called after each training batch with the epoch's running values so far."""
        self.on_batch_end(batch, logs)

    def on_test_begin(self, logs=None):
        """Called at the start of evaluate (and of fit's validation)."""

    def on_test_end(self, logs=None):
        """Called at the end of evaluate with its values ('loss', 'accuracy')."""

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        """``logs['outputs']``: this batch's outputs (a NumPy array)."""


def overrides(callback, hook):
    """True when ``callback``'s ``hook`` is not the base class's no-op (class or instance)."""
    method = getattr(callback, hook)
    return getattr(method, "__func__", method) is not getattr(Callback, hook)


class CallbackList:
    """Callbacks called in order (``keras.callbacks.CallbackList``).

    ``add_history=True`` appends a History unless the list holds one."""

    def __init__(self, callbacks=None, add_history=False, model=None, **params):
        self.callbacks = list(callbacks or [])
        self.history = next((c for c in self.callbacks if isinstance(c, History)), None)
        if add_history and self.history is None:
            self.history = History()
            self.callbacks.append(self.history)
        self.params = params
        for c in self.callbacks:
            c.set_params(self.params)
        if model is not None:
            self.set_model(model)

    def set_model(self, model):
        self.model = model
        for c in self.callbacks:
            c.set_model(model)

    def set_params(self, params):
        self.params = params
        for c in self.callbacks:
            c.set_params(params)

    def append(self, callback):
        self.callbacks.append(callback)

    def wants_batch_hooks(self, mode, end):
        """True when a callback overrides the batch hook of ``mode`` ('train', 'test', 'predict')."""
        hooks = [f"on_{mode}_batch_{'end' if end else 'begin'}"]
        if mode == "train":
            hooks.append("on_batch_end" if end else "on_batch_begin")
        return any(overrides(c, h) for c in self.callbacks for h in hooks)

    def _call(self, hook, *args):
        for c in self.callbacks:
            getattr(c, hook)(*args)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", {} if logs is None else logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", {} if logs is None else logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, {} if logs is None else logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, {} if logs is None else logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, {} if logs is None else logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, {} if logs is None else logs)

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", {} if logs is None else logs)

    def on_test_end(self, logs=None):
        self._call("on_test_end", {} if logs is None else logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._call("on_test_batch_begin", batch, {} if logs is None else logs)

    def on_test_batch_end(self, batch, logs=None):
        self._call("on_test_batch_end", batch, {} if logs is None else logs)

    def on_predict_begin(self, logs=None):
        self._call("on_predict_begin", {} if logs is None else logs)

    def on_predict_end(self, logs=None):
        self._call("on_predict_end", {} if logs is None else logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._call("on_predict_batch_begin", batch, {} if logs is None else logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._call("on_predict_batch_end", batch, {} if logs is None else logs)

    def __iter__(self):
        return iter(self.callbacks)


# Keras 2 named the accuracy 'acc' (and 'val_acc'); Keras 3 keeps the name given to compile.
KERAS2_ALIASES = {"acc": "accuracy", "val_acc": "val_accuracy", "accuracy": "acc", "val_accuracy": "val_acc"}


class HistoryDict(dict):
    """``history.history``: a dict of the logged names, as Keras 3 names them.

    A lookup of a Keras 2 name finds the Keras 3 one (and back): after
    ``metrics=['accuracy']``, ``history.history['acc']`` and ``'val_acc'`` read
    the ``'accuracy'`` and ``'val_accuracy'`` lists (``[]``, ``get`` and
    ``in`` agree). Printing, iterating, ``keys()``, ``len`` and ``json.dumps``
    show only the names actually logged.

    Example::

        model.compile('rmsprop', 'categorical_crossentropy', metrics=['accuracy'])
        history = model.fit(x, y, epochs=3)
        history.history['acc'] is history.history['accuracy']   # True: a Keras 2 script works
        list(history.history)                                    # ['loss', 'accuracy']
    """

    def _alias(self, key):
        alias = KERAS2_ALIASES.get(key) if isinstance(key, str) else None
        return alias if alias is not None and dict.__contains__(self, alias) else None

    def __missing__(self, key):
        alias = self._alias(key)
        if alias is None:
            raise KeyError(key)
        return dict.__getitem__(self, alias)

    def __contains__(self, key):
        return dict.__contains__(self, key) or self._alias(key) is not None

    def get(self, key, default=None):
        return self[key] if key in self else default


class History(Callback):
    """What fit returns, as ``keras.callbacks.History``: ``history.history`` maps
    each key ('loss', 'accuracy', 'val_loss', ...) to one value per epoch;
    ``history.epoch`` lists the epoch indices; ``history.params`` fit's
    ``verbose``, ``epochs`` and ``steps``.

    fit adds one to its callbacks and sets ``model.history`` to it when
    training begins, so after a Ctrl-C it holds the epochs that finished.
    ``history.history`` is a :class:`HistoryDict`: Keras 2's ``'acc'`` /
    ``'val_acc'`` read Keras 3's ``'accuracy'`` / ``'val_accuracy'``.

    Example::

        history = model.fit(x, y, epochs=5)
        history.history['loss'][-1]
    """

    def __init__(self, params=None):
        super().__init__()
        self.history = HistoryDict()
        self.epoch = []
        self.params = dict(params or {})
        self._epochs_of = {}  # name -> the epochs it was logged in (val_ ones skip some)

    def on_train_begin(self, logs=None):
        self.epoch = []
        self.history = HistoryDict()
        self._epochs_of = {}
        self.model.history = self

    def on_epoch_end(self, epoch, logs=None):
        self.append(epoch, (logs or {}).items())

    def append(self, epoch, values):
        """Record one epoch's ``[(name, value), ...]`` (as on_epoch_end does)."""
        self.epoch.append(epoch)
        for key, value in values:
            self.history.setdefault(key, []).append(value)
            self._epochs_of.setdefault(key, []).append(epoch)

    def epochs_of(self, key):
        """The (0-based) epochs whose logs held ``key``: with ``validation_freq=2``,
        ``epochs_of('val_loss')`` is ``[1, 3, ...]``, one per ``history['val_loss']`` value."""
        key = key if dict.__contains__(self.history, key) else KERAS2_ALIASES.get(key, key)
        return list(self._epochs_of.get(key, []))
