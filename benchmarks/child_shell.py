"""The shell a benchmark's child process runs its cells in, as source to splice into the child.

With ``kind == "kernel"`` it is ipykernel's shell, in process, so nbcost's display channel (the
lab extension's comm) opens; else a plain IPython shell. It binds ``ip`` (and ``manager``, which
must stay referenced while the in-process kernel runs). ``cell_overhead.py`` and
``cell_instructions.py`` both use it, so their figures are of the same shell.
"""

SHELL = r"""
if kind == "kernel":  # ipykernel's shell, in process: nbcost's display channel (the comm) opens
    from ipykernel.inprocess.manager import InProcessKernelManager

    manager = InProcessKernelManager()
    manager.start_kernel()
    ip = manager.kernel.shell
else:
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
"""
