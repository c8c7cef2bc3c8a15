"""The machine a benchmark ran on, as every script names it beside its figures.

The CPU's model name alone does not tell machines apart: two Xeons of different generations
both call themselves "Intel(R) Xeon(R) Processor" in ``/proc/cpuinfo`` on some hosts, and ran
the same benchmark 1.5-2x apart. So the name comes with the family, model and stepping numbers
where the system gives them (``platform.processor()``, which the scripts printed before, says
only "x86_64" on Linux).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

#: the fields of ``/proc/cpuinfo`` that follow the model name, in the words printed for them
_NUMBERS = (("cpu family", "family"), ("model", "model"), ("stepping", "stepping"))


def cpu_from_cpuinfo(text: str) -> str | None:
    """The first processor's ``model name (family F, model M, stepping S)`` from the text of
    ``/proc/cpuinfo``; the numbers it lacks are left out; None without a model name."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor's block ends
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name")
    if not name:
        return None
    numbers = [f"{word} {fields[key]}" for key, word in _NUMBERS if fields.get(key)]
    return f"{name} ({', '.join(numbers)})" if numbers else name


def cpu_model() -> str:
    """This machine's CPU, as precisely as the system says it."""
    try:
        found = cpu_from_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:
        found = None
    return found or platform.processor() or platform.machine()


def describe() -> str:
    """``<cpu_model()>, <n> CPUs``: the machine in one phrase."""
    return f"{cpu_model()}, {os.cpu_count()} CPUs"
