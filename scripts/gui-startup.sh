#!/bin/sh
# GUI start-up benchmark and smoke test: time to the first painted frame and resident memory
# of the release app under Xvfb, with each renderer: the app's own software renderer (what a
# machine without a GPU gets) and OpenGL through Mesa's llvmpipe (ISP_TOOLBOX_RENDERER).
# Prints a table; exits non-zero if the window never paints. Run from the repository root
# after `cargo build --release`. Needs xvfb, xdotool and imagemagick (Debian packages).
# Usage: scripts/gui-startup.sh [RUNS] [BINARY] [RENDERERS, default "software opengl"]
# Fails if the software renderer's resident memory exceeds MAX_SOFTWARE_RSS_MB (default 100,
# the GUI's memory target; it measures about 22 MB).
set -eu
runs=${1:-5}
bin=${2:-target/release/isp-toolbox}
renderers=${3:-software opengl}
max_software_rss=${MAX_SOFTWARE_RSS_MB:-100}
display=:97
[ -x "$bin" ] || { echo "gui-startup: $bin is not built (cargo build --release)" >&2; exit 2; }
for tool in Xvfb xdotool import; do
    command -v "$tool" >/dev/null || { echo "gui-startup: $tool is missing (apt-get install xvfb xdotool imagemagick)" >&2; exit 2; }
done
Xvfb "$display" -screen 0 1400x950x24 >"${TMPDIR:-/tmp}/gui-startup-xvfb.log" 2>&1 &
xvfb=$!
home=$(mktemp -d)
trap 'kill $xvfb 2>/dev/null; rm -rf "$home"' EXIT
sleep 1
export DISPLAY="$display"
now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs() { printf "%d.%02d" $(($1 / 1000)) $(($1 % 1000 / 10)); }
echo "| renderer | run | window mapped s | first frame s | RSS after 3 s MB | peak RSS MB |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for renderer in $renderers; do
    i=1
    while [ "$i" -le "$runs" ]; do
        start=$(now_ms)
        # A fresh config directory: the first-run window, as a new user sees it.
        HOME="$home" XDG_CONFIG_HOME="$home/.config" ISP_TOOLBOX_RENDERER="$renderer" "$bin" >"$home/app.log" 2>&1 &
        app=$!
        mapped=""
        frame=""
        while [ -z "$frame" ]; do
            if [ -z "$mapped" ] && xdotool search --onlyvisible --name "ISP Toolbox" >/dev/null 2>&1; then
                mapped=$(($(now_ms) - start))
            fi
            # The menu bar's corner is black until the first frame is painted (an import takes
            # about 0.1 s, so the figure is an upper bound).
            mean=$(import -window root -crop 60x20+0+0 -colorspace gray -format '%[fx:int(mean*1000)]' info: 2>/dev/null || echo 0)
            if [ "$mean" -gt 50 ]; then
                frame=$(($(now_ms) - start))
            elif [ $(($(now_ms) - start)) -gt 30000 ] || ! kill -0 "$app" 2>/dev/null; then
                echo "gui-startup: $renderer run $i: no frame painted within 30 s; the app said:" >&2
                cat "$home/app.log" >&2
                kill "$app" 2>/dev/null || true
                exit 1
            fi
        done
        sleep 3
        rss=$(awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$app/status")
        peak=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$app/status")
        echo "| $renderer | $i | $(secs "${mapped:-0}") | $(secs "$frame") | $rss | $peak |"
        if [ "$renderer" = software ] && [ "$peak" -gt "$max_software_rss" ]; then
            echo "gui-startup: the software renderer peaked at $peak MB, over the $max_software_rss MB target" >&2
            kill "$app"
            exit 1
        fi
        kill "$app"
        wait "$app" 2>/dev/null || true
        sleep 1
        i=$((i + 1))
    done
done
