"""The Jupyter kernel of the current environment, found or installed once.

Papermill and nbval need a kernelspec name. The classic failure
(``NoSuchKernel``, or a kernel that silently runs another Python without the
kit installed) comes from naming one by hand. :func:`ensure_kernel` returns
the name of a kernelspec that starts *this* interpreter, and installs one for
the user (``~/.local/share/jupyter/kernels``, or ``$JUPYTER_DATA_DIR``) when
there is none.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from contextlib import contextmanager
from typing import Iterator

__all__ = ["KERNEL_ENV", "ensure_kernel", "find_kernel", "kernel_environment", "kernel_name_for"]

#: Environment a headless kernel needs. ``MPLBACKEND=Agg`` (common on CI and
#: servers) is inherited by kernels and makes ``plt.show()`` draw nothing into
#: the notebook; the inline backend puts figures into the outputs.
KERNEL_ENV: dict[str, str] = {"MPLBACKEND": "module://matplotlib_inline.backend_inline"}


@contextmanager
def kernel_environment() -> Iterator[None]:
    """Set :data:`KERNEL_ENV` in ``os.environ`` for kernels started inside the block; restore after."""
    saved = {key: os.environ.get(key) for key in KERNEL_ENV}
    os.environ.update(KERNEL_ENV)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _interpreter() -> str:
    """The absolute path of this interpreter.

    ``sys.executable`` is made absolute but symlinks are *not* followed: a
    virtual environment's ``bin/python`` is a link to the base interpreter, and
    following it would start a kernel without the environment's packages.
    """
    return os.path.abspath(sys.executable)


def kernel_name_for() -> str:
    """The kernelspec name the kit installs for this interpreter: ``hyperkit-py311``.

    :func:`ensure_kernel` adds a suffix when the name is taken by another
    interpreter.
    """
    return f"hyperkit-py{sys.version_info.major}{sys.version_info.minor}"


def find_kernel() -> str | None:
    """Name of an installed kernelspec whose ``argv[0]`` is this interpreter, or ``None``.

    Specs are compared by absolute path (``os.path.abspath``). A spec whose
    ``argv[0]`` is a bare ``python`` is not counted as a match: which Python it
    starts depends on who launches it. Among matches the kit's own name is
    preferred, then the alphabetically first, so the answer is stable.
    """
    from jupyter_client.kernelspec import KernelSpecManager

    me = _interpreter()
    matches: list[str] = []
    for name, info in KernelSpecManager().get_all_specs().items():
        argv = (info.get("spec") or {}).get("argv") or []
        if argv and os.path.isabs(argv[0]) and os.path.abspath(argv[0]) == me:
            matches.append(name)
    if not matches:
        return None
    own = [m for m in matches if m.startswith(kernel_name_for())]
    return sorted(own)[0] if own else sorted(matches)[0]


def ensure_kernel() -> str:
    """Return the name of a kernelspec that runs this interpreter, installing one if needed.

    Idempotent and local (no network): the first call may write a kernelspec
    for the user (``hyperkit-py311``, display name ``Python 3.11 (hyperkit,
    /path/to/python)``); later calls find it. If ``hyperkit-py311`` already
    belongs to another interpreter (another virtual environment), the new spec
    is named ``hyperkit-py311-<8 hex digits of the interpreter path>`` so that
    the other one is left alone.

    Returns:
        The kernelspec name, to pass to ``papermill -k`` or nbclient.
    """
    found = find_kernel()
    if found is not None:
        return found

    from ipykernel.kernelspec import install
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    me = _interpreter()
    name = kernel_name_for()
    try:
        KernelSpecManager().get_kernel_spec(name)
        taken = True
    except NoSuchKernel:
        taken = False
    if taken:
        name = f"{name}-{hashlib.sha1(me.encode()).hexdigest()[:8]}"
    display = f"Python {platform.python_version()} (hyperkit, {me})"
    install(user=True, kernel_name=name, display_name=display)
    return name
