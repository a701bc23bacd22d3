"""Fetching a dataset's published files: the cache, else mirrors that fill it.

For the datasets whose files are published with a checksum of each file as
served (Fashion-MNIST's .gz files, the CIFAR archives): every file is
checked against its sha256 when read from the cache and when downloaded.
MNIST has its own, longer chain of sources (mnist.py) on the same
machinery: one Deadline ($MINICNN_DOWNLOAD_BUDGET) for all downloads, a
parallel reachability probe first (an offline machine fails within
seconds), http_get, atomic writes into the cache.
"""

import hashlib
import sys
import warnings
from dataclasses import dataclass

from .. import config
from .cache import write_atomic
from .errors import DatasetUnavailableError
from .fetch import Deadline, describe, http_get, probe
from .mnist import BUDGET_ENV, PROBE_TIMEOUT_S


@dataclass(frozen=True)
class PublishedFile:
    """One file as its publisher serves it: name, sha256, a size limit."""

    name: str  # the file name at every mirror and in the cache
    sha256: str  # of the file's bytes as served
    max_bytes: int  # larger downloads are refused


def sha256_error(data, file, where):
    """The ValueError for `data` whose sha256 is not `file`'s, or None."""
    digest = hashlib.sha256(data).hexdigest()
    if digest == file.sha256:
        return None
    return ValueError(
        f"{where}: sha256 is {digest}, expected {file.sha256} "
        f"(corrupted or not the published {file.name})"
    )


def check_sha256(data, file, where):
    """Return `data` if its sha256 is `file`'s, else raise ValueError naming `where`."""
    error = sha256_error(data, file, where)
    if error is not None:
        raise error
    return data


def fetch_published(title, files, mirrors, cache, hint, looked=()):
    """{file name: (bytes, where)} for `files`, from `cache` or downloaded into it.

    Args:
        title: the dataset's name in messages ("Fashion-MNIST").
        files: PublishedFile-like objects (name, sha256, max_bytes).
        mirrors: base URLs, tried in order; each serves base + file name.
        cache: the dataset's cache folder.
        hint: how to give the files by hand; ends the error message.
        looked: (label, reason) pairs for places already looked in, listed
            first in the error message.

    Raises:
        ValueError: a bad $MINICNN_DOWNLOAD_BUDGET, before anything is read.
        DatasetUnavailableError: the cache lacks a file and no mirror gave it
            within the budget; the message lists every source and why.
    """
    budget = config.get(BUDGET_ENV)  # a typo is reported even with a full cache
    found, problem = read_cache(cache, files)
    if len(found) == len(files):
        return {file.name: found[file.name] for file in files}
    failures = list(looked) + [(f"cache {cache}", problem)]
    deadline = Deadline(budget)
    smallest = min(files, key=lambda file: file.max_bytes)  # answers the probe
    probe_urls = {base: base + smallest.name for base in mirrors}
    probe_s = max(0.0, min(PROBE_TIMEOUT_S, deadline.remaining()))
    unreachable = probe(list(probe_urls.values()), probe_s)
    for base in mirrors:
        missing = [file for file in files if file.name not in found]
        if not missing:
            break
        reason = unreachable.get(probe_urls[base])
        if reason is None:
            reason = download_from(base, missing, found, cache, deadline, title)
        else:
            reason = f"unreachable: {reason}"
        if reason:
            failures.append((f"mirror {base}", reason))
    if len(found) == len(files):
        return {file.name: found[file.name] for file in files}
    raise DatasetUnavailableError(failure_message(title, failures, deadline, hint))


def read_cache(cache, files):
    """Return ({name: (bytes, where)} for the good cached files, what was wrong)."""
    found, problems, absent = {}, [], []
    for file in files:
        target = cache / file.name
        if not target.is_file():
            absent.append(file.name)
            continue
        try:
            data = target.read_bytes()
        except OSError as err:
            problems.append(f"{target}: {describe(err)}")
            continue
        error = sha256_error(data, file, str(target))
        if error is None:
            found[file.name] = (data, str(target))
        else:  # it will be overwritten by a fresh download
            problems.append(str(error))
    if absent:
        problems.insert(0, "no " + ", ".join(absent))
    return found, "; ".join(problems)


def download_from(base, missing, found, cache, deadline, title):
    """Fill `found` and the cache from one mirror; return why it fell short.

    Returns None if every file in `missing` was obtained. A file with the
    wrong checksum is refused and the next one tried; a network failure
    ends this mirror (the next mirror may work).
    """
    print(f"minicnn: downloading {title} from {base}", file=sys.stderr)
    problems = []
    for file in missing:
        url = base + file.name
        try:
            data = http_get(url, deadline, file.max_bytes)
        except Exception as err:  # any failure of this mirror: the next may work
            problems.append(f"{url}: {describe(err)}")
            break
        error = sha256_error(data, file, url)
        if error is not None:
            problems.append(str(error))
            continue
        found[file.name] = (data, url)
        store_in_cache(cache / file.name, data, title)
    return "; ".join(problems) or None


def store_in_cache(target, data, title):
    try:
        write_atomic(target, data)
    except OSError as err:  # a read-only cache must not lose the data we have
        warnings.warn(f"could not cache {title} file {target}: {describe(err)}", stacklevel=5)


def failure_message(title, failures, deadline, hint):
    tried = "\n".join(f"  - {label}: {reason}" for label, reason in failures)
    budget = ""
    if deadline.expired():
        budget = (f"The download time budget of {deadline.seconds:g} s ran out "
                  f"(${BUDGET_ENV}; raise it for a slow connection).\n")
    return (f"{title} is not available: no path was given and every source failed.\n"
            f"Tried, in order:\n{tried}\n{budget}{hint}")
