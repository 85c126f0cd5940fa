"""Stream proxies: user code sees the very same stream; nbcost notes usage as chunks pass.

A proxy forwards every attribute to the SDK's stream (``wrapt.ObjectProxy``) and only adds
bookkeeping to iteration. The call is recorded exactly once, by whichever comes first: the end of
the stream, an error in it, ``close()``/``aclose()``, leaving a ``with`` block, or garbage
collection (``weakref.finalize``, never ``__del__``: a finaliser holds the call, not the proxy,
and runs at most once by construction).

An *interruption* is not an SDK error: Ctrl-C (``KeyboardInterrupt``, which lands while the SDK
waits on the socket), a cancelled task (``asyncio.CancelledError``) or ``SystemExit`` stop a stream
whose prompt was sent and whose text partly arrived. Such a call is estimated as a ``break`` is
(input from the request, output from the chunks seen) and flagged ``interrupted``.
"""

from __future__ import annotations

import json
import weakref
from typing import Any

import wrapt

from .recorder import Call, Recorder

__all__ = ["AsyncStreamProxy", "AsyncUnreadBodyProxy", "StreamManagerProxy", "SyncStreamProxy",
           "UnreadBodyProxy", "is_interruption", "proxy_stream", "read_or_proxy"]


class _Tracked(wrapt.ObjectProxy):
    def __init__(self, wrapped: Any, recorder: Recorder, call: Call) -> None:
        super().__init__(wrapped)
        self._self_call = call
        call.proxied = True
        self._self_on_chunk = call.spec.on_chunk
        self._self_recorder = recorder
        self._self_finalizer = weakref.finalize(self, recorder.finish, call)

    def _finish(self, error: BaseException | None = None, ended: bool = False,
                interrupted: bool = False) -> None:
        """Record the call now (at most once: a finalize object runs its callback once).
        ``error``: what the stream itself raised (an interruption is told apart here)."""
        call = self._self_call
        if ended:
            call.ended = True
        if error is not None and is_interruption(error):
            interrupted = True
        elif error is not None and call.error is None:
            call.error = type(error).__name__
        if interrupted and not call.done:
            call.interrupted = True
        self._self_finalizer()

    def _note(self, chunk: Any) -> None:
        try:
            self._self_on_chunk(self._self_call, chunk)
        except Exception as exc:  # nbcost's fault: the user still gets the chunk
            self._self_recorder.fault("reading a stream chunk", exc)
            self._self_on_chunk = _ignore


def _ignore(call: Call, chunk: Any) -> None:
    pass


def is_interruption(exc: BaseException | None) -> bool:
    """Ctrl-C, a cancelled task, an exit: the user stopped the call, the SDK did not fail
    (every SDK error is an ``Exception``)."""
    return exc is not None and not isinstance(exc, Exception)


class SyncStreamProxy(_Tracked):
    """A sync stream (OpenAI/Anthropic ``Stream``, Mistral ``EventStream``, a generator)."""

    def __iter__(self) -> SyncStreamProxy:
        return self

    def __next__(self) -> Any:
        try:
            chunk = next(self.__wrapped__)
        except StopIteration:
            self._finish(ended=True)
            raise
        except BaseException as exc:
            self._finish(error=exc)
            raise
        try:  # inlined _note(): this is the per-chunk hot path
            self._self_on_chunk(self._self_call, chunk)
        except Exception as exc:
            self._self_recorder.fault("reading a stream chunk", exc)
            self._self_on_chunk = _ignore
        return chunk

    def close(self) -> Any:
        try:
            close = getattr(self.__wrapped__, "close", None)
            return close() if close is not None else None
        finally:
            self._finish()

    def __enter__(self) -> SyncStreamProxy:
        enter = getattr(self.__wrapped__, "__enter__", None)
        if enter is not None:
            enter()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            exit_ = getattr(self.__wrapped__, "__exit__", None)
            return exit_(*exc_info) if exit_ is not None else None
        finally:
            self._finish(interrupted=is_interruption(exc_info[1]))


class AsyncStreamProxy(_Tracked):
    """An async stream (``AsyncStream``, ``EventStreamAsync``, an async generator)."""

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        try:
            chunk = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            self._finish(ended=True)
            raise
        except BaseException as exc:
            self._finish(error=exc)
            raise
        self._note(chunk)
        return chunk

    async def close(self) -> Any:
        return await self._close_wrapped("close", "aclose")

    async def aclose(self) -> Any:
        return await self._close_wrapped("aclose", "close")

    async def _close_wrapped(self, *names: str) -> Any:
        """Close the SDK's stream by the first of ``names`` it has; finish the record either way."""
        try:
            for name in names:
                method = getattr(self.__wrapped__, name, None)
                if method is not None:
                    return await method()
            return None
        finally:
            self._finish()

    async def __aenter__(self) -> AsyncStreamProxy:
        enter = getattr(self.__wrapped__, "__aenter__", None)
        if enter is not None:
            await enter()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            exit_ = getattr(self.__wrapped__, "__aexit__", None)
            return await exit_(*exc_info) if exit_ is not None else None
        finally:
            self._finish(interrupted=is_interruption(exc_info[1]))


def proxy_stream(recorder: Recorder, call: Call, stream: Any) -> _Tracked:
    """Wrap ``stream`` in the proxy that matches its kind (sync or async)."""
    is_async = call.is_async
    if is_async is None:  # litellm's stream wrapper has both; the wrapper kind decides there
        is_async = hasattr(stream, "__anext__") or hasattr(stream, "__aiter__")
    if is_async:
        return AsyncStreamProxy(stream, recorder, call)
    return SyncStreamProxy(stream, recorder, call)


class StreamManagerProxy(wrapt.ObjectProxy):
    """Wraps an SDK stream *manager* (``client.….stream(...)``, used as ``with``).

    The manager makes its request on ``__enter__`` through a private ``api_request`` callable;
    nbcost swaps that callable for one that proxies the raw stream (``make``), and finishes the
    proxy when the ``with`` block exits, since the helper's ``close()`` may bypass it.
    """

    def __init__(self, manager: Any, make: Any, on_error: Any = None) -> None:
        super().__init__(manager)
        self._self_streams: list[Any] = []
        name = next((n for n in vars(manager) if n.endswith("__api_request")), None)
        if name is None:
            raise AttributeError("stream manager without an api_request")
        original = getattr(manager, name)
        streams = self._self_streams

        if callable(original):
            def request() -> Any:
                try:
                    raw = original()
                except BaseException as exc:
                    if on_error is not None:
                        on_error(exc)
                    raise
                stream = make(raw)
                streams.append(stream)
                return stream
            setattr(manager, name, request)
        else:  # an awaitable made at .stream() time
            async def arequest() -> Any:
                try:
                    raw = await original
                except BaseException as exc:
                    if on_error is not None:
                        on_error(exc)
                    raise
                stream = make(raw)
                streams.append(stream)
                return stream
            setattr(manager, name, arequest())

    def _finish_all(self, exc: BaseException | None = None) -> None:
        for stream in self._self_streams:
            if isinstance(stream, _Tracked):
                stream._finish(interrupted=is_interruption(exc))

    def __enter__(self) -> Any:
        return self.__wrapped__.__enter__()

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(*exc_info)
        finally:
            self._finish_all(exc_info[1])

    async def __aenter__(self) -> Any:
        return await self.__wrapped__.__aenter__()

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(*exc_info)
        finally:
            self._finish_all(exc_info[1])


def read_or_proxy(recorder: Recorder, call: Call, result: Any, read: Any) -> Any:
    """Read a response (``read(call, response)``) or proxy a stream, also when the SDK returned
    a raw-response wrapper (``with_raw_response``: openai's ``LegacyAPIResponse``, anthropic's
    ``APIResponse``). Their ``parse()`` caches its result, so a stream's proxy goes in that cache.
    A ``with_streaming_response`` body is the user's to read: see :class:`UnreadBodyProxy`."""
    kind = type(result).__name__
    mode = _raw_mode(call)
    if kind == "LegacyAPIResponse" or (kind == "APIResponse" and mode == "raw"):
        parsed = result.parse()
        if call.streaming:
            result._parsed_by_type[result._cast_to] = proxy_stream(recorder, call, parsed)
        else:
            read(call, parsed)
        return result
    if kind == "AsyncAPIResponse" and mode == "raw":  # parse() is a coroutine: read the body
        if not call.streaming:
            read(call, json.loads(result.http_response.content))
        return result
    if kind == "APIResponse":
        return UnreadBodyProxy(result, recorder, call, read)
    if kind == "AsyncAPIResponse":
        return AsyncUnreadBodyProxy(result, recorder, call, read)
    if call.streaming:
        return proxy_stream(recorder, call, result)
    read(call, result)
    return result


class UnreadBodyProxy(_Tracked):
    """A ``with_streaming_response`` response, its body not read yet: the user reads it (or
    not) inside the ``with`` block, whose end closes it. The call is recorded then, from the
    body if the user read it (its usage, as the API reported it), else estimated; a stream the
    user takes with ``parse()`` is proxied like any other."""

    def __init__(self, wrapped: Any, recorder: Recorder, call: Call, read: Any) -> None:
        super().__init__(wrapped, recorder, call)
        self._self_read = read

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        parsed = self.__wrapped__.parse(*args, **kwargs)
        return self._proxied(parsed)

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._read_body()

    def _proxied(self, parsed: Any) -> Any:
        call = self._self_call
        if not call.streaming or call.done or isinstance(parsed, _Tracked):
            return parsed
        return proxy_stream(self._self_recorder, call, parsed)

    def _read_body(self) -> None:
        """The response is closed: record the call, from its body if the user read it (a
        stream's chunks were read as they passed)."""
        call = self._self_call
        if call.done or call.streaming:
            self._finish()
            return
        try:
            content = self.__wrapped__.http_response.content  # never read: httpx raises
        except Exception:  # noqa: BLE001 - nothing to read: the call is estimated
            content = None
        try:
            if content is not None:
                self._self_read(call, json.loads(content))
        except Exception as exc:  # noqa: BLE001 - still recorded, as estimated
            self._self_recorder.fault("reading a response body", exc)
        self._finish(ended=True)


class AsyncUnreadBodyProxy(UnreadBodyProxy):
    """:class:`UnreadBodyProxy` for ``async with ….with_streaming_response…``."""

    async def parse(self, *args: Any, **kwargs: Any) -> Any:
        return self._proxied(await self.__wrapped__.parse(*args, **kwargs))

    async def close(self) -> Any:
        try:
            return await self.__wrapped__.close()
        finally:
            self._read_body()


def _raw_mode(call: Call) -> str | None:
    headers = (call.kwargs or {}).get("extra_headers") or {}
    return headers.get("X-Stainless-Raw-Response")
