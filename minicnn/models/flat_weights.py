"""A model's trainable weights as views of ONE flat buffer, their gradients as views of another.

Why: with every parameter in one array, an optimizer step is one fused launch over
all of them (issue 11: one RMSprop kernel, not one per variable), and data-parallel
training sums all gradients in one collective (issue 13: one allreduce per step).
The layers do not notice: each weight is moved into its place in the buffer
(``Layer.move_weight``: values copied, ``layer.weights[i]`` becomes the view) and
the layers read their weights from ``weights`` on every call.

The layout is the order of the model's trainable weights (layer by layer, Keras
order within a layer), without gaps, so that an optimizer's slots built for the
same variables (:meth:`minicnn.optimizers.base.Optimizer.build`) have the same
layout as the parameters and the gradients::

    params  [ conv2d/kernel | conv2d/bias | conv2d_1/kernel | ... | dense_1/bias ]
    grads   [ same offsets                                                      ]

Example::

    >>> flat = FlatWeights.of(model._compute_layers)   # None if the model cannot be flat
    >>> flat.params.shape, flat.grads.shape            # ((93322,), (93322,)) for the book model
"""
import numpy as np

from .. import backend


class FlatWeights:
    """The flat parameter and gradient buffers of some layers' trainable weights."""

    def __init__(self, entries, dtype):
        device = backend.device()
        sizes = [int(np.prod(layer.weights[i].shape)) for layer, i in entries]
        ends = np.cumsum([0] + sizes)
        self.entries = list(entries)          # (layer, weight index), in the buffers' order
        self.params = device.zeros((int(ends[-1]),), dtype)
        self.grads = device.zeros((int(ends[-1]),), dtype)
        self.grad_views = []
        for (layer, i), start, end in zip(self.entries, ends[:-1], ends[1:]):
            shape = layer.weights[i].shape
            layer.move_weight(i, self.params[start:end].reshape(shape))
            self.grad_views.append(self.grads[start:end].reshape(shape))
            layer.store_gradient_in(i, self.grad_views[-1])   # ops that can write there directly
        self.variables = [layer.weights[i] for layer, i in self.entries]

    @staticmethod
    def trainable_entries(layers):
        """(layer, weight index) of every trainable weight, in the optimizer's order."""
        return [(layer, i) for layer in layers if layer.trainable
                for i, trainable in enumerate(layer._weight_trainable) if trainable]

    @classmethod
    def of(cls, layers, previous=None):
        """Flat buffers for ``layers``' trainable weights, or None when they cannot share
        them: no trainable weight, mixed dtypes, a layer keeping a weight array in an
        attribute (a custom layer's ``self.w = self.add_weight(...)`` would go on reading
        the old array after the move), or a layer already in the buffers of another model
        (a layer shared by two models stays where the first put it: moving it again would
        take it from under that model's optimizer). ``previous``: this model's own
        buffers, whose layers may move again (a layer frozen and the model recompiled)."""
        entries = cls.trainable_entries(layers)
        if not entries or len({layer.weights[i].dtype for layer, i in entries}) != 1:
            return None
        own = [] if previous is None else [layer for layer, _ in previous.entries]
        for layer in dict.fromkeys(layer for layer, _ in entries):
            weights = layer.weights
            if any(any(value is w for w in weights) for value in vars(layer).values()):
                return None
            if layer._gradient_storage and not any(layer is mine for mine in own):
                return None
        return cls(entries, entries[0][0].weights[entries[0][1]].dtype)

    def holds(self, layers):
        """Whether these buffers still hold exactly ``layers``' trainable weights (a layer
        frozen, added or rebuilt since means they do not)."""
        entries = self.trainable_entries(layers)
        return (len(entries) == len(self.entries)
                and all(a is b and i == j for (a, i), (b, j) in zip(entries, self.entries))
                and all(layer.weights[i] is v for (layer, i), v in zip(self.entries, self.variables)))

    def gather_gradients(self, pairs):
        """Put the step's gradients (``gradients_and_weights`` pairs, in order) into
        ``grads``; an op that wrote its gradient straight into its view needs no copy.
        Returns False, touching nothing, when the pairs are not this buffer's variables."""
        if len(pairs) != len(self.variables) or any(
                w is not v or tuple(g.shape) != tuple(v.shape) for (g, w), v in zip(pairs, self.variables)):
            return False
        device = backend.device()
        for (g, _), view in zip(pairs, self.grad_views):
            if g is not view:
                device.copy(view, g)
        return True
