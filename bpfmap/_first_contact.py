"""What ``import bpfmap`` says when the C core is not there (as NumPy says it).

Imported first by ``bpfmap/__init__.py``: a clone's ``bpfmap/`` shadows an installed
bpfmap when Python runs from the clone's root, and it has no compiled ``_core``.
"""

from __future__ import annotations

import os


def no_core(init_file: str) -> ImportError:
    """The ImportError for a bpfmap package whose ``_core`` extension is missing."""
    pkg = os.path.dirname(os.path.abspath(init_file))
    tree = os.path.dirname(pkg)
    if os.path.exists(os.path.join(tree, "csrc", "bpfmap.c")):
        return ImportError(
            f"bpfmap is being imported from its source tree ({tree}), where its C core "
            "(bpfmap._core) is not built. To use the installed bpfmap, run Python from "
            "another directory; to work on the source tree, build it in place with "
            "'pip install -e .' in that directory.",
            name="bpfmap._core",
        )
    return ImportError(
        f"bpfmap's C core (bpfmap._core) is missing from {pkg}: the installation is "
        "incomplete. Reinstall it: pip install --force-reinstall bpfmap",
        name="bpfmap._core",
    )


try:  # the C core, compiled by pip when bpfmap is installed
    from ._core import lib as _lib  # noqa: F401
except ModuleNotFoundError as exc:
    if exc.name != "bpfmap._core":
        raise
    raise no_core(__file__) from None
