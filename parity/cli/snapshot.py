"""``parity snapshot``: record the reference for a check in another environment."""

from __future__ import annotations

from parity.results.exit import EXIT_OK


def run(args) -> int:
    """Record the reference; the folder is complete or absent."""
    from parity.config.load import load_config
    from parity.errors import ParityUsageError
    from parity.reference.snapshot import write_snapshot
    from parity.run.shard import Shard

    shard = Shard.parse(args.shard, "--shard")
    cfg = load_config(args.config, live=True)
    out = args.out or (cfg.base_dir / cfg.reference.snapshot if cfg.reference.snapshot else None)
    if out is None:
        raise ParityUsageError(f"{cfg.path}: no reference.snapshot in the config: give --out DIR")
    done = write_snapshot(cfg, out, shard=shard,
                          progress=None if args.quiet else lambda image: print(f"recorded | {image}", flush=True))
    print(f"wrote {done.folder}: {done.images} images{f' (shard {shard})' if shard else ''}, "
          f"{done.bytes / 2**20:.1f} MiB "
          f"({done.bytes / max(done.images, 1) / 1024:.0f} KiB per image) in {done.seconds:.1f} s")
    return EXIT_OK
