"""minicnn.config: every MINICNN_* setting in one place, checked and documented."""
import re
from pathlib import Path

import pytest

from minicnn import config

REPO = Path(__file__).resolve().parents[1]


def test_every_setting_is_documented_in_the_readme():
    readme = (REPO / "README.md").read_text()
    missing = [name for name in config.SETTINGS if name not in readme]
    assert not missing, missing


def test_no_module_but_config_reads_a_minicnn_variable():
    readers = []
    for path in (REPO / "minicnn").rglob("*.py"):
        text = path.read_text()
        if path.name != "config.py" and re.search(r"environ(\.get)?\s*[\[(]\s*['\"]MINICNN_", text):
            readers.append(str(path.relative_to(REPO)))
    assert not readers, readers
    used = set()
    for path in (REPO / "minicnn").rglob("*.py"):
        used |= set(re.findall(r"\bMINICNN_[A-Z_]+[A-Z]\b", path.read_text()))
    assert used - set(config.SETTINGS) <= {"MINICNN_EMU_"}, used - set(config.SETTINGS)


def test_values_are_parsed_defaults_apply_and_bad_values_name_the_variable(monkeypatch):
    monkeypatch.setenv("MINICNN_NUM_THREADS", " 3 ")
    assert config.get("MINICNN_NUM_THREADS") == 3
    monkeypatch.setenv("MINICNN_NUM_THREADS", "")
    assert config.get("MINICNN_NUM_THREADS") is None  # empty means the default
    monkeypatch.setenv("MINICNN_NUM_THREADS", "two")
    with pytest.raises(ValueError, match=r"^MINICNN_NUM_THREADS='two' is invalid: it must be a positive integer"):
        config.get("MINICNN_NUM_THREADS")
    monkeypatch.setenv("MINICNN_CPU_FAST", "yes")
    with pytest.raises(ValueError, match=r"MINICNN_CPU_FAST='yes' is invalid: it must be 1 \(on\) or 0"):
        config.get("MINICNN_CPU_FAST")
    with pytest.raises(KeyError, match="no setting 'MINICNN_NOPE'"):
        config.get("MINICNN_NOPE")


def test_override_wins_and_is_undone(monkeypatch):
    monkeypatch.setenv("MINICNN_EMU_ORDER", "reverse")
    with config.override(MINICNN_EMU_ORDER="random"):
        assert config.get("MINICNN_EMU_ORDER") == "random"
        with config.override(MINICNN_EMU_ORDER=None):
            assert config.get("MINICNN_EMU_ORDER") == "forward"
        assert config.get("MINICNN_EMU_ORDER") == "random"
    assert config.get("MINICNN_EMU_ORDER") == "reverse"


def test_the_table_lists_every_setting():
    lines = config.table()
    assert len(lines) == len(config.SETTINGS)
    assert all(line.startswith(name) for line, name in zip(lines, config.SETTINGS))


def test_the_settings_fixture_overrides_for_one_test(settings):
    settings(MINICNN_EMU_TIMEOUT=2.5)
    assert config.get("MINICNN_EMU_TIMEOUT") == 2.5
    settings(MINICNN_NUM_THREADS=1)
    assert config.get("MINICNN_NUM_THREADS") == 1 and config.get("MINICNN_EMU_TIMEOUT") == 2.5
