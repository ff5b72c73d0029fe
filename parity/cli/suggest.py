"""``parity suggest``: write the DALI pipeline that reproduces the reference, and verify it."""

from __future__ import annotations

from pathlib import Path

from parity.results.exit import EXIT_MISMATCH, EXIT_OK

MARKER = "parity-suggested.txt"  # in --out: the folder is parity's to write into again


def run(args) -> int:
    """Generate, write, verify; the verdict printed is the one measured (parity.suggest.verdict)."""
    from parity.config.load import SAMPLE_IMAGES, config_from_dict, load_config
    from parity.errors import ParityUsageError
    from parity.outputs.files import check_output_folder
    from parity.suggest.verdict import MIN_SIDE, Verdict, verdict_images, verify, without_source

    check_output_folder(args.out.resolve(), MARKER, "--out")  # before any work: never over the user's own files
    spec = str(args.config)
    path = args.config.resolve()
    library, _, name = spec.partition("::")
    if library in ("timm", "torchvision"):  # a checkpoint or weights preset: verified on the samples
        if not name:
            raise ParityUsageError(f"{spec}: expected a name after '{library}::' (timm::resnet50.a1_in1k, "
                                   "torchvision::ResNet50_Weights.IMAGENET1K_V2)")
        cfg = config_from_dict({"reference": {library: name}, "dali": {"pipeline": "unused.py:f"},
                                "images": [str(SAMPLE_IMAGES)]}, Path.cwd() / "parity-suggest")
    elif "::" not in spec and _is_parity_config(path):  # its reference, images and client format
        cfg = load_config(path)
    else:  # an MMPretrain config, a file or 'mmpretrain::path/in/package.py': verified on the sample images
        cfg = config_from_dict({"reference": {"config": spec if "::" in spec else str(path)},
                                "dali": {"pipeline": "unused.py:f"}, "images": [str(SAMPLE_IMAGES)]},
                               Path.cwd() / "parity-suggest")
    input_format = args.input_format or cfg.dali.input_format
    input_name = cfg.dali.input_name or "INPUT"
    if cfg.reference.library == "mmpretrain":
        from parity.suggest.generate import suggest

        reference: dict = {"test_pipeline": cfg.test_pipeline, "data_preprocessor": cfg.data_preprocessor}
        suggestion = suggest(cfg.test_pipeline, cfg.data_preprocessor, input_format=input_format,
                             input_name=input_name)
    else:  # timm or torchvision: the eval transform the reference resolves
        from parity.reference import open_reference
        from parity.suggest import eval_transform

        section = cfg.reference
        reference = {section.library: section.timm or section.torchvision, **section.eval_transform_args()}
        ref = open_reference(cfg)
        suggestion = eval_transform.suggest(ref.pipeline_cfg[1:], source=ref.source, input_format=input_format,
                                            input_name=input_name)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("Written by parity suggest; the next suggestion written here replaces its files.\n")
    (out / "pipeline.py").write_text(suggestion.source)
    print(f"wrote {out / 'pipeline.py'}")
    for line in suggestion.unsupported:
        print(f"NOT REPRODUCED | {line}")
    for line in suggestion.notes:
        print(f"NOTE | {line}")
    groups, below = verdict_images(out / "verdict_images", SAMPLE_IMAGES, args.random_images)
    given = [p for p in cfg.images if p.resolve().parent != SAMPLE_IMAGES.resolve()]  # samples: in "bundled"
    groups = {"given": given, **groups}
    parity_cfg: dict = {"reference": reference, "images": [str(p) for paths in groups.values() for p in paths],
                        "dali": {"pipeline": "pipeline.py:preprocess", "input_name": input_name,
                                 "input_format": input_format}}
    (out / "parity_suggested.py").write_text(_settings(parity_cfg))
    if args.triton:
        _write_triton(out, suggestion, input_format)
    result = verify(load_config(out / "parity_suggested.py"), groups, below, source=cfg.reference_source)
    if result.widened and result.widened.passes:  # what makes `parity check` of it pass, with the reason
        (out / "parity_suggested.py").write_text(_settings(parity_cfg, result.widened))
    print(f"wrote {out / 'parity_suggested.py'} (run `parity check` on it any time)")
    print(f"\nmeasured on {result.overall.images} images:")
    for line in result.stage_lines:
        print(f"  {line}")
    for m in [*result.groups, result.below_minimum]:
        failing = f", failing the default tolerances on {', '.join(m.failed[:5])}" if m.failed else ""
        print(f"  {m.name:<14} {m.images:3d} images: {m.verdict.name}, max {m.pixel_max:.3g} levels before "
              f"normalization (worst mean {m.pixel_mean:.3g}){failing}")
        if m.reference_failed:
            first_error = without_source(next(iter(m.reference_failed.values())))
            print(f"  {'':<14} {len(m.reference_failed):3d} images not measured: the reference cannot run them "
                  f"({', '.join(list(m.reference_failed)[:5])}): {first_error}")
    print(f"  (below_minimum: short side under {MIN_SIDE} px, reported apart, not in the verdict)")
    unmeasured = sum(len(m.reference_failed) for m in result.groups)
    if unmeasured:
        print(f"NOT MEASURED: {unmeasured} verdict images the reference itself cannot run (above) are outside the "
              "verdict")
    if suggestion.unsupported:
        print("INCOMPLETE: some transforms are not reproduced (above); the measurement covers what was generated")
    print(_claim(result))
    return EXIT_OK if result.verdict != Verdict.MISMATCH and suggestion.complete else EXIT_MISMATCH


def _claim(result) -> str:
    """The verdict's last line: what was measured, and for APPROXIMATE whether the default tolerances pass."""
    from parity.suggest.verdict import Verdict

    overall = result.overall
    if result.verdict is Verdict.EXACT:
        return f"EXACT: within {overall.pixel_max:.3g} uint8 level(s) before normalization on every measured image"
    if result.verdict is Verdict.APPROXIMATE:
        return (f"APPROXIMATE: differs by up to {overall.pixel_max:.3g} uint8 levels before normalization (model "
                f"input max {overall.model_input_max:.3g}); {_gate(result)}")
    return (f"MISMATCH on {len(overall.failed)} images ({', '.join(overall.failed[:5])}): this pipeline is not "
            "claimed to match; see `parity check`")


def _gate(result) -> str:
    """Whether `parity check` of parity_suggested.py passes with the default tolerances, or with what it carries."""
    if result.default_gate:
        return "`parity check` passes with the default tolerances"
    w = result.widened
    return (f"the default tolerances FAIL on {len(result.overall.failed)} images ({100 * w.measured.fraction:.2f}% "
            f"of elements beyond the element threshold on {w.measured.image}, {w.measured.stage}; 0.5% allowed); "
            f"parity_suggested.py carries tolerances = {w.entries!r}, with which `parity check` passes (checked)")


def _settings(parity_cfg: dict, widened=None) -> str:
    """parity_suggested.py: the settings, and the tolerance the verdict measured to be needed, with why."""
    text = "".join(f"{k} = {v!r}\n" for k, v in parity_cfg.items())
    if widened is None:
        return text
    b = widened.measured
    return (f"{text}# `parity suggest` measured {100 * b.fraction:.2f}% of elements beyond the element threshold on "
            f"{b.image} ({b.stage}),\n# over the 0.5% the default tolerances allow: resampling differences of a "
            "generated filter on fine detail,\n# within the default mean (0.5 level). With this share every verdict "
            f"image passes `parity check`.\ntolerances = {widened.entries!r}\n")


def _is_parity_config(path: Path) -> bool:
    """Whether ``path`` is a parity config (it has a ``reference`` section) rather than an MMPretrain config."""
    from parity.config.file import read_config_file
    from parity.errors import ParityConfigError

    if not path.is_file():
        raise ParityConfigError(f"config not found: {path}")
    try:
        return "reference" in read_config_file(path)
    except ParityConfigError:
        return False  # not plain Python settings: an MMPretrain config for mmengine to read


def _write_triton(out: Path, suggestion, input_format: str) -> None:
    """model.dali (serialized) and a config.pbtxt for Triton's dali backend, in out/triton/preprocess."""
    from parity.dali.runner import load_function, serialize_function

    spec = "pipeline.py:preprocess"
    data = serialize_function(load_function(spec, out), spec, batch_size=32, num_threads=4)
    model = out / "triton" / "preprocess"
    (model / "1").mkdir(parents=True, exist_ok=True)
    (model / "1" / "model.dali").write_bytes(data)
    dims = "[ -1 ]" if input_format == "encoded" else "[ -1, -1, 3 ]"
    (model / "config.pbtxt").write_text(
        f'name: "preprocess"\nbackend: "dali"\nmax_batch_size: 32\n'
        f'input [ {{ name: "{suggestion.input_name}" data_type: TYPE_UINT8 dims: {dims} }} ]\n'
        'output [ { name: "PREPROCESSED" data_type: TYPE_FP32 dims: [ 3, -1, -1 ] } ]\n'
        "instance_group [ { kind: KIND_GPU count: 1 } ]\n")
    print(f"wrote {model} (model.dali serialized on this machine; device_id is set when it is built there)")
