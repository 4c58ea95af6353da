#!/usr/bin/env bash
# Builds the .deb with cargo-deb (unless --no-build) and checks what it installs: the file
# list (`dpkg-deb -c`), the control fields, and that the packaged udev rules, desktop file and
# CLI are the ones in this tree. Used by .ci/run; needs cargo-deb and dpkg-deb.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "${1:-}" != "--no-build" ]; then
    start=$(date +%s)
    cargo deb
    echo "check-deb: cargo deb took $(( $(date +%s) - start )) s"
fi

deb=$(ls -t target/debian/isp-toolbox_*.deb | head -n 1)
echo "check-deb: $deb ($(du -h "$deb" | cut -f1))"

app=io.github.isptoolbox.IspToolbox
expected=(
    ./usr/bin/isp-toolbox
    ./usr/bin/isp-toolbox-cli
    ./usr/lib/udev/rules.d/60-isp-toolbox.rules
    ./usr/share/applications/$app.desktop
    ./usr/share/metainfo/$app.metainfo.xml
    ./usr/share/icons/hicolor/scalable/apps/$app.svg
    ./usr/share/doc/isp-toolbox/copyright
)
for size in 16 24 32 48 64 128 256 512; do
    expected+=("./usr/share/icons/hicolor/${size}x${size}/apps/$app.png")
done

listing=$(dpkg-deb -c "$deb")
echo "$listing"
files=$(awk '{print $6}' <<<"$listing")
missing=0
for path in "${expected[@]}"; do
    if ! grep -qxF "$path" <<<"$files"; then
        echo "check-deb: MISSING $path" >&2
        missing=1
    fi
done
# Executables must be executable, data files not.
for bin in ./usr/bin/isp-toolbox ./usr/bin/isp-toolbox-cli; do
    grep -E "^-rwxr-xr-x .* ${bin//./\\.}\$" <<<"$listing" >/dev/null ||
        { echo "check-deb: $bin is not -rwxr-xr-x" >&2; missing=1; }
done
grep -E '^-rw-r--r-- .* \./usr/lib/udev/rules\.d/60-isp-toolbox\.rules$' <<<"$listing" >/dev/null ||
    { echo "check-deb: the udev rules are not -rw-r--r--" >&2; missing=1; }

for field in Package Version Architecture Depends Section Description; do
    value=$(dpkg-deb -f "$deb" "$field")
    if [ -z "$value" ]; then
        echo "check-deb: control field $field is empty" >&2
        missing=1
    fi
    echo "check-deb: $field: $value"
done
# (Lists are read into variables first: `grep -q` closing a pipe early trips pipefail.)
control_files=$(dpkg-deb --ctrl-tarfile "$deb" | tar -t)
for script in ./postinst ./postrm; do
    grep -qxF "$script" <<<"$control_files" ||
        { echo "check-deb: no $script (udev reload)" >&2; missing=1; }
done

# The packaged files are this tree's, and the packaged CLI runs.
unpacked=$(mktemp -d)
trap 'rm -rf "$unpacked"' EXIT
dpkg-deb -x "$deb" "$unpacked"
cmp packaging/linux/60-isp-toolbox.rules "$unpacked/usr/lib/udev/rules.d/60-isp-toolbox.rules"
cmp packaging/linux/$app.desktop "$unpacked/usr/share/applications/$app.desktop"
"$unpacked/usr/bin/isp-toolbox-cli" --version
"$unpacked/usr/bin/isp-toolbox-cli" doctor --udev-rules |
    cmp - packaging/linux/60-isp-toolbox.rules
ls -l "$unpacked/usr/bin"

# The desktop entry and AppStream metadata pass their validators (installed by .ci/run).
if command -v desktop-file-validate >/dev/null 2>&1; then
    desktop-file-validate "$unpacked/usr/share/applications/$app.desktop"
else
    echo "check-deb: desktop-file-validate not installed, desktop entry not validated"
fi
if command -v appstreamcli >/dev/null 2>&1; then
    appstreamcli validate --no-net "$unpacked/usr/share/metainfo/$app.metainfo.xml"
else
    echo "check-deb: appstreamcli not installed, metainfo not validated"
fi

if [ "$missing" -ne 0 ]; then
    echo "check-deb: FAILED" >&2
    exit 1
fi
echo "check-deb: ok"
