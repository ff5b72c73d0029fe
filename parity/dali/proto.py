"""DALI's serialized-pipeline protobuf schema (``dali_proto.PipelineDef``), built at import time.

The DALI wheel ships neither ``dali.proto`` nor generated ``_pb2`` classes, so the four messages a
serialized pipeline uses are declared here field by field, matching ``dali/pipeline/proto/dali.proto``
(proto2, package ``dali_proto``). Only the wire format matters: unknown fields survive a round trip.
"""

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
_REQ, _OPT, _REP = _F.LABEL_REQUIRED, _F.LABEL_OPTIONAL, _F.LABEL_REPEATED

# (message, [(field name, number, label, type, message type name or None, default or None)])
_SCHEMA = [
    ("Argument", [
        ("name", 1, _REQ, _F.TYPE_STRING, None, None),
        ("type", 2, _OPT, _F.TYPE_STRING, None, None),
        ("floats", 3, _REP, _F.TYPE_FLOAT, None, None),
        ("ints", 4, _REP, _F.TYPE_INT64, None, None),
        ("strings", 5, _REP, _F.TYPE_STRING, None, None),
        ("bools", 6, _REP, _F.TYPE_BOOL, None, None),
        ("extra_args", 7, _REP, _F.TYPE_MESSAGE, ".dali_proto.Argument", None),
        ("is_vector", 8, _REQ, _F.TYPE_BOOL, None, "false"),
    ]),
    ("InputOutput", [
        ("name", 1, _REQ, _F.TYPE_STRING, None, None),
        ("device", 2, _REQ, _F.TYPE_STRING, None, None),
        ("is_argument_input", 3, _REQ, _F.TYPE_BOOL, None, "false"),
        ("arg_name", 4, _OPT, _F.TYPE_STRING, None, None),
        ("dtype", 5, _OPT, _F.TYPE_INT32, None, "-1"),
        ("ndim", 6, _OPT, _F.TYPE_INT32, None, "-1"),
    ]),
    ("OpDef", [
        ("name", 1, _REQ, _F.TYPE_STRING, None, None),
        ("input", 2, _REP, _F.TYPE_MESSAGE, ".dali_proto.InputOutput", None),
        ("output", 3, _REP, _F.TYPE_MESSAGE, ".dali_proto.InputOutput", None),
        ("args", 4, _REP, _F.TYPE_MESSAGE, ".dali_proto.Argument", None),
        ("inst_name", 5, _OPT, _F.TYPE_STRING, None, None),
        ("logical_id", 6, _OPT, _F.TYPE_INT32, None, "-1"),
    ]),
    ("PipelineDef", [
        ("num_threads", 1, _OPT, _F.TYPE_INT64, None, "4"),
        ("batch_size", 2, _REQ, _F.TYPE_INT32, None, None),
        ("use_async", 3, _OPT, _F.TYPE_BOOL, None, "false"),
        ("pipeline", 4, _OPT, _F.TYPE_BOOL, None, "false"),
        ("op", 5, _REP, _F.TYPE_MESSAGE, ".dali_proto.OpDef", None),
        ("external_inputs", 6, _REP, _F.TYPE_STRING, None, None),
        ("pipe_outputs", 7, _REP, _F.TYPE_MESSAGE, ".dali_proto.InputOutput", None),
        ("device_id", 8, _OPT, _F.TYPE_INT32, None, "0"),
        ("seed", 9, _OPT, _F.TYPE_INT64, None, "-1"),
    ]),
]


def _build():
    file_proto = descriptor_pb2.FileDescriptorProto(
        name="parity/dali.proto", package="dali_proto", syntax="proto2")
    for msg_name, fields in _SCHEMA:
        msg = file_proto.message_type.add(name=msg_name)
        for name, number, label, ftype, type_name, default in fields:
            field = msg.field.add(name=name, number=number, label=label, type=ftype)
            if type_name:
                field.type_name = type_name
            if default is not None:
                field.default_value = default
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"dali_proto.{name}"))
            for name, _ in _SCHEMA}


_CLASSES = _build()
Argument = _CLASSES["Argument"]
InputOutput = _CLASSES["InputOutput"]
OpDef = _CLASSES["OpDef"]
PipelineDef = _CLASSES["PipelineDef"]
