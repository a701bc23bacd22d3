"""fit / evaluate / predict with Keras 3's arguments, and Keras 2's ``*_generator`` forms.

Every argument is checked before any work (a bad call changes nothing).
Data is arrays (x, y, optional ``sample_weight``) or, as Keras 3 accepts it
directly, a generator or a ``keras.utils.Sequence`` / ``PyDataset``-like
object yielding ``(x, y)`` or ``(x, y, sample_weight)`` (see data_sources.py).
The loops are in fit_loop.py.

Keras 2 spellings: ``fit(nb_epoch=...)`` (means ``epochs``, with Keras 2's
deprecation message), ``fit_generator`` / ``evaluate_generator`` /
``predict_generator`` (the same as fit / evaluate / predict on a generator).
"""
import warnings

import numpy as np

from ..distributed import fit_support
from .data_checks import class_weight_to_sample_weight, check_class_weight, require_samples
from .data_sources import ArrayBatches, GeneratorBatches, is_batch_source, unpack
from .fit_loop import callback_list, check_validation_freq, evaluate_loop, fit_loop, predict_loop
from .progbar import Progbar


class FitMixin:
    """fit / evaluate / predict (and their generator forms) on top of TrainingMixin's steps."""

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1, **kwargs):
        """Train for ``epochs`` passes over (x, y); returns a History.

        ``sample_weight``: one weight per sample (the loss becomes sum(w * l) / n);
        ``class_weight``: ``{class: weight}`` for every class, turned into sample
        weights. ``steps_per_epoch``: batches per epoch (needed for a generator; with
        arrays each epoch takes the next that many batches). ``callbacks``: Callback
        instances, called as Keras calls them; one may set ``model.stop_training``.
        ``initial_epoch``: the epoch to start from (``epochs`` is the last one).
        ``validation_freq``: validate every N epochs, or after the (1-based) epochs listed.
        Under ``minicnn.distributed`` with several workers, each takes its part of every
        global batch of ``batch_size`` (arrays), only rank 0 prints, and the History holds
        the means over all workers; give callbacks that write files (ModelCheckpoint,
        CSVLogger, BackupAndRestore) to rank 0 only, as Horovod does.

        Example::

            history = model.fit(train_images, train_labels, epochs=5, batch_size=64,
                                validation_split=0.1)
            history.history['accuracy']   # one value per epoch
        """
        epochs = _keras2_epochs(epochs, kwargs)
        self._require_compiled("fit")
        batch_size = _check_batch_size(batch_size, "fit")
        epochs = _check_count(epochs, "epochs")
        initial_epoch = _check_count(initial_epoch, "initial_epoch")
        verbose = fit_support.quiet(_check_verbose(verbose, "fit"))   # rank 0 alone prints
        steps_per_epoch = _check_steps(steps_per_epoch, "steps_per_epoch", "fit")
        validation_steps = _check_steps(validation_steps, "validation_steps", "fit")
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"fit: validation_split must be in [0, 1). Received: {validation_split!r}")
        validation_freq = check_validation_freq(validation_freq)
        if class_weight is not None and sample_weight is not None:
            raise ValueError("fit: you cannot pass `class_weight` and `sample_weight` at the same time.")
        val_batch = _check_batch_size(validation_batch_size or batch_size, "fit")
        validation = None
        if is_batch_source(x):
            if y is not None or sample_weight is not None or validation_split:
                raise ValueError("fit: with a generator or Sequence as x, y and sample_weight come from its "
                                 "batches (and validation_split cannot split it): pass only x.")
            if class_weight is not None and self.built:   # else checked with the first batch
                self._class_weight_table(class_weight, "fit")
            train = GeneratorBatches(x, steps_per_epoch, self._batch_checker("fit", class_weight), shuffle, "fit")
        else:
            x, y, sw = self._prepare(x, y, "fit", sample_weight)
            table = self._class_weight_table(class_weight, "fit")   # once the model is built
            if validation_data is None and validation_split > 0:
                # Keras takes the LAST fraction as validation, before any shuffling
                split = int(len(x) * (1.0 - validation_split))
                validation = ArrayBatches(x[split:], y[split:], None if sw is None else sw[split:], val_batch,
                                          steps_per_epoch=validation_steps, sharded=True)
                x, y, sw = x[:split], y[:split], None if sw is None else sw[:split]
            require_samples(len(x), "fit")
            if table is not None:   # the training part only, as Keras applies it
                sw = class_weight_to_sample_weight(table, y, "fit")
            train = ArrayBatches(x, y, sw, batch_size, shuffle, steps_per_epoch, sharded=True, on_device=True)
        if validation is None:
            validation = self._validation_source(validation_data, val_batch, validation_steps)
        fit_support.check_fit("fit", self, [train, validation], epochs=epochs, initial_epoch=initial_epoch)
        # the History (last in the list) becomes model.history when training begins: after
        # a Ctrl-C it holds the epochs that finished, as in Keras
        callbacks = callback_list(self, callbacks, "fit", verbose, epochs, train.steps, add_history=True)
        fit_loop(self, train, epochs, initial_epoch, verbose, validation, validation_freq, callbacks)
        return callbacks.history

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """``[loss, *metrics]`` over (x, y) (just the loss without metrics; a dict with
        ``return_dict=True``). ``sample_weight`` weighs each sample's loss.
        ``callbacks`` get on_test_begin, on_test_batch_begin/end and on_test_end.

        Example: ``test_loss, test_acc = model.evaluate(test_images, test_labels)``."""
        self._require_compiled("evaluate")
        batch_size = _check_batch_size(batch_size, "evaluate")
        verbose = fit_support.quiet(_check_verbose(verbose, "evaluate"))
        steps = _check_steps(steps, "steps", "evaluate")
        if is_batch_source(x):
            if y is not None or sample_weight is not None:
                raise ValueError("evaluate: with a generator or Sequence as x, y and sample_weight come "
                                 "from its batches: pass only x.")
            source = GeneratorBatches(x, steps, self._batch_checker("evaluate"), where="evaluate")
        else:
            x, y, sw = self._prepare(x, y, "evaluate", sample_weight)
            source = ArrayBatches(x, y, sw, batch_size, steps_per_epoch=steps, sharded=True)
        fit_support.check_fit("evaluate", self, [source])
        callbacks = callback_list(self, callbacks, "evaluate", verbose, 1, source.steps)
        values = evaluate_loop(self, source, callbacks, Progbar(source.steps, verbose=verbose))
        return self._results(values, return_dict)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """The model's outputs for x, as a NumPy float32 array.

        x goes to the device one batch at a time, converted to float32 on the
        way: a big uint8 x is never converted whole. ``verbose``: 'auto' (1) shows
        a progress bar as Keras 3 does, 0 none, 2 one line. x may be a generator
        or a Sequence (of x, or of (x, y) tuples; ``steps`` batches for a
        generator). ``callbacks`` get on_predict_begin, on_predict_batch_begin/end
        (``logs['outputs']``) and on_predict_end.

        Example: ``probabilities = model.predict(test_images, batch_size=128)``."""
        batch_size = _check_batch_size(batch_size, "predict")
        verbose = _check_verbose(verbose, "predict")
        steps = _check_steps(steps, "steps", "predict")
        if is_batch_source(x):
            source = GeneratorBatches(x, steps, lambda b: (self._check_x(unpack(b, "predict", False)[0],
                                                                            "predict"),), where="predict")
            n = None
        else:
            x = self._check_x(x, "predict")
            source = ArrayBatches(x, None, None, batch_size, steps_per_epoch=steps)
            n = min(len(x), source.steps * batch_size)
        callbacks = callback_list(self, callbacks, "predict", verbose, 1, source.steps)
        return predict_loop(self, source, n, callbacks, Progbar(source.steps, verbose=verbose))

    # -- Keras 2's generator methods ---------------------------------------------------
    def fit_generator(self, generator, steps_per_epoch=None, epochs=1, verbose=1, callbacks=None,
                      validation_data=None, validation_steps=None, validation_freq=1, class_weight=None,
                      max_queue_size=10, workers=1, use_multiprocessing=False, shuffle=True, initial_epoch=0):
        """Keras 2's fit on a generator or Sequence (deprecated: ``fit`` takes one).
        ``max_queue_size``, ``workers`` and ``use_multiprocessing`` are accepted and
        ignored (batches are read in this thread, in order)."""
        _deprecated("fit_generator", "fit")
        return self.fit(generator, steps_per_epoch=steps_per_epoch, epochs=epochs, verbose=verbose,
                        callbacks=callbacks, validation_data=validation_data, validation_steps=validation_steps,
                        validation_freq=validation_freq, class_weight=class_weight, shuffle=shuffle,
                        initial_epoch=initial_epoch)

    def evaluate_generator(self, generator, steps=None, callbacks=None, max_queue_size=10, workers=1,
                           use_multiprocessing=False, verbose=0):
        """Keras 2's evaluate on a generator or Sequence (deprecated: ``evaluate`` takes one)."""
        _deprecated("evaluate_generator", "evaluate")
        return self.evaluate(generator, steps=steps, callbacks=callbacks, verbose=verbose)

    def predict_generator(self, generator, steps=None, callbacks=None, max_queue_size=10, workers=1,
                          use_multiprocessing=False, verbose=0):
        """Keras 2's predict on a generator or Sequence (deprecated: ``predict`` takes one)."""
        _deprecated("predict_generator", "predict")
        return self.predict(generator, steps=steps, callbacks=callbacks, verbose=verbose)

    @property
    def metrics_names(self):
        """``['loss', *metric names]``: the order of evaluate's results (tf.keras 2)."""
        if self._loss_fn is None:
            return []
        return self._value_names() if self.built else ["loss"]

    # -- helpers -----------------------------------------------------------------------
    def _class_weight_table(self, class_weight, where):
        """class_weight checked against the model's classes (a table), or None."""
        if class_weight is None:
            return None
        if not self._loss_fn.classification:
            raise ValueError(f"{where}: class_weight applies to classification losses (cross-entropies); "
                             f"the loss here is {self._loss_fn.name!r}. Weigh samples with sample_weight instead.")
        units = self.output_shape[-1]
        return check_class_weight(class_weight, 2 if units == 1 else units, where)

    def _with_class_weight(self, sw, y, class_weight, where):
        table = self._class_weight_table(class_weight, where)
        if table is None:
            return sw
        if sw is not None:
            raise ValueError(f"{where}: you cannot pass `class_weight` and `sample_weight` at the same time.")
        return class_weight_to_sample_weight(table, y, where)

    def _batch_checker(self, where, class_weight=None):
        """A generator batch -> checked (x, y, sample_weight or None)."""
        def check(batch):
            bx, by, bsw = unpack(batch, where)
            x, y, sw = self._prepare(bx, by, where, bsw)
            if class_weight is not None:
                if sw is not None:
                    raise ValueError(f"{where}: you cannot pass `class_weight` and batches with sample "
                                     "weights at the same time.")
                sw = class_weight_to_sample_weight(self._class_weight_table(class_weight, where), y, where)
            return x, y, sw
        return check

    def _validation_source(self, data, batch_size, steps):
        if data is None:
            return None
        if is_batch_source(data):
            return GeneratorBatches(data, steps, self._batch_checker("fit(validation_data)"),
                                    where="fit(validation_data)")
        if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
            raise ValueError("fit: validation_data must be a tuple (x_val, y_val) or (x_val, y_val, "
                             "val_sample_weight), or a generator / Sequence.")
        vx, vy, vsw = self._prepare(*data[:2], "fit(validation_data)", data[2] if len(data) == 3 else None)
        return ArrayBatches(vx, vy, vsw, batch_size, steps_per_epoch=steps, sharded=True)


def _keras2_epochs(epochs, kwargs):
    if "nb_epoch" in kwargs:
        warnings.warn("The `nb_epoch` argument in `fit` has been renamed `epochs`.", DeprecationWarning,
                      stacklevel=3)
        epochs = kwargs.pop("nb_epoch")
    if kwargs:
        raise TypeError(f"fit() got unexpected keyword argument(s) {sorted(kwargs)}")
    return epochs


def _deprecated(old, new):
    warnings.warn(f"`Model.{old}` is deprecated and will be removed in a future version. Please use "
                  f"`Model.{new}`, which supports generators.", DeprecationWarning, stacklevel=3)


def _check_count(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"fit: {name} must be a non-negative int. Received: {name}={value!r}")
    return int(value)


def _check_steps(value, name, where):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{where}: {name} must be a positive int or None. Received: {name}={value!r}")
    return int(value)


def _check_batch_size(batch_size, where):
    if batch_size is None:
        return 32
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"{where}: batch_size must be a positive int. Received: batch_size={batch_size!r}")
    return int(batch_size)


def _check_verbose(verbose, where):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2):
        raise ValueError(f"{where}: verbose must be 0, 1, 2 or 'auto'. Received: verbose={verbose!r}")
    return int(verbose)
