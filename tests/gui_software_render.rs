//! The software renderer end to end: egui lays out and tessellates real widgets (text from
//! the font atlas included), and the painter puts them in the right pixels.

use eframe::egui::{self, Color32, Rect, pos2, vec2};
use isp_toolbox::gui::software::offscreen::Offscreen;
use isp_toolbox::gui::{App, AppOptions, settings::Settings};

/// Runs `ui` for a few passes (egui sizes some widgets on the first) and paints the last.
fn render(frame: &mut Offscreen, mut ui: impl FnMut(&mut egui::Ui)) -> Vec<u32> {
    for _ in 0..3 {
        frame.frame(&mut ui);
    }
    frame.pixels().to_vec()
}

fn rgb(color: Color32) -> u32 {
    let [r, g, b, _] = color.to_array();
    (u32::from(r) << 16) | (u32::from(g) << 8) | u32::from(b)
}

/// Pixels of `color` inside and outside `rect` (in pixels).
fn count(pixels: &[u32], width: usize, color: u32, rect: Rect) -> (usize, usize) {
    count_where(pixels, width, rect, |pixel| pixel == color)
}

/// Pixels that `select` picks, inside and outside `rect` (in pixels).
fn count_where(
    pixels: &[u32],
    width: usize,
    rect: Rect,
    select: impl Fn(u32) -> bool,
) -> (usize, usize) {
    let mut inside = 0;
    let mut outside = 0;
    for (i, &pixel) in pixels.iter().enumerate() {
        if !select(pixel) {
            continue;
        }
        let at = pos2((i % width) as f32 + 0.5, (i / width) as f32 + 0.5);
        if rect.contains(at) {
            inside += 1;
        } else {
            outside += 1;
        }
    }
    (inside, outside)
}

/// A label and a filled square at known places, at 1 and 2 pixels per point.
#[test]
fn text_and_shapes_land_where_egui_laid_them_out() {
    for scale in [1.0, 2.0] {
        let size = [(240.0 * scale) as usize, (100.0 * scale) as usize];
        let mut frame = Offscreen::new(size, scale);
        frame.ctx.set_theme(egui::Theme::Light);
        let ctx = frame.ctx.clone();
        let square = Rect::from_min_size(pos2(150.0, 60.0), vec2(20.0, 10.0));
        let square_color = Color32::from_rgb(200, 30, 40);
        let mut label = Rect::NOTHING;
        let pixels = render(&mut frame, |ui| {
            egui::CentralPanel::default().show(ui, |ui| {
                label = ui.label("Flash bootloader").rect;
                ui.painter().rect_filled(square, 0.0, square_color);
            });
        });
        let background = rgb(ctx.global_style().visuals.panel_fill);
        let square_pixels = rgb(square_color);

        // Ink: anything but the background and the square.
        let ink = |pixel| pixel != background && pixel != square_pixels;
        // Anti-aliased glyph edges may overhang the layout rectangle by a fraction of a point.
        let (inside, outside) = count_where(&pixels, size[0], label.expand(1.0) * scale, ink);
        // "Flash bootloader" is about 100 by 14 points; its glyphs cover a fair share.
        assert!(
            inside > (150.0 * scale * scale) as usize,
            "{inside} ink pixels at {scale}x"
        );
        assert_eq!(outside, 0, "ink outside the label at {scale}x");

        let (inside, outside) = count(&pixels, size[0], rgb(square_color), square * scale);
        assert_eq!(
            inside,
            (200.0 * scale * scale) as usize,
            "square at {scale}x"
        );
        assert_eq!(outside, 0, "square colour outside the square at {scale}x");
    }
}

/// The app's whole window paints: panels, text and the wiring diagram, in both themes.
#[test]
fn the_app_window_paints_in_both_themes() {
    for dark in [false, true] {
        let settings = Settings {
            programmer: Some("promicro-isp".into()),
            port: Some("emulated".into()),
            mcu: Some("atmega32u4".into()),
            bootloader: Some("caterina-promicro-5v".into()),
            dark_mode: Some(dark),
            ..Settings::default()
        };
        let mut app = App::new(AppOptions::for_tests(settings));
        let size = [1180, 860];
        let mut frame = Offscreen::new(size, 1.0);
        app.apply_saved_theme(&frame.ctx);
        let ctx = frame.ctx.clone();
        let pixels = render(&mut frame, |ui| app.window_ui(ui));

        let visuals = ctx.global_style().visuals.clone();
        assert_eq!(visuals.dark_mode, dark);
        let everywhere = Rect::from_min_size(pos2(0.0, 0.0), vec2(1180.0, 860.0));
        let (text, _) = count(&pixels, size[0], rgb(visuals.text_color()), everywhere);
        let (panel, _) = count(&pixels, size[0], rgb(visuals.panel_fill), everywhere);
        assert!(text > 2000, "{text} text pixels (dark: {dark})");
        assert!(
            panel > pixels.len() / 3,
            "{panel} background pixels (dark: {dark})"
        );
        let mut colours = pixels.clone();
        colours.sort_unstable();
        colours.dedup();
        // Anti-aliased text and the coloured wires of the diagram.
        assert!(
            colours.len() > 200,
            "{} colours (dark: {dark})",
            colours.len()
        );
    }
}
