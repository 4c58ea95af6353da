//! `isp-toolbox`: the desktop app.
// Release builds on Windows run without a console window; debug builds keep it for logs.
#![cfg_attr(all(windows, not(debug_assertions)), windows_subsystem = "windows")]

use std::process::ExitCode;

fn main() -> ExitCode {
    match isp_toolbox::gui::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("isp-toolbox: cannot open the window: {e}");
            eprintln!(
                "hint: the app needs a desktop session (on Linux DISPLAY or WAYLAND_DISPLAY set, \
                 and OpenGL through Mesa or a GPU driver); isp-toolbox-cli does everything \
                 without one"
            );
            ExitCode::FAILURE
        }
    }
}
