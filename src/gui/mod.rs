//! The desktop app: one window in the spirit of QMK Toolbox (pickers on top, the big action,
//! the log below), with everything the guide asks a person to do by hand on screen.
//!
//! The engine knows nothing of egui: this module turns selections into [`JobRequest`]s for the
//! background [`Worker`] and shows what comes back.
//!
//! [`JobRequest`]: crate::job::runner::JobRequest
//! [`Worker`]: crate::worker::Worker

pub mod app;
pub mod diagnostics;
pub mod dialog;
pub mod file_dialog;
pub mod fuse_editor;
pub mod hexfile;
pub mod log;
pub mod ports;
pub mod prepare;
pub mod production;
pub mod renderer;
pub mod settings;
pub mod software;
mod view;
pub mod wiring;

pub use app::{App, AppOptions};

/// The id desktop environments know the app by (matches the .desktop file and AppStream).
pub const APP_ID: &str = "io.github.isptoolbox.IspToolbox";

/// Opens the window, drawn by `renderer`, and runs until it is closed.
pub fn run(renderer: renderer::Renderer) -> Result<(), String> {
    let options = AppOptions::for_desktop();
    let size = options.settings.window_size.unwrap_or([1180.0, 860.0]);
    let mut viewport = eframe::egui::ViewportBuilder::default()
        .with_title("ISP Toolbox")
        .with_app_id(APP_ID)
        .with_inner_size(size)
        .with_min_inner_size([860.0, 600.0]);
    if let Ok(icon) = eframe::icon_data::from_png_bytes(include_bytes!("../../assets/icon-256.png"))
    {
        viewport = viewport.with_icon(icon);
    }
    match renderer {
        renderer::Renderer::Software => software::run(App::new(options), viewport),
        renderer::Renderer::OpenGl => {
            let native = eframe::NativeOptions {
                viewport,
                ..Default::default()
            };
            eframe::run_native(
                "ISP Toolbox",
                native,
                Box::new(move |cc| Ok(Box::new(app::EframeApp::new(App::new(options), cc)))),
            )
            .map_err(|e| e.to_string())
        }
    }
}
