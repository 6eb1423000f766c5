"""`contimg image MS`: image any Measurement Set with the platform's imaging stage.

The same options (the `[imaging]` settings, overridable here), the drift-averaged primary
beam, quality figures and provenance as a group image; the products go to `--out` (default:
beside the MS) as `<ms stem>.img/`, made in a staging workspace and moved in by one rename.
Nothing is registered: the MS need not be one the platform made.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path


def add_image_command(commands: argparse._SubParsersAction) -> None:
    """The `image` subcommand's arguments."""
    image = commands.add_parser("image", help="image any Measurement Set (products beside it)")
    image.add_argument("ms", type=Path, help="the Measurement Set directory")
    image.add_argument("--out", type=Path, default=None,
                       help="directory for `<ms stem>.img/` (default: the MS's directory)")
    image.add_argument("--imager", choices=("wsclean", "tclean"), default=None)
    image.add_argument("--data-column", choices=("DATA", "CORRECTED_DATA"), default=None,
                       help="default CORRECTED_DATA, or DATA when the MS has none")


def run_image_command(args: argparse.Namespace) -> int:
    """Image the MS and print where the products are and how good the image is."""
    from contimg.imaging.options import ImagingOptions, ImagingOptionsError
    from contimg.imaging.stage import ImagingError, image_ms
    from contimg.imaging.wsclean import ImagerError
    from contimg.settings import SettingsError, load_settings

    try:
        settings = load_settings()
        options = ImagingOptions.from_settings(settings)
        changes = {k: v for k, v in (("imager", args.imager), ("data_column", args.data_column)) if v}
        options = replace(options, **changes)
        outcome = image_ms(args.ms, args.out or args.ms.resolve().parent, settings.layout, options=options)
    except (ImagingError, ImagerError, ImagingOptionsError, SettingsError, OSError) as exc:
        print(f"contimg image: error: {exc}", file=sys.stderr)
        return 2
    q = outcome.quality
    print(f"wrote {outcome.image_set}: {', '.join(sorted(p.name for p in outcome.products.values()))}")
    print(f"rms {q.rms_jy * 1e3:.3f} mJy/beam ({q.rms_ratio:.2f}x expected), peak {q.peak_jy:.4g} Jy, "
          f"DR {q.dynamic_range:.0f}, beam {q.bmaj_arcsec:.1f}\" x {q.bmin_arcsec:.1f}\", "
          f"{outcome.seconds.get('total', 0.0):.1f} s")
    return 0
