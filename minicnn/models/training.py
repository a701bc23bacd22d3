"""compile, one training / test step, train_on_batch / test_on_batch / predict_on_batch.

fit / evaluate / predict and their Keras 2 ``*_generator`` forms are in
fit_api.py, their loops in fit_loop.py, the batch sources in
data_sources.py. One step keeps running sums as backend arrays (on the GPU
they stay on the device): the sum of the (weighted) per-sample losses and one
total per metric. They are read back only when the progress line is drawn,
an epoch ends, or a callback asks for batch values (``_running``).

The loss fit reports is Keras 3's: each batch's loss is
``sum_i w_i l_i / n`` (w_i = 1 without sample or class weights; n the
number of values, 'sum_over_batch_size') plus the regularization penalties
of the layers' weights (at the weights the batch was computed with); the
epoch's value is the mean of the batch losses weighted by batch size.
Metrics are not weighted (Keras's ``metrics=``, not ``weighted_metrics=``).
"""
import numpy as np

from .. import backend, losses, optimizers
from .. import metrics as metric_lib   # compile's argument is named metrics, as in Keras
from .data_checks import as_number_array, check_sample_weight, require_finite, require_samples, \
    sparse_labels_to_onehot
from .fit_api import FitMixin
from .flat_weights import FlatWeights
from .step_plan import StepPlans


class TrainingMixin(FitMixin):
    """The Keras training API; Model supplies _forward/_backward and the layers."""

    def _init_training(self):
        self.optimizer = None
        self.loss = None          # as given to compile: a name, or Keras's serialized dict
        self._loss_fn = None
        self._metric_names = []   # metrics as given (names, or serialized dicts): what is saved
        self._metric_specs = []
        self._metrics = None      # the resolved Metric objects (once the output is known)
        self.history = None
        self.stop_training = False  # a callback sets it to end fit after this batch / epoch
        self._step_plans = StepPlans()   # fit's recorded steps on a CUDA device (MINICNN_STEP_PLAN)
        self._flat = None   # the trainable weights' flat buffers (flat_weights.py), once made

    # -- compile ---------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1, jit_compile="auto"):
        """Choose the optimizer, the loss and the metrics (Keras 3's arguments).

        ``loss``: a name ('categorical_crossentropy', 'mse', ...), a function of
        minicnn.losses or a Loss object (``losses.SparseCategoricalCrossentropy(
        from_logits=True)``). ``metrics``: a list of names ('accuracy', 'acc',
        'top_k_categorical_accuracy', 'mse', ...), functions or Metric objects;
        each becomes a History key named as given. ``run_eagerly``,
        ``steps_per_execution`` and ``jit_compile`` change nothing here.

        Example::

            model.compile(optimizer='rmsprop', loss='categorical_crossentropy',
                          metrics=['accuracy'])
        """
        if loss is None:
            raise ValueError("compile: a loss is required, e.g. loss='categorical_crossentropy'.")
        for name, value in (("loss_weights", loss_weights), ("weighted_metrics", weighted_metrics)):
            if value is not None:
                raise ValueError(f"compile: `{name}` is not supported by minicnn (one output; metrics "
                                 f"are unweighted). Received: {name}={value!r}")
        loss_fn = losses.get(loss)
        if loss_fn.reduction not in losses.TRAINING_REDUCTIONS:
            raise ValueError(f"compile: minicnn trains on the batch mean of the loss; reduction="
                             f"{loss_fn.reduction!r} is not supported. Use one of {losses.TRAINING_REDUCTIONS}.")
        if isinstance(metrics, dict):
            raise ValueError("compile: metrics must be a list (minicnn models have one output). "
                             f"Received: metrics={metrics!r}")
        specs = list(metrics) if isinstance(metrics, (list, tuple)) else [] if metrics is None else [metrics]
        for m in specs:
            metric_lib.get(m, loss_fn)   # unknown names fail here, before any work
        self.optimizer = optimizers.get(optimizer)
        self._loss_fn = loss_fn
        self.loss = losses.serialize(loss)   # what model.save writes: a name as given, or Keras's dict
        self._metric_specs = specs
        self._metric_names = [metric_lib.serialize(m) for m in specs]
        self._metrics = None
        self._step_plans.clear()   # recorded with the old optimizer, loss and metrics
        if self.built:
            self._flat_weights()   # before anything (loading a saved optimizer) builds the optimizer

    def _flat_weights(self):
        """The trainable weights' :class:`FlatWeights`, made while the optimizer is not
        built yet (its state must be built on the flat views), else None: the optimizer
        then updates the weights one variable at a time, as it was built to."""
        layers = self._compute_layers
        if self._flat is not None and self._flat.holds(layers):
            return self._flat
        if self.optimizer is None or self.optimizer.built:
            return None
        self._flat = FlatWeights.of(layers, previous=self._flat)
        return self._flat

    def _require_compiled(self, what):
        if self.optimizer is None:
            raise RuntimeError(f"You must compile your model before {what}: "
                               "call model.compile(optimizer, loss, metrics).")

    def _active_metrics(self):
        """The Metric objects, resolved once the output is known ('accuracy' depends on it)."""
        if self._metrics is None:
            units = self.output_shape[-1]
            self._metrics = metric_lib.unique_names(
                [metric_lib.get(m, self._loss_fn, units) for m in self._metric_specs])
        return self._metrics

    def _value_names(self):
        return ["loss"] + [m.name for m in self._active_metrics()]

    # -- data checks -------------------------------------------------------------
    def _check_x(self, x, where):
        x = as_number_array(x, where, "x")
        if x.ndim == 0:
            raise ValueError(f"{where}: x must have a batch axis. Received a scalar: {x!r}")
        self._ensure_built_for(x.shape)
        self._require_built(where)
        self._flat_weights()   # the model is built: flat buffers before the first step
        expected = self.input_shape
        if tuple(x.shape[1:]) != tuple(expected[1:]) or x.ndim != len(expected):
            hint = ""
            if x.ndim == len(expected) - 1 and tuple(x.shape[1:]) == tuple(expected[1:-1]) and expected[-1] == 1:
                hint = ": add a channel axis (x.reshape(-1, " + ", ".join(map(str, expected[1:])) + "))"
            raise ValueError(f"{where}: input of model {self.name} expected shape {tuple(expected)}, "
                             f"got {tuple(x.shape)}{hint}")
        return x

    def _check_y(self, y, n, where):
        """Targets as float32 rows matching the model's output (one-hot rows for sparse labels)."""
        y = as_number_array(y, where, "y")
        out = tuple(self.output_shape[1:])
        if self._loss_fn.sparse_labels:
            y = sparse_labels_to_onehot(y, out[-1], where)
        elif y.shape[1:] != out:
            if y.ndim == 1 and out == (1,):   # Keras reads labels (n,) as (n, 1) for one output
                y = y.reshape(-1, 1)
            else:
                hint = ""
                if y.ndim == 1 and self._loss_fn.classification:
                    hint = (": these look like integer labels; one-hot encode them with "
                            "to_categorical(y) or use loss='sparse_categorical_crossentropy'")
                raise ValueError(f"{where}: target of model {self.name} expected shape "
                                 f"{(None,) + out}, got {tuple(y.shape)}{hint}")
        if len(y) != n:
            raise ValueError(f"{where}: data cardinality is ambiguous: x has {n} samples, "
                             f"y has {len(y)}. Make sure all arrays contain the same number of samples.")
        return np.ascontiguousarray(y, dtype=np.float32)

    def _prepare(self, x, y, where, sample_weight=None):
        """Checked (x, y, sample_weight or None): x as given (each batch becomes float32 on
        its way to the device, so a big uint8 x is never converted whole), y as float32
        rows; NaN or inf in any is refused, naming the sample."""
        x = self._check_x(x, where)
        require_samples(len(x), where)
        y = self._check_y(y, len(x), where)
        require_finite(x, where, "x")
        require_finite(y, where, "y")
        sw = None if sample_weight is None else check_sample_weight(sample_weight, len(x), where)
        return x, y, sw

    # -- one batch -----------------------------------------------------------
    def _penalty(self):
        """The layers' regularization penalties summed (a backend scalar), or None."""
        total = None
        for layer in self._compute_layers:
            if getattr(layer, "_regularized", None):   # most layers have none: no call at all
                for p in layer.regularization_penalties():
                    total = p if total is None else total + p
        return total

    def _batch_sums(self, p, y, sample_weight=None, penalty=None):
        """(loss sum, [metric totals]) of one batch, as backend arrays (no host sync)."""
        loss_sum = self._loss_fn.weighted_sum(p, y, sample_weight)
        if penalty is not None:   # the batch's loss is mean + penalty: its sum over values adds n * penalty
            loss_sum = loss_sum + penalty * np.float32(len(p) * self._positions())
        return loss_sum, [m.batch_total(p, y) for m in self._active_metrics()]

    def _positions(self):
        """Loss values per sample: 1, or the positions of a (None, ..., K) output."""
        return int(np.prod(self.output_shape[1:-1])) if len(self.output_shape) > 2 else 1

    def _train_batch(self, xb, yb, sample_weight=None):
        p = self._forward(xb, training=True)
        penalty = self._penalty()   # at the weights this batch was computed with
        fused = None if sample_weight is not None or penalty is not None else self._fused_head(p, yb)
        if fused is not None:
            sums, grad, wrt_logits = fused
        else:
            sums = self._batch_sums(p, yb, sample_weight, penalty)
            # the loss decides whether its gradient fuses with the output's activation
            grad, wrt_logits = self._loss_fn.weighted_gradient(
                p, yb, self._compute_layers[-1].output_activation, sample_weight)
        self._backward(grad, from_preactivation=wrt_logits)
        if penalty is not None:
            for layer in self._compute_layers:
                if getattr(layer, "_regularized", None):
                    layer.add_regularization_gradients()
        pairs = [pair for layer in self._compute_layers for pair in layer.gradients_and_weights()]
        flat = self._flat_weights()
        if flat is not None and flat.gather_gradients(pairs):
            self.optimizer.apply_flat(flat, batch_size=len(xb))   # one update over every weight
        elif pairs:   # one variable at a time (the hook still sees every gradient at once)
            self.optimizer.apply([g for g, _ in pairs], [w for _, w in pairs], batch_size=len(xb))
        return sums

    def _fused_head(self, p, yb):
        """``(sums, dL/dz, True)`` from the loss's one fused op when the model is the usual
        classifier (softmax output, categorical cross-entropy, accuracy as the only metric),
        else None: then the loss, each metric and the gradient are separate ops."""
        fused_step = getattr(self._loss_fn, "fused_step", None)
        metrics = self._active_metrics()
        if fused_step is None or not all(isinstance(m, metric_lib.CategoricalAccuracy) for m in metrics):
            return None
        out = fused_step(p, yb, self._compute_layers[-1].output_activation)
        if out is None:
            return None
        loss_sum, hits, dz = out
        return (loss_sum, [hits] * len(metrics)), dz, True

    def _planned_train_batch(self, xb, yb):
        """One training step on host batch (xb, yb) through the step plan of its shape, or
        None when it must run eagerly (see step_plan.py). The sums returned are the plan's
        buffers, overwritten by the next step: add them up, never keep them."""
        return self._step_plans.train_batch(self, xb, yb)

    def _test_batch(self, xb, yb, sample_weight=None, penalty=None):
        return self._batch_sums(self._forward(xb), yb, sample_weight, penalty)

    def _running(self, sums, seen, prefix=""):
        """[(prefix + name, mean so far)]: the one read back of the sums."""
        loss_sum, totals = sums
        values = [(prefix + "loss", metric_lib.to_host(loss_sum) / (seen * self._positions()))]
        shape = self.output_shape
        for m, total in zip(self._active_metrics(), totals):
            values.append((prefix + m.name, metric_lib.to_host(total) / (seen * m.values_per_sample(shape))))
        return values

    def _results(self, values, return_dict=False):
        if return_dict:
            return dict(values)
        results = [v for _, v in values]
        return results if len(results) > 1 else results[0]

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on (x, y); returns [loss, *metrics] of this batch alone
        (just the loss without metrics), measured before the update."""
        self._require_compiled("train_on_batch")
        x, y, sw = self._prepare(x, y, "train_on_batch", sample_weight)
        sw = self._with_class_weight(sw, y, class_weight, "train_on_batch")
        sums = self._train_batch(backend.asarray(x), backend.asarray(y), *self._device_weights(sw))
        return self._results(self._running(sums, len(x)), return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """[loss, *metrics] of (x, y) as one batch, without training."""
        self._require_compiled("test_on_batch")
        x, y, sw = self._prepare(x, y, "test_on_batch", sample_weight)
        sums = self._test_batch(backend.asarray(x), backend.asarray(y), *self._device_weights(sw),
                                penalty=self._penalty())
        return self._results(self._running(sums, len(x)), return_dict)

    def predict_on_batch(self, x):
        """The model's outputs for x as one batch (NumPy float32)."""
        x = self._check_x(x, "predict_on_batch")
        return backend.to_numpy(self._forward(backend.asarray(x))).copy()

    @staticmethod
    def _device_weights(sw):
        """() or (device sample weights,): ``_train_batch(xb, yb)`` keeps its two-argument form."""
        return () if sw is None else (backend.asarray(sw),)
