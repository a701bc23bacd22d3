"""PyTorch's side of bench_gpu.py: the book's CNN on a CUDA GPU, eager and as one CUDA graph.

The same network as train_mnist.build_model (conv32-pool-conv64-pool-conv64-
dense64-dense10; the softmax folded into the cross-entropy, as PyTorch does
it), RMSprop with Keras's settings (lr 1e-3, rho 0.9, eps 1e-7), cuDNN with
``benchmark=True``, and the whole training set on the GPU: each step gathers
its shuffled batch there. Per step, as minicnn's fit: forward, loss, backward,
update, and the running loss and correct-count sums kept on the device.

- eager: the ordinary PyTorch loop;
- graph: the whole step captured once as a CUDA graph (``torch.cuda.graph``,
  ``capturable=True`` RMSprop) and replayed each step after copying the batch
  into the captured input buffers.

Only whole batches are timed (a graph has one shape). minicnn never imports
torch; bench_gpu.py calls :func:`epoch_seconds` only when torch is importable
and sees a CUDA device.
"""
import time


def available():
    """(True, version) when torch imports and sees a CUDA device, else (False, why)."""
    try:
        import torch
    except ImportError as e:
        return False, f"torch does not import ({e})"
    if not torch.cuda.is_available():
        return False, f"torch {torch.__version__} sees no CUDA device"
    return True, f"torch {torch.__version__} (cuDNN {torch.backends.cudnn.version()})"


def book_model(torch):
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3), nn.ReLU(),
        nn.Flatten(), nn.Linear(576, 64), nn.ReLU(), nn.Linear(64, 10))


def epoch_seconds(x, labels, batch_size, graph, warmup_batches=20, device="cuda"):
    """(seconds, images) for one shuffled epoch of whole batches over host arrays
    x (N, 28, 28, 1) float32 and integer labels (N,), moved to ``device`` first
    ('cpu' runs the eager loop anywhere: a check of this code, not a benchmark)."""
    import torch
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = True
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    xs = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).to(dev)   # NCHW, resident
    ys = torch.from_numpy(labels.astype("int64")).to(dev)
    model = book_model(torch).to(dev)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7, capturable=graph)
    loss_fn = torch.nn.CrossEntropyLoss(reduction="sum")
    loss_sum = torch.zeros((), device=dev)
    correct = torch.zeros((), dtype=torch.int64, device=dev)
    xb = torch.empty((batch_size, 1, 28, 28), device=dev)
    yb = torch.empty((batch_size,), dtype=torch.int64, device=dev)

    def step():
        out = model(xb)
        loss = loss_fn(out, yb)
        loss.backward()
        opt.step()
        loss_sum.add_(loss.detach())
        correct.add_((out.argmax(1) == yb).sum())

    def eager_step():
        opt.zero_grad(set_to_none=True)
        step()

    run = eager_step
    if graph:
        stream = torch.cuda.Stream()   # warm up off the default stream, as PyTorch asks
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                xb.copy_(xs[:batch_size])
                yb.copy_(ys[:batch_size])
                eager_step()
        torch.cuda.current_stream().wait_stream(stream)
        captured = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)   # gradients are then written, not added, in the graph
        with torch.cuda.graph(captured):
            step()
        run = captured.replay

    steps = len(xs) // batch_size

    def epoch(n):
        order = torch.randperm(len(xs), device=dev)
        for s in range(n):
            idx = order[s * batch_size:(s + 1) * batch_size]
            torch.index_select(xs, 0, idx, out=xb)
            torch.index_select(ys, 0, idx, out=yb)
            run()

    epoch(min(steps, warmup_batches))
    sync()
    start = time.perf_counter()
    epoch(steps)
    sync()
    seconds = time.perf_counter() - start
    if not torch.isfinite(loss_sum):
        raise RuntimeError("PyTorch's loss became non-finite")
    return seconds, steps * batch_size
