"""The producer SDK: validate predictions and ground truth, then publish them to Kafka in batches.

Every message is keyed by its ``prediction_id`` (UTF-8) and its value is compact JSON (orjson) of the
validated event: timestamps as whole Unix epoch milliseconds (sub-millisecond digits are dropped), top-level
fields that are None left out, NaN feature values written as ``null`` (both mean "missing" to Driftwarden).
Invalid input raises :class:`~stream.contracts.events.ContractError` before anything of it is sent.

:class:`AsyncProducer` wraps aiokafka's producer: ``send_*`` appends to aiokafka's per-partition batches
(``linger_ms``, ``max_batch_size``) and returns without waiting for delivery; :meth:`AsyncProducer.flush`
waits for every delivery. :class:`Producer` is the synchronous twin: it runs one event loop in a background
thread; ``send_*`` validates and encodes in the caller's thread and hands the bytes over in a list that the
loop drains (one wake-up per batch, not per message), so it is about as fast as the async producer.

Delivery failures are counted (``failed``) and reported by ``flush()`` as a :class:`DeliveryError`.

Receivers of Driftwarden's alert webhook check requests with :func:`verify_webhook` (Standard Webhooks
signatures; stale timestamps, i.e. replays, are rejected).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar, cast

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

from stream.alerts.signing import WebhookVerificationError, verify_webhook
from stream.config import Settings
from stream.contracts.events import (
    DEFAULT_LIMITS,
    ContractError,
    GroundTruthEvent,
    Limits,
    PredictionEvent,
    _event_models,
    to_epoch_ms,
    validate_ground_truth,
    validate_prediction,
)
from stream.contracts.registry import RegisteredModel, encode
from stream.errors import UserError
from stream.kafka.clients import start_errors, unreachable
from stream.kafka.security import check_tls, client_options

__all__ = [
    "AsyncProducer",
    "AsyncSend",
    "DeliveryError",
    "Producer",
    "Send",
    "WebhookVerificationError",
    "encode_ground_truth",
    "encode_prediction",
    "resolve_bootstrap",
    "verify_webhook",
]

Send = Callable[[str, bytes, bytes], object]
"""A synchronous transport ``send(topic, key, value)``; raising counts the message as failed."""
AsyncSend = Callable[[str, bytes, bytes], Awaitable[object]]
"""An asynchronous transport ``await send(topic, key, value)``."""

Message = tuple[str, bytes, bytes]
"""(topic, key, value)"""

_START_TIMEOUT = 15.0

_Event = TypeVar("_Event", PredictionEvent, GroundTruthEvent)


class DeliveryError(UserError):
    """Some messages could not be delivered to Kafka (raised by ``flush()``)."""


def resolve_bootstrap(settings: Settings | None = None) -> tuple[str, bool]:
    """Where to produce: the running service's broker, else the configured Kafka; and whether it is embedded.

    Raises :class:`UserError` when neither exists.
    """
    from stream.runtime.service import read_runtime

    s = settings or Settings()
    runtime = read_runtime(s.data_dir)
    if runtime is not None and runtime.get("bootstrap_servers"):  # read_runtime checked pid and port
        return str(runtime["bootstrap_servers"]), bool(runtime.get("embedded_broker", False))
    if s.kafka_bootstrap_servers:
        return s.kafka_bootstrap_servers, False
    raise UserError(
        f"no Kafka to produce to: start the service with `driftwarden up` (data dir {s.data_dir}), "
        "or set DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS=host:port"
    )


def _dump(event: PredictionEvent | GroundTruthEvent, limits: Limits) -> bytes:
    fields = {k: v for k, v in event.__dict__.items() if v is not None}
    fields["timestamp"] = to_epoch_ms(event.timestamp)
    value = orjson.dumps(fields)
    if len(value) > limits.max_message_bytes:
        raise ContractError(
            "too_large", f"message is {len(value)} bytes, above the limit of {limits.max_message_bytes} bytes"
        )
    return value


def encode_prediction(
    event: PredictionEvent | Mapping[str, Any], limits: Limits = DEFAULT_LIMITS
) -> tuple[bytes, bytes]:
    """Validate one prediction and return its message ``(key, value)``.

    A mapping is validated against the contract; a :class:`PredictionEvent` built by the class enforcing
    ``limits`` is trusted (pydantic validated it when it was made), any other instance is validated again.

    Examples
    --------
    >>> key, value = encode_prediction({"prediction_id": "p1", "model_id": "m", "prediction": 1,
    ...                                 "timestamp": "2024-01-01T00:00:00.123Z", "features": {"x": None}})
    >>> key
    b'p1'
    >>> print(value.decode())
    {"prediction_id":"p1","model_id":"m","model_version":"1","timestamp":1704067200123,"features":{"x":null},"prediction":1,"segment":{}}
    """
    return _encode(event, limits, PredictionEvent, validate_prediction)


def encode_ground_truth(
    event: GroundTruthEvent | Mapping[str, Any], limits: Limits = DEFAULT_LIMITS
) -> tuple[bytes, bytes]:
    """Validate one ground-truth event and return its message ``(key, value)``; see :func:`encode_prediction`."""
    return _encode(event, limits, GroundTruthEvent, validate_ground_truth)


def _encode(
    event: _Event | Mapping[str, Any],
    limits: Limits,
    kind: type[_Event],
    validate: Callable[[Mapping[str, Any], Limits], _Event],
) -> tuple[bytes, bytes]:
    """``(key, value)`` of one event of ``kind``: its class enforcing ``limits`` is trusted, the rest validated."""
    trusted = _event_models(limits)[0 if kind is PredictionEvent else 1]
    if type(event) is not trusted:
        data = event.model_dump() if isinstance(event, kind) else cast(Mapping[str, Any], event)
        event = validate(data, limits)
    assert isinstance(event, kind)
    return event.prediction_id.encode(), _dump(event, limits)


def _encode_all(
    events: Iterable[Any], encoder: Callable[[Any, Limits], tuple[bytes, bytes]], topic: str, limits: Limits
) -> list[Message]:
    out: list[Message] = []
    for index, event in enumerate(events):
        try:
            key, value = encoder(event, limits)
        except ContractError as exc:
            raise ContractError(exc.reason, f"event {index}: {exc}") from None
        out.append((topic, key, value))
    return out


class _Counters:
    def __init__(self) -> None:
        self.sent = 0
        self.failed = 0
        self.last_error: BaseException | None = None
        self._reported = 0

    def fail(self, exc: BaseException, n: int = 1) -> None:
        self.failed += n
        self.last_error = exc

    def check(self) -> None:
        """Raise DeliveryError if messages failed since the last check."""
        new = self.failed - self._reported
        if new:
            self._reported = self.failed
            raise DeliveryError(f"{new} messages could not be delivered to Kafka: {self.last_error!r}")


class AsyncProducer:
    """Validate and publish events with aiokafka (use ``async with`` or ``await start()`` / ``close()``).

    Parameters
    ----------
    bootstrap_servers
        ``host:port[,...]``; default: the running service's broker, else DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS.
    settings
        Topic names and the data directory (default: ``Settings()`` from the environment).
    limits
        Size limits enforced on every event.
    linger_ms, max_batch_size
        aiokafka batching: wait up to ``linger_ms`` to fill batches of up to ``max_batch_size`` bytes.
    send
        A transport replacing Kafka (tests): awaited once per message; nothing connects.
    **kafka_options
        Passed to ``AIOKafkaProducer`` (e.g. ``compression_type``, security settings).
    """

    def __init__(
        self,
        bootstrap_servers: str | None = None,
        *,
        settings: Settings | None = None,
        limits: Limits = DEFAULT_LIMITS,
        linger_ms: int = 5,
        max_batch_size: int = 512 * 1024,
        send: AsyncSend | None = None,
        **kafka_options: Any,
    ) -> None:
        self.settings = settings or Settings()
        self.limits = limits
        self._send = send
        self._counters = _Counters()
        self._producer: AIOKafkaProducer | None = None
        self._partitioner: Callable[[bytes, list[int], list[int]], int] = (
            kafka_options.get("partitioner") or DefaultPartitioner()
        )
        self.bootstrap_servers = ""
        self._security: dict[str, Any] = {}
        if send is None:
            embedded = False
            if bootstrap_servers:
                self.bootstrap_servers = bootstrap_servers
            else:
                self.bootstrap_servers, embedded = resolve_bootstrap(self.settings)
            self._security = client_options(self.settings, embedded)  # TLS / SASL from the settings
            self._options = {"linger_ms": linger_ms, "max_batch_size": max_batch_size, "acks": 1,
                             "enable_idempotence": False, **self._security, **kafka_options}

    @property
    def sent(self) -> int:
        """Messages delivered (acknowledged by Kafka, or accepted by the injected transport)."""
        return self._counters.sent

    @property
    def failed(self) -> int:
        """Messages that could not be delivered."""
        return self._counters.failed

    async def start(self) -> AsyncProducer:
        """Connect to Kafka (no-op with an injected transport); one-line UserError when it is unreachable."""
        if self._send is not None or self._producer is not None:
            return self
        await check_tls(self.bootstrap_servers, self._options)  # an untrusted certificate: one line, at once
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers, **self._options)
        try:
            await asyncio.wait_for(producer.start(), _START_TIMEOUT)
        except start_errors(self._security) as exc:
            with contextlib.suppress(Exception):
                await producer.stop()
            if self._security:
                raise unreachable(self.bootstrap_servers, exc, self._security) from None
            raise UserError(
                f"cannot reach Kafka at {self.bootstrap_servers} ({type(exc).__name__}): is `driftwarden up` "
                "running, or DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS right?"
            ) from None
        self._producer = producer
        return self

    async def send_prediction(self, event: PredictionEvent | Mapping[str, Any]) -> None:
        """Validate one prediction and queue it (raises ContractError when invalid)."""
        key, value = encode_prediction(event, self.limits)
        await self.send_raw(self.settings.topic_predictions, key, value)

    async def send_ground_truth(self, event: GroundTruthEvent | Mapping[str, Any]) -> None:
        """Validate one ground-truth event and queue it (raises ContractError when invalid)."""
        key, value = encode_ground_truth(event, self.limits)
        await self.send_raw(self.settings.topic_ground_truth, key, value)

    async def send_predictions(self, events: Iterable[PredictionEvent | Mapping[str, Any]]) -> int:
        """Validate all events, then queue them; one invalid event raises ContractError and sends nothing."""
        return await self._send_all(_encode_all(events, encode_prediction, self.settings.topic_predictions,
                                                self.limits))

    async def send_ground_truths(self, events: Iterable[GroundTruthEvent | Mapping[str, Any]]) -> int:
        """Validate all events, then queue them; see :meth:`send_predictions`."""
        return await self._send_all(_encode_all(events, encode_ground_truth, self.settings.topic_ground_truth,
                                                self.limits))

    async def send_model(self, model: RegisteredModel) -> None:
        """Publish a model registration to the compacted models topic (key = model id)."""
        key, value = encode(model)
        await self.send_raw(self.settings.topic_models, key, value)

    async def _send_all(self, messages: list[Message]) -> int:
        await self.send_many(messages)
        return len(messages)

    async def send_many(self, messages: list[Message]) -> None:
        """Queue already-encoded ``(topic, key, value)`` messages without validation, as whole record batches.

        Partitions are chosen by key with the producer's partitioner (Kafka's murmur2 by default), exactly as
        one-by-one sends would.
        """
        if self._send is not None or len(messages) == 1:
            for topic, key, value in messages:
                await self.send_raw(topic, key, value)
            return
        producer = self._require()
        partitions: dict[str, list[int]] = {}
        batches: dict[tuple[str, int], BatchBuilder] = {}
        for index, (topic, key, value) in enumerate(messages):
            try:
                if (parts := partitions.get(topic)) is None:
                    parts = partitions[topic] = sorted(await producer.partitions_for(topic))
            except KafkaError as exc:
                self._counters.fail(exc, len(messages) - index)
                break
            slot = (topic, self._partitioner(key, parts, parts))
            batch = batches.get(slot)
            if batch is None:
                batch = batches[slot] = producer.create_batch()
            if batch.append(timestamp=None, key=key, value=value) is None:
                await self._ship(batch, *slot)
                batch = batches[slot] = producer.create_batch()
                if batch.append(timestamp=None, key=key, value=value) is None:  # larger than a batch
                    del batches[slot]
                    await self.send_raw(topic, key, value)
        for slot, batch in batches.items():
            await self._ship(batch, *slot)

    async def _ship(self, batch: BatchBuilder, topic: str, partition: int) -> None:
        n = batch.record_count()
        if not n:
            return
        try:
            future = await self._require().send_batch(batch, topic, partition=partition)
        except KafkaError as exc:
            self._counters.fail(exc, n)
            return
        future.add_done_callback(functools.partial(self._delivered, n=n))

    def _require(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("AsyncProducer is not started: use `async with` or `await producer.start()`")
        return self._producer

    async def send_raw(self, topic: str, key: bytes, value: bytes) -> None:
        """Queue already-encoded bytes without validation (delivery is counted, not awaited)."""
        if self._send is not None:
            try:
                await self._send(topic, key, value)
            except Exception as exc:
                self._counters.fail(exc)
            else:
                self._counters.sent += 1
            return
        try:
            future = await self._require().send(topic, value, key=key)
        except KafkaError as exc:
            self._counters.fail(exc)
            return
        future.add_done_callback(self._delivered)

    def _delivered(self, future: asyncio.Future[Any], n: int = 1) -> None:
        if future.cancelled():
            self._counters.fail(asyncio.CancelledError(), n)
        elif (exc := future.exception()) is not None:
            self._counters.fail(exc, n)
        else:
            self._counters.sent += n

    async def flush(self) -> None:
        """Wait until everything queued is delivered; raise DeliveryError if any message failed since last."""
        if self._producer is not None:
            await self._producer.flush()
        self._counters.check()

    async def close(self) -> None:
        """Flush and disconnect (idempotent); raises DeliveryError like :meth:`flush`."""
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await producer.flush()
            finally:
                await producer.stop()
        self._counters.check()

    async def __aenter__(self) -> AsyncProducer:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class Producer:
    """Synchronous producer: same parameters as :class:`AsyncProducer`; ``send`` is a synchronous transport.

    Connects in the constructor (the event loop runs in a daemon thread); use ``with Producer() as p:`` or call
    :meth:`close`. Methods are safe to call from several threads.
    """

    def __init__(
        self,
        bootstrap_servers: str | None = None,
        *,
        settings: Settings | None = None,
        limits: Limits = DEFAULT_LIMITS,
        linger_ms: int = 5,
        max_batch_size: int = 512 * 1024,
        max_pending: int = 100_000,
        send: Send | None = None,
        **kafka_options: Any,
    ) -> None:
        self.settings = settings or Settings()
        self.limits = limits
        self._send = send
        self._sync_counters = _Counters()
        self._pending: list[Message] = []
        self._max_pending = max_pending
        self._cond = threading.Condition()
        self._draining = False
        self._idle: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._async: AsyncProducer | None = None
        if send is not None:
            self.bootstrap_servers = ""
            return
        self._async = AsyncProducer(bootstrap_servers, settings=self.settings, limits=limits, linger_ms=linger_ms,
                                    max_batch_size=max_batch_size, **kafka_options)
        self.bootstrap_servers = self._async.bootstrap_servers
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="driftwarden-producer", daemon=True)
        self._thread.start()
        try:
            self._call(self._start())
        except BaseException:
            self._stop_loop()
            raise

    async def _start(self) -> None:
        assert self._async is not None
        self._idle = asyncio.Event()
        self._idle.set()
        await self._async.start()

    def _call(self, coro: Awaitable[Any]) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()  # type: ignore[arg-type]

    @property
    def sent(self) -> int:
        """Messages delivered (acknowledged by Kafka, or accepted by the injected transport)."""
        return self._async.sent if self._async is not None else self._sync_counters.sent

    @property
    def failed(self) -> int:
        """Messages that could not be delivered."""
        return self._async.failed if self._async is not None else self._sync_counters.failed

    def send_prediction(self, event: PredictionEvent | Mapping[str, Any]) -> None:
        """Validate one prediction and queue it (raises ContractError when invalid)."""
        key, value = encode_prediction(event, self.limits)
        self._enqueue([(self.settings.topic_predictions, key, value)])

    def send_ground_truth(self, event: GroundTruthEvent | Mapping[str, Any]) -> None:
        """Validate one ground-truth event and queue it (raises ContractError when invalid)."""
        key, value = encode_ground_truth(event, self.limits)
        self._enqueue([(self.settings.topic_ground_truth, key, value)])

    def send_predictions(self, events: Iterable[PredictionEvent | Mapping[str, Any]]) -> int:
        """Validate all events, then queue them; one invalid event raises ContractError and sends nothing."""
        messages = _encode_all(events, encode_prediction, self.settings.topic_predictions, self.limits)
        self._enqueue(messages)
        return len(messages)

    def send_ground_truths(self, events: Iterable[GroundTruthEvent | Mapping[str, Any]]) -> int:
        """Validate all events, then queue them; see :meth:`send_predictions`."""
        messages = _encode_all(events, encode_ground_truth, self.settings.topic_ground_truth, self.limits)
        self._enqueue(messages)
        return len(messages)

    def send_model(self, model: RegisteredModel) -> None:
        """Publish a model registration to the compacted models topic (key = model id)."""
        key, value = encode(model)
        self._enqueue([(self.settings.topic_models, key, value)])

    def _enqueue(self, messages: list[Message]) -> None:
        if not messages:
            return
        if self._send is not None:
            for topic, key, value in messages:
                try:
                    self._send(topic, key, value)
                except Exception as exc:
                    self._sync_counters.fail(exc)
                else:
                    self._sync_counters.sent += 1
            return
        if self._loop is None:
            raise RuntimeError("Producer is closed")
        with self._cond:
            while len(self._pending) >= self._max_pending:
                self._cond.wait()
            wake = not self._pending and not self._draining
            self._pending.extend(messages)
            if wake:
                self._draining = True
                self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        assert self._idle is not None
        self._idle.clear()
        self._loop.create_task(self._drain())  # type: ignore[union-attr]

    async def _drain(self) -> None:
        assert self._async is not None and self._idle is not None
        while True:
            with self._cond:
                batch, self._pending = self._pending, []
                if not batch:
                    self._draining = False
                    self._idle.set()
                    return
                self._cond.notify_all()
            try:
                await self._async.send_many(batch)
            except Exception as exc:  # e.g. the producer was stopped: count the batch as failed
                self._async._counters.fail(exc, len(batch))

    async def _flush(self) -> None:
        assert self._async is not None and self._idle is not None
        await self._idle.wait()
        await self._async.flush()

    def flush(self) -> None:
        """Wait until everything queued is delivered; raise DeliveryError if any message failed since last."""
        if self._async is None:
            self._sync_counters.check()
            return
        if self._loop is None:
            return
        self._call(self._flush())

    def close(self) -> None:
        """Flush, disconnect and stop the background thread (idempotent); raises DeliveryError like flush."""
        if self._async is None or self._loop is None:
            self.flush()
            return
        try:
            self._call(self._flush_and_close())
        finally:
            self._stop_loop()

    async def _flush_and_close(self) -> None:
        assert self._async is not None and self._idle is not None
        await self._idle.wait()
        await self._async.close()

    def _stop_loop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join()
        loop.close()

    def __enter__(self) -> Producer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
