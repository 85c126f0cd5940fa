"""Work that leaves the kernel, billed to the window (cell or ``track()`` block) that started it.

* Child processes on this machine (:mod:`.children`): the kernel puts its session id, a folder
  and the open window's id in the environment; a start-up hook (the ``nbcost_child.pth`` the
  wheel installs, as coverage.py measures subprocesses) makes a Python child record its LLM calls
  to a child log in that folder, and the kernel folds them into the window. GPU time of the
  kernel's descendants is counted by the GPU meter (by pid ancestry).
* Dask (:mod:`nbcost.dask`): a worker plugin meters each worker; tasks carry the submitting
  window's id as an annotation (passed on to tasks they submit); workers send usage back
  through distributed's event channel.
* Ray (:mod:`nbcost.ray`): a worker set-up hook meters each worker process; usage goes to a
  named collector actor with its task's id, which the kernel maps to the submitting window.
* GPU on workers (:mod:`.task_gpu`): each task's span, measured by the worker's own GPU meter.

Usage that arrives after its window ended amends that window's record (``window_amended`` in
the spend log). The wire shape of one piece of usage is in :mod:`.wire`.
"""
