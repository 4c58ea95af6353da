//! `isp-toolbox`: the desktop app.

fn main() -> eframe::Result {
    eframe::run_simple_native(
        "ISP Toolbox",
        eframe::NativeOptions::default(),
        |ctx, _frame| {
            eframe::egui::CentralPanel::default().show(ctx, |ui| {
                ui.heading("ISP Toolbox");
            });
        },
    )
}
