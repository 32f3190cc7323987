"""Protobuf message classes built at run time (no protoc here), as a model server's generated code would be."""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, struct_pb2, timestamp_pb2
from google.protobuf.message_factory import GetMessageClass

F = descriptor_pb2.FieldDescriptorProto


def scored_request_type() -> Any:
    """``shop.ml.ScoredRequest`` (the second message of its file, so its message index is [1]): request_id,
    model, version, int64 ts, inputs.features (a ``google.protobuf.Struct``), prediction, score, and an
    optional ``google.protobuf.Timestamp`` ``at``."""
    file = descriptor_pb2.FileDescriptorProto(
        name="shop/scored.proto", package="shop.ml", syntax="proto3",
        dependency=["google/protobuf/struct.proto", "google/protobuf/timestamp.proto"])
    inputs = file.message_type.add(name="Inputs")
    inputs.field.add(name="features", number=1, type=F.TYPE_MESSAGE, type_name=".google.protobuf.Struct",
                     label=F.LABEL_OPTIONAL)
    message = file.message_type.add(name="ScoredRequest")
    for number, (name, kind) in enumerate([("request_id", F.TYPE_STRING), ("model", F.TYPE_STRING),
                                           ("version", F.TYPE_STRING), ("ts", F.TYPE_INT64)], 1):
        message.field.add(name=name, number=number, type=kind, label=F.LABEL_OPTIONAL)
    message.field.add(name="inputs", number=5, type=F.TYPE_MESSAGE, type_name=".shop.ml.Inputs",
                      label=F.LABEL_OPTIONAL)
    message.field.add(name="prediction", number=6, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    message.field.add(name="score", number=7, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    message.field.add(name="at", number=8, type=F.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp",
                      label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(struct_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    return GetMessageClass(pool.FindMessageTypeByName("shop.ml.ScoredRequest"))


def scored_request(cls: Any, record: dict[str, Any]) -> Any:
    """A ``ScoredRequest`` of a model-server record (the shape of the Avro test's records)."""
    message = cls(request_id=record["request_id"], model=record["model"], version=record["version"],
                  ts=record["ts"], prediction=record["prediction"], score=record["score"])
    message.inputs.features.update(record["inputs"]["features"])
    return message
