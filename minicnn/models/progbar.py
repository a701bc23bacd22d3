"""The tf.keras 2.x progress line printed by fit and evaluate.

    938/938 [==============================] - 6s 6ms/step - loss: 0.1766 - accuracy: 0.9440

On a terminal the line is redrawn in place (``\\r``) as steps finish, with an
ETA; in a log file (stdout not a TTY) only the finished line is written.
verbose=2 writes one short line per epoch, as tf.keras does.
"""
import sys
import time

BAR_WIDTH = 30


def format_value(v):
    """Keras's metric format: %.4f, or %.4e when |v| <= 1e-3.

    A diverged loss prints as Keras prints it: ``nan`` (``abs(nan) > 1e-3`` is
    False, and ``%.4e`` of nan is 'nan'), ``inf`` or ``-inf``."""
    return f" {v:.4f}" if abs(v) > 1e-3 else f" {v:.4e}"


def format_per_step(seconds):
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/step"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/step"
    return f"{seconds * 1e6:.0f}us/step"


def format_eta(eta):
    if eta > 3600:
        return "%d:%02d:%02d" % (eta // 3600, (eta % 3600) // 60, eta % 60)
    if eta > 60:
        return "%d:%02d" % (eta // 60, eta % 60)
    return "%ds" % eta


def bar_text(current, target):
    """'  5/938 [>......]': '=' done, '>' at the head while running, '.' to go."""
    digits = len(str(target))
    text = f"{current:{digits}d}/{target} ["
    done = int(BAR_WIDTH * current / target)
    if done > 0:
        text += "=" * (done - 1) + (">" if current < target else "=")
    return text + "." * (BAR_WIDTH - done) + "]"


class Progbar:
    """Progress display for ``target`` steps; ``update(step, values)``.

    ``values`` is a list of (name, running mean) already averaged by the caller.
    """

    def __init__(self, target, verbose=1, stream=None, interval=0.05):
        self.target = target
        self.verbose = verbose
        self.stream = stream or sys.stdout
        self.dynamic = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval
        self.start = time.time()
        self._last_draw = 0.0
        self._width = 0

    def wants_update(self, current):
        """True when update() would draw something (callers skip syncs otherwise)."""
        if self.verbose == 0:
            return False
        if current >= self.target:
            return True
        return self.verbose == 1 and self.dynamic and time.time() - self._last_draw >= self.interval

    def update(self, current, values):
        if not self.wants_update(current):
            return
        now = time.time()
        self._last_draw = now
        elapsed = now - self.start
        per_step = elapsed / max(current, 1)
        metrics = "".join(f" - {k}:{format_value(v)}" for k, v in values)
        if self.verbose == 2:
            line = (f"{current}/{self.target} - {elapsed:.0f}s{metrics} - {elapsed:.0f}s/epoch"
                    f" - {format_per_step(per_step)}")
            self.stream.write(line + "\n")
        else:
            if current < self.target:
                info = f" - ETA: {format_eta(per_step * (self.target - current))}"
            else:
                info = f" - {elapsed:.0f}s {format_per_step(per_step)}"
            line = bar_text(current, self.target) + info + metrics
            if self.dynamic:
                pad = " " * max(0, self._width - len(line))  # wipe a longer previous line
                self.stream.write("\r" + line + pad)
                self._width = len(line)
                if current >= self.target:
                    self.stream.write("\n")
            else:
                self.stream.write(line + "\n")
        self.stream.flush()
