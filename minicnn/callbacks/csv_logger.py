"""CSVLogger: one CSV row per epoch (``keras.callbacks.CSVLogger``)."""
import csv
import os

from ..models.history import Callback
from .checks import check_bool, check_path


class CSVLogger(Callback):
    """Write each epoch's logs as one CSV row (``keras.callbacks.CSVLogger``).

    Columns: ``epoch`` (0-based, as in Keras), then the logged names sorted;
    as in Keras, val_ columns are added (``NA`` when missing) when the first
    epoch has none, so that validation_freq > 1 keeps the header.
    ``append=True`` continues an existing file (no second header)."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = check_path("CSVLogger", "filename", filename)
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"CSVLogger: separator must be a one-character string. "
                             f"Received: separator={separator!r}")
        self.sep = separator
        self.append = check_bool("CSVLogger", "append", append)
        self.keys = self.writer = self.csv_file = None

    def on_train_begin(self, logs=None):
        self.append_header = True
        if self.append and os.path.exists(self.filename):
            with open(self.filename) as f:
                self.append_header = not f.readline()
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, "a" if self.append else "w", newline="")
        self.keys = self.writer = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys += ["val_" + k for k in self.keys]
        if self.writer is None:
            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys, delimiter=self.sep,
                                         lineterminator="\n", extrasaction="ignore")
            if self.append_header:
                self.writer.writeheader()
        self.writer.writerow({"epoch": epoch, **{k: logs.get(k, "NA") for k in self.keys}})
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None
