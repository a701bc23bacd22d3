"""compile / fit / evaluate / predict / train_on_batch / test_on_batch.

The loops themselves, and the callbacks they call, are in fit_loop.py: they
keep running sums of the loss and of correct predictions as backend arrays
(on the GPU they stay on the device) and read them back only when the
progress line is drawn, an epoch ends, or a callback asks for batch values.
"""
import numpy as np

from .. import backend, losses, optimizers
from ..ops import softmax_xent
from .data_checks import as_number_array, require_finite, require_samples, sparse_labels_to_onehot
from .fit_loop import callback_list, check_validation_freq, evaluate_loop, fit_loop, predict_loop
from .progbar import Progbar


class TrainingMixin:
    """The Keras training API; Model supplies _forward/_backward and the layers."""

    def _init_training(self):
        self.optimizer = None
        self.loss = None
        self._loss_fn = None
        self._metric_names = []
        self.history = None
        self.stop_training = False  # a callback sets it to end fit after this batch / epoch

    # -- compile ---------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        """Choose the optimizer, the loss and the metrics.

        Example::

            model.compile(optimizer='rmsprop', loss='categorical_crossentropy',
                          metrics=['accuracy'])
        """
        self.optimizer = optimizers.get(optimizer)
        if loss is None:
            raise ValueError("compile: a loss is required, e.g. loss='categorical_crossentropy'.")
        self._loss_fn = losses.get(loss)
        self.loss = self._loss_fn.name
        metrics = [metrics] if isinstance(metrics, str) else list(metrics or [])
        for m in metrics:
            if m not in ("accuracy", "acc", "categorical_accuracy", "sparse_categorical_accuracy"):
                raise ValueError(f"Unknown metric: {m!r}. Expected 'accuracy' (or 'acc').")
        if len(metrics) > 1:
            raise ValueError(f"compile: only one accuracy metric is supported. Received: metrics={metrics}")
        self._metric_names = metrics

    def _require_compiled(self, what):
        if self.optimizer is None:
            raise RuntimeError(f"You must compile your model before {what}: "
                               "call model.compile(optimizer, loss, metrics).")

    # -- data checks -------------------------------------------------------------
    def _check_x(self, x, where):
        x = as_number_array(x, where, "x")
        if x.ndim == 0:
            raise ValueError(f"{where}: x must have a batch axis. Received a scalar: {x!r}")
        self._ensure_built_for(x.shape)
        self._require_built(where)
        expected = self.input_shape
        if tuple(x.shape[1:]) != tuple(expected[1:]) or x.ndim != len(expected):
            hint = ""
            if x.ndim == len(expected) - 1 and tuple(x.shape[1:]) == tuple(expected[1:-1]) and expected[-1] == 1:
                hint = ": add a channel axis (x.reshape(-1, " + ", ".join(map(str, expected[1:])) + "))"
            raise ValueError(f"{where}: input of model {self.name} expected shape {tuple(expected)}, "
                             f"got {tuple(x.shape)}{hint}")
        return x

    def _check_y(self, y, n, where):
        """Targets as float32 one-hot rows matching the model's output."""
        y = as_number_array(y, where, "y")
        units = self.output_shape[-1]
        if self.loss == "sparse_categorical_crossentropy":
            y = sparse_labels_to_onehot(y, units, where)
        elif y.shape[1:] != (units,):
            hint = ""
            if y.ndim == 1:
                hint = (": these look like integer labels; one-hot encode them with "
                        "to_categorical(y) or use loss='sparse_categorical_crossentropy'")
            raise ValueError(f"{where}: target of model {self.name} expected shape (None, {units}), "
                             f"got {tuple(y.shape)}{hint}")
        if len(y) != n:
            raise ValueError(f"{where}: data cardinality is ambiguous: x has {n} samples, "
                             f"y has {len(y)}. Make sure all arrays contain the same number of samples.")
        return np.ascontiguousarray(y, dtype=np.float32)

    def _prepare(self, x, y, where):
        """Checked (x, y): x as given (each batch becomes float32 on its way to
        the device, so a big uint8 x is never converted whole), y as float32
        one-hot rows; NaN or inf in either is refused, naming the sample."""
        x = self._check_x(x, where)
        require_samples(len(x), where)
        y = self._check_y(y, len(x), where)
        require_finite(x, where, "x")
        require_finite(y, where, "y")
        return x, y

    # -- one batch -----------------------------------------------------------
    def _loss_and_correct(self, p, y):
        """Sum of per-sample losses and the number of correct predictions (backend arrays)."""
        loss_sum = self._loss_fn.sample_losses(p, y).sum()
        if not self._metric_names:
            return loss_sum, None
        if p.shape[-1] == 1:  # one unit: binary accuracy, as Keras resolves 'accuracy'
            return loss_sum, ((p > 0.5) == (y > 0.5)).sum()
        return loss_sum, softmax_xent.accuracy_count(p, y)

    def _train_batch(self, xb, yb):
        p = self._forward(xb, training=True)
        sums = self._loss_and_correct(p, yb)
        # the loss decides whether its gradient fuses with the output's activation
        grad, wrt_logits = self._loss_fn.gradient(p, yb, self._compute_layers[-1].output_activation)
        self._backward(grad, from_preactivation=wrt_logits)
        pairs = [pair for layer in self._compute_layers for pair in layer.gradients_and_weights()]
        if pairs:
            self.optimizer.apply_gradients(pairs)
        return sums

    def _results(self, loss_sum, correct, n):
        loss = float(backend.to_numpy(loss_sum)) / n
        if correct is None:
            return loss
        return [loss, float(backend.to_numpy(correct)) / n]

    def train_on_batch(self, x, y):
        """One optimizer step on (x, y); returns [loss, accuracy] of this batch alone."""
        self._require_compiled("train_on_batch")
        x, y = self._prepare(x, y, "train_on_batch")
        loss_sum, correct = self._train_batch(backend.asarray(x), backend.asarray(y))
        return self._results(loss_sum, correct, len(x))

    def test_on_batch(self, x, y):
        """[loss, accuracy] of (x, y) as one batch, without training."""
        self._require_compiled("test_on_batch")
        x, y = self._prepare(x, y, "test_on_batch")
        p = self._forward(backend.asarray(x))
        loss_sum, correct = self._loss_and_correct(p, backend.asarray(y))
        return self._results(loss_sum, correct, len(x))

    # -- loops -------------------------------------------------------------------
    def _metric_key(self):
        return self._metric_names[0] if self._metric_names else None

    def _running(self, loss_sum, correct, seen, prefix=""):
        values = [(prefix + "loss", float(backend.to_numpy(loss_sum)) / seen)]
        if correct is not None:
            values.append((prefix + self._metric_key(), float(backend.to_numpy(correct)) / seen))
        return values

    def fit(self, x=None, y=None, batch_size=32, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0,
            validation_freq=1):
        """Train for ``epochs`` passes over (x, y); returns a History.

        ``callbacks``: a list of ``keras.callbacks.Callback`` instances (EarlyStopping,
        ModelCheckpoint, ...), called as Keras calls them; one may set
        ``model.stop_training = True`` to end training. ``initial_epoch``: the
        epoch to start from (to resume a run; ``epochs`` is the last one, not a count).
        ``validation_freq``: validate every N epochs, or after the (1-based) epochs listed.

        Example::

            history = model.fit(train_images, train_labels, epochs=5, batch_size=64)
            history.history['accuracy']   # one value per epoch
        """
        self._require_compiled("fit")
        batch_size = _check_batch_size(batch_size, "fit")
        epochs = _check_count(epochs, "epochs")
        initial_epoch = _check_count(initial_epoch, "initial_epoch")
        verbose = _check_verbose(verbose, "fit")
        if not 0.0 <= validation_split < 1.0:
            raise ValueError(f"fit: validation_split must be in [0, 1). Received: {validation_split!r}")
        validation_freq = check_validation_freq(validation_freq)
        x, y = self._prepare(x, y, "fit")
        if validation_data is None and validation_split > 0:
            # Keras takes the LAST fraction as validation, before any shuffling
            split = int(len(x) * (1.0 - validation_split))
            validation_data = (x[split:], y[split:])
            x, y = x[:split], y[:split]
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("fit: validation_data must be a tuple (x_val, y_val).")
            validation_data = self._prepare(*validation_data, "fit(validation_data)")
        require_samples(len(x), "fit")
        # the History (last in the list) becomes model.history when training begins: after
        # a Ctrl-C it holds the epochs that finished, as in Keras
        callbacks = callback_list(self, callbacks, "fit", verbose, epochs, -(-len(x) // batch_size),
                                  add_history=True)
        fit_loop(self, x, y, batch_size, epochs, initial_epoch, verbose, validation_data,
                 validation_freq, shuffle, callbacks)
        return callbacks.history

    def evaluate(self, x=None, y=None, batch_size=32, verbose="auto", callbacks=None):
        """``[loss, accuracy]`` over (x, y) (just the loss without metrics).

        ``callbacks`` get on_test_begin, on_test_batch_begin/end and on_test_end."""
        self._require_compiled("evaluate")
        batch_size = _check_batch_size(batch_size, "evaluate")
        verbose = _check_verbose(verbose, "evaluate")
        x, y = self._prepare(x, y, "evaluate")
        steps = -(-len(x) // batch_size)
        callbacks = callback_list(self, callbacks, "evaluate", verbose, 1, steps)
        values = evaluate_loop(self, x, y, batch_size, callbacks, Progbar(steps, verbose=verbose))
        results = [v for _, v in values]
        return results if len(results) > 1 else results[0]

    def predict(self, x, batch_size=32, verbose=0, callbacks=None):
        """The model's outputs for x, as a NumPy float32 array.

        x goes to the device one batch at a time, converted to float32 on the
        way: a big uint8 x is never converted whole. Results are written into
        one preallocated output. ``callbacks`` get on_predict_begin,
        on_predict_batch_begin/end (``logs['outputs']``) and on_predict_end.

        Example: ``probabilities = model.predict(test_images, batch_size=128)``."""
        batch_size = _check_batch_size(batch_size, "predict")
        x = self._check_x(x, "predict")
        callbacks = callback_list(self, callbacks, "predict", verbose, 1, -(-len(x) // batch_size))
        return predict_loop(self, x, batch_size, callbacks)


def _check_count(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"fit: {name} must be a non-negative int. Received: {name}={value!r}")
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
