"""Train the MNIST CNN of "Deep Learning with Python" (chapter 5) with minicnn.

The book's recipe unchanged but for the imports: conv32-pool-conv64-pool-conv64-
flatten-dense64-dense10, pixels / 255, one-hot labels, rmsprop, batch 64,
5 epochs. Prints the summary, Keras's progress lines, the test loss and
accuracy, and the wall time.

    python train_mnist.py                       # the book's run
    python train_mnist.py --epochs 1 --limit 2000 --backend emulator
    mpirun -n 2 python train_mnist.py --distributed   # 2 workers, 32 of each batch of 64 each

With ``--distributed`` every worker started by mpirun/srun runs this script: the same
recipe (global batch 64), gradients averaged over the workers (minicnn.distributed,
Horovod's conventions); rank 0 alone prints.
"""
import argparse
import platform
import time

import minicnn as keras
from minicnn import backend, callbacks, layers, models
from minicnn import distributed as hvd
from minicnn.datasets import mnist
from minicnn.utils import set_random_seed, to_categorical


def build_model():
    model = models.Sequential()
    model.add(layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)))
    model.add(layers.MaxPooling2D((2, 2)))
    model.add(layers.Conv2D(64, (3, 3), activation="relu"))
    model.add(layers.MaxPooling2D((2, 2)))
    model.add(layers.Conv2D(64, (3, 3), activation="relu"))
    model.add(layers.Flatten())
    model.add(layers.Dense(64, activation="relu"))
    model.add(layers.Dense(10, activation="softmax"))
    return model


def load(data_dir, limit):
    (train_images, train_labels), (test_images, test_labels) = mnist.load_data(path=data_dir)
    if limit:
        train_images, train_labels = train_images[:limit], train_labels[:limit]
        test_images, test_labels = test_images[:limit], test_labels[:limit]
    train_images = train_images.reshape((-1, 28, 28, 1)).astype("float32") / 255
    test_images = test_images.reshape((-1, 28, 28, 1)).astype("float32") / 255
    return (train_images, to_categorical(train_labels, 10)), (test_images, to_categorical(test_labels, 10))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--backend", choices=backend.BACKENDS, default=None,
                        help="default: $MINICNN_BACKEND, else cupy if a GPU is usable, else numpy")
    parser.add_argument("--data-dir", default=None,
                        help="folder with the MNIST IDX files (default: $MINICNN_DATA_DIR, cache, download)")
    parser.add_argument("--seed", type=int, default=None, help="make weights and shuffling reproducible")
    parser.add_argument("--limit", type=int, default=0,
                        help="use only the first N training and test images (quick runs)")
    parser.add_argument("--distributed", action="store_true",
                        help="one of the workers of mpirun -n N / srun (minicnn.distributed)")
    args = parser.parse_args(argv)

    start = time.time()
    if args.distributed:
        hvd.init()   # before any GPU work: each worker takes its own GPU
    first = not args.distributed or hvd.rank() == 0
    say = print if first else (lambda *a, **k: None)   # one worker prints the report
    if args.backend:
        backend.set_backend(args.backend)
    if args.seed is not None:
        set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = load(args.data_dir, args.limit)
    workers = f", {hvd.size()} workers" if args.distributed else ""
    say(f"minicnn {keras.__version__}, backend {backend.backend_name()}, "
        f"{platform.processor() or platform.machine()}{workers}; "
        f"{len(x_train)} training and {len(x_test)} test images")

    model = build_model()
    model.summary(print_fn=say)
    optimizer = hvd.DistributedOptimizer("rmsprop") if args.distributed else "rmsprop"
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    fit_start = time.time()
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
              callbacks=[callbacks.BroadcastGlobalVariablesCallback(0)] if args.distributed else None)
    fit_time = time.time() - fit_start
    test_loss, test_acc = model.evaluate(x_test, y_test, verbose=0)   # distributed: every worker's part
    say(f"test loss: {test_loss:.4f} - test accuracy: {test_acc:.4f}")
    say(f"wall time: {time.time() - start:.1f}s (training {fit_time:.1f}s)")
    return test_acc


if __name__ == "__main__":
    main()
