//! `isp-toolbox`: the desktop app.
// Release builds on Windows run without a console window; debug builds keep it for logs.
#![cfg_attr(all(windows, not(debug_assertions)), windows_subsystem = "windows")]

fn main() -> eframe::Result {
    isp_toolbox::gui::run()
}
