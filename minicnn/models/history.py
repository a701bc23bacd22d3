"""History: what fit returns, as keras.callbacks.History."""


class History:
    """``history.history`` maps each key ('loss', 'accuracy', 'val_loss', ...) to
    one value per epoch; ``history.epoch`` lists the epoch indices.

    Example::

        history = model.fit(x, y, epochs=5)
        history.history['loss'][-1]
    """

    def __init__(self, params=None):
        self.history = {}
        self.epoch = []
        self.params = dict(params or {})

    def append(self, epoch, values):
        self.epoch.append(epoch)
        for key, value in values:
            self.history.setdefault(key, []).append(value)
