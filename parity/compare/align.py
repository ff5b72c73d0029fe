"""Pair DALI operator outputs with reference stages: the pipeline's result with the model input, and
the geometry operators of both sides with each other, right-aligned (the last crop with the last crop).

Pairing is structural, decided once per pipeline. Stages in between (casts, colour conversions) are
compared with the reference at the same point of the geometry, as long as they still hold pixel values;
after a value transform (normalize, arithmetic) only the final output is comparable.
"""

from __future__ import annotations

from dataclasses import dataclass

from parity.dali.runner import DaliStage

_IMAGE_TYPES = {0: "RGB", 1: "BGR"}  # nvidia.dali.types.DALIImageType


@dataclass(frozen=True)
class StagePair:
    label: str  # unique, for test ids
    dali: DaliStage
    ref_index: int | None  # index into the reference's stages; None: nothing to compare against
    final: bool = False
    channels: str | None = None  # channel order of the DALI stage ('BGR'/'RGB'), None when unknown
    pixels: bool = True  # DALI values are still image intensities
    reason: str = ""  # why there is no reference counterpart


def _track(stages: list[DaliStage], input_format: str) -> dict[str, tuple]:
    """(channel order, pixels?) of every DALI output, following each operator's first input."""
    state: dict[str, tuple] = {}
    for s in stages:
        parent = state.get(s.inputs[0]) if s.inputs else None
        if s.op in ("ExternalSource", "_ExternalSource"):
            state[s.name] = (None if input_format == "encoded" else input_format, input_format != "encoded")
            continue
        if "decoders__" in s.op or s.op.startswith("ImageDecoder"):
            state[s.name] = (_IMAGE_TYPES.get(s.args.get("output_type", 0)), True)
            continue
        channels, pixels = parent if parent else (None, False)
        if s.op == "ColorSpaceConversion":
            channels = _IMAGE_TYPES.get(int(s.args.get("output_type", -1)))
            pixels = pixels and channels is not None
        state[s.name] = (channels, pixels and s.keeps_pixel_values)
    return state


def align(stages: list[DaliStage], final_output: str, ref_names: list[str], ref_geometry: list[bool],
          input_format: str) -> list[StagePair]:
    """One :class:`StagePair` per DALI image stage, in graph order; the final output pairs with the
    reference's last stage (the model input)."""
    state = _track(stages, input_format)
    stages = data_path(stages, [final_output])
    geo_dali = [s for s in stages if s.changes_shape]
    geo_ref = [i for i, g in enumerate(ref_geometry) if g]
    partner = {d.name: r for d, r in zip(reversed(geo_dali), reversed(geo_ref))}

    pairs: list[StagePair] = []
    used_labels: dict[str, int] = {}
    current_ref = 0  # the reference point matching DALI's progress through the geometry so far
    for s in stages:
        channels, pixels = state[s.name]
        label = _unique(used_labels, "model_input" if s.name == final_output else s.label)
        if s.name == final_output:
            pairs.append(StagePair(label, s, len(ref_names) - 1, final=True, channels=channels, pixels=pixels))
            continue
        if s.is_input:
            if input_format == "encoded" and not s.op.startswith(("decoders__", "ImageDecoder")) \
                    and "decoders__" not in s.op:
                continue  # encoded bytes: nothing image-like to compare
            pairs.append(StagePair(label, s, 0, channels=channels, pixels=pixels))
            continue
        if s.name in partner:
            current_ref = partner[s.name]
            pairs.append(StagePair(label, s, current_ref, channels=channels, pixels=pixels))
        elif s.changes_shape:
            pairs.append(StagePair(label, s, None, channels=channels, pixels=pixels,
                                   reason="no matching geometry transform in the reference; checked through the "
                                          "stages after it"))
        elif pixels and channels is not None:
            pairs.append(StagePair(label, s, current_ref, channels=channels, pixels=pixels))
        else:
            pairs.append(StagePair(label, s, None, channels=channels, pixels=False,
                                   reason="values are transformed here (not image intensities); checked at the "
                                          "model input"))
    return pairs


def data_path(stages: list[DaliStage], outputs: list[str]) -> list[DaliStage]:
    """The stages the outputs are computed from through each operator's first input: the image flows
    through it (a slice's anchor and shape, a resize's size arithmetic, are not image stages)."""
    by_name = {s.name: s for s in stages}
    needed, todo = set(), list(outputs)
    while todo:
        name = todo.pop()
        if name in needed or name not in by_name:
            continue
        needed.add(name)
        todo.extend(by_name[name].inputs[:1])
    return [s for s in stages if s.name in needed]


def _unique(used: dict, label: str) -> str:
    n = used.get(label, 0)
    used[label] = n + 1
    return label if n == 0 else f"{label}_{n}"
