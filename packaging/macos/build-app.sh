#!/usr/bin/env bash
# Builds "ISP Toolbox.app" (and a .dmg) on macOS. Needs Xcode's command-line tools (iconutil,
# plutil, codesign, hdiutil, lipo) and the Rust targets for both architectures:
#   rustup target add aarch64-apple-darwin x86_64-apple-darwin
# Output: target/macos/ISP Toolbox.app and target/macos/ISP-Toolbox-<version>.dmg
set -euo pipefail
cd "$(dirname "$0")/../.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
out=target/macos
app="$out/ISP Toolbox.app"
rm -rf "$app" && mkdir -p "$app/Contents/MacOS" "$app/Contents/Resources"

# One universal binary for Apple silicon and Intel Macs.
for target in aarch64-apple-darwin x86_64-apple-darwin; do
    cargo build --release --target "$target" --bins
done
for bin in isp-toolbox isp-toolbox-cli; do
    lipo -create -output "$app/Contents/MacOS/$bin" \
        "target/aarch64-apple-darwin/release/$bin" "target/x86_64-apple-darwin/release/$bin"
done

# The icon: an .iconset of the rendered PNGs, packed by iconutil.
iconset="$out/isp-toolbox.iconset"
rm -rf "$iconset" && mkdir -p "$iconset"
for size in 16 32 128 256 512; do
    cp "assets/icon-${size}.png" "$iconset/icon_${size}x${size}.png"
    cp "assets/icon-$((size * 2)).png" "$iconset/icon_${size}x${size}@2x.png"
done
iconutil -c icns "$iconset" -o "$app/Contents/Resources/isp-toolbox.icns"

sed "s/@VERSION@/$version/g" packaging/macos/Info.plist > "$app/Contents/Info.plist"
plutil -lint "$app/Contents/Info.plist"

# Ad-hoc signature so Gatekeeper on Apple silicon runs it at all; a release for others needs a
# Developer ID signature and notarization (see packaging/macos/README.md).
codesign --force --deep --sign - "$app"

hdiutil create -volname "ISP Toolbox" -srcfolder "$app" -ov -format UDZO "$out/ISP-Toolbox-$version.dmg"
echo "built $app and $out/ISP-Toolbox-$version.dmg"
