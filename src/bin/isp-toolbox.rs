//! `isp-toolbox`: the desktop app.
// Release builds on Windows run without a console window; debug builds keep it for logs.
#![cfg_attr(all(windows, not(debug_assertions)), windows_subsystem = "windows")]

use std::process::ExitCode;

use isp_toolbox::gui::renderer::Renderer;

fn main() -> ExitCode {
    let renderer = match Renderer::for_this_machine() {
        Ok(renderer) => renderer,
        Err(e) => {
            eprintln!("isp-toolbox: {e}");
            return ExitCode::from(2);
        }
    };
    match isp_toolbox::gui::run(renderer) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("isp-toolbox: cannot open the window: {e}");
            eprintln!(
                "hint: the app needs a desktop session (on Linux DISPLAY or WAYLAND_DISPLAY \
                 set); if OpenGL is what failed, ISP_TOOLBOX_RENDERER=software draws the window \
                 without it; isp-toolbox-cli does everything without a window"
            );
            ExitCode::FAILURE
        }
    }
}
