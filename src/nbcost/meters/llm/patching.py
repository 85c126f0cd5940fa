"""Installing and removing the class-level patches, from each SDK module's ``PATCHES`` table.

A ``PATCHES`` entry is ``Patch(module, "Class.method", make_wrapper)`` where
``make_wrapper(recorder)`` returns a wrapt wrapper. The same table drives install and uninstall,
so the two cannot drift. An SDK that is not installed is skipped silently; an SDK imported later
is patched when it is imported (wrapt's post-import hooks), so ``%load_ext nbcost`` does not pay
for importing SDKs the notebook never uses. A method that moved gets one clear warning.
"""

from __future__ import annotations

import logging
import sys
import weakref
from dataclasses import dataclass
from typing import Any, Callable

import wrapt

from .recorder import INSIDE_CALL, CallSpec, Recorder

__all__ = ["Patch", "Patcher", "async_wrapper", "run_recorded", "sync_wrapper"]

log = logging.getLogger("nbcost.llm")


@dataclass(frozen=True)
class Patch:
    module: str
    target: str
    make_wrapper: Callable[[Recorder], Callable[..., Any]]


def sync_wrapper(spec: CallSpec) -> Callable[[Recorder], Callable[..., Any]]:
    """A wrapper that records one sync call described by ``spec``."""

    def make(recorder: Recorder) -> Callable[..., Any]:
        def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
            __tracebackhide__ = True  # IPython shows the user's and the SDK's frames, not ours
            call = recorder.begin(spec, instance, kwargs)
            if call is None:
                return wrapped(*args, **kwargs)
            call.is_async = False
            return recorder.complete(call, run_recorded(recorder, call, wrapped, args, kwargs))

        return wrapper

    return make


def run_recorded(recorder: Recorder, call: Any, wrapped: Any, args: tuple, kwargs: dict) -> Any:
    """Run the wrapped sync method as the recorded ``call``: SDK calls it makes underneath are
    not recorded again; an exception is recorded and re-raised unchanged."""
    __tracebackhide__ = True
    token = INSIDE_CALL.set(True)
    try:
        return wrapped(*args, **kwargs)
    except BaseException as exc:
        recorder.fail(call, exc)
        raise
    finally:
        INSIDE_CALL.reset(token)


def async_wrapper(spec: CallSpec) -> Callable[[Recorder], Callable[..., Any]]:
    """A wrapper that records one ``async def`` call described by ``spec``."""

    def make(recorder: Recorder) -> Callable[..., Any]:
        async def wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
            __tracebackhide__ = True  # IPython shows the user's and the SDK's frames, not ours
            call = recorder.begin(spec, instance, kwargs)
            if call is None:
                return await wrapped(*args, **kwargs)
            call.is_async = True
            token = INSIDE_CALL.set(True)
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as exc:
                recorder.fail(call, exc)
                raise
            finally:
                INSIDE_CALL.reset(token)
            return recorder.complete(call, result)

        return wrapper

    return make


#: Patchers installed now (weak: a dropped meter drops out), and the modules that have an import
#: hook. wrapt cannot remove a post-import hook, so there is one per module for the process,
#: and it patches for whichever patchers are live when the module is imported.
_LIVE: weakref.WeakSet[Patcher] = weakref.WeakSet()
_HOOKED: set[str] = set()


def _on_import(module: Any) -> None:
    for patcher in list(_LIVE):
        if patcher.recorder.active:
            patcher._patch_module(module)


class Patcher:
    """Applies the ``PATCHES`` tables of the SDK modules for one recorder, and undoes them."""

    def __init__(self, recorder: Recorder, tables: dict[str, list[Patch]]) -> None:
        self.recorder = recorder
        self.tables = tables
        self.applied: list[tuple[Any, str, Any, bool]] = []  # owner, attribute, wrapper, inherited
        self._done_modules: set[str] = set()

    def install(self) -> None:
        """Patch the SDK modules already imported; the others when (if ever) they are imported.
        An SDK that is not installed is never imported, so it is skipped without a word."""
        _LIVE.add(self)
        for patches in self.tables.values():
            for module in sorted({p.module for p in patches}):
                if module in sys.modules:
                    self._patch_module(sys.modules[module])
                elif module not in _HOOKED:  # one hook per module per process, whatever restarts
                    _HOOKED.add(module)
                    wrapt.register_post_import_hook(_on_import, module)

    def _patch_module(self, module: Any) -> None:
        name = module.__name__
        if name in self._done_modules:
            return
        self._done_modules.add(name)
        for patches in self.tables.values():
            for patch in patches:
                if patch.module == name:
                    self._apply(module, patch)

    def _apply(self, module: Any, patch: Patch) -> None:
        owner_path, _, attribute = patch.target.rpartition(".")
        try:
            owner = module
            for part in filter(None, owner_path.split(".")):
                owner = getattr(owner, part)
            original, inherited = _lookup(owner, attribute)
        except (AttributeError, KeyError):
            version = getattr(sys.modules.get(patch.module.split(".")[0]), "__version__", "?")
            self.recorder.sink.warn_once(
                f"llm-shape:{patch.module}.{patch.target}",
                f"nbcost: {patch.module.split('.')[0]} {version} has no {patch.target} in "
                f"{patch.module}; those LLM calls are not tracked. Other calls still are.")
            return
        if getattr(original, "_self_nbcost", False):  # another session's patch: replace it
            original = original.__wrapped__
        wrapper = wrapt.FunctionWrapper(original, patch.make_wrapper(self.recorder))
        wrapper._self_nbcost = True
        setattr(owner, attribute, wrapper)
        self.applied.append((owner, attribute, wrapper, inherited))

    def uninstall(self) -> None:
        """Stop patching and put every original back. Where something else re-wrapped on top of
        ours, our wrapper stays, inert, since the recorder is inactive."""
        for owner, attribute, wrapper, inherited in reversed(self.applied):
            current = owner.__dict__.get(attribute) if isinstance(owner, type) else getattr(owner, attribute, None)
            if current is wrapper and inherited:
                delattr(owner, attribute)  # the base class's method shows through again
            elif current is wrapper:
                setattr(owner, attribute, wrapper.__wrapped__)
        self.applied.clear()
        self._done_modules.clear()
        _LIVE.discard(self)


def _lookup(owner: Any, attribute: str) -> tuple[Any, bool]:
    """The raw attribute (a class's own or inherited function, not a bound method) and whether
    it was inherited. Raises KeyError/AttributeError when there is none."""
    if not isinstance(owner, type):
        return getattr(owner, attribute), False
    for klass in owner.__mro__:
        if attribute in klass.__dict__:
            return klass.__dict__[attribute], klass is not owner
    raise KeyError(attribute)
