#!/usr/bin/env bash
# Renders assets/icon.svg to the PNG sizes the desktop files and app bundles use (1024 only
# for the macOS iconset) and to a Windows .ico. Needs ImageMagick (`convert`). Run from
# anywhere; commit the results.
set -euo pipefail
cd "$(dirname "$0")/../assets"
sizes=(16 24 32 48 64 128 256 512 1024)
for size in "${sizes[@]}"; do
    # Render at 4x and scale down: ImageMagick's own SVG renderer antialiases coarsely.
    convert -background none -density $((72 * 4 * size / 256)) icon.svg \
        -resize "${size}x${size}" -strip "PNG32:icon-${size}.png"
done
convert icon-16.png icon-24.png icon-32.png icon-48.png icon-64.png icon-256.png icon.ico
