"""Work that leaves the kernel, billed to the window (cell or ``track()`` block) that started it.

* Child processes on this machine (:mod:`.children`): the kernel puts its session id, a folder
  and the open window's id in the environment; a start-up hook (the ``nbcost_child.pth`` the
  wheel installs, as coverage.py measures subprocesses) makes a Python child record its LLM calls
  to a child log in that folder, and the kernel folds them into the window. GPU time of the
  kernel's descendants is counted by the GPU meter (by pid ancestry).
* Dask (:mod:`nbcost.dask`): a worker plugin meters each worker; tasks carry the submitting
  window's id as an annotation; workers send usage back through distributed's event channel.

Usage that arrives after its window ended amends that window's record (``window_amended`` in
the spend log). The wire shape of one piece of usage is in :mod:`.wire`.
"""
