"""minicnn: a small, fast Keras-style CNN framework (NumPy on CPUs, CUDA kernels on GPUs).

Use it where you would use Keras::

    import minicnn as keras
    from minicnn import layers

    model = keras.Sequential([
        layers.Conv2D(32, (3, 3), activation='relu', input_shape=(28, 28, 1)),
        layers.MaxPooling2D((2, 2)),
        layers.Flatten(),
        layers.Dense(10, activation='softmax'),
    ])
    model.compile(optimizer='rmsprop', loss='categorical_crossentropy', metrics=['accuracy'])
"""
from . import activations, backend, callbacks, datasets, initializers, layers, losses, metrics, models, nn, optimizers, regularizers, utils
from .layers import Input
from .models import Model, Sequential

__version__ = "0.1.0"
__all__ = ["Input", "Model", "Sequential", "activations", "backend", "callbacks", "datasets", "initializers",
           "layers", "losses", "metrics", "models", "nn", "optimizers", "regularizers", "utils"]
