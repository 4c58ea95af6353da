//! Software renderer frame cost: the app's window laid out by egui, tessellated, and painted
//! on the CPU, at the usual window sizes. Prints a markdown table (median of many frames).
//! Run: `cargo bench --bench gui_render`.

use std::time::{Duration, Instant};

use eframe::egui::{self, Rect, pos2, vec2};
use isp_toolbox::gui::software::raster::{Painter, Target};
use isp_toolbox::gui::{App, AppOptions, settings::Settings};

const FRAMES: usize = 60;

struct Timings {
    layout: Vec<Duration>,
    tessellate: Vec<Duration>,
    paint: Vec<Duration>,
}

fn median(samples: &mut [Duration]) -> f64 {
    samples.sort_unstable();
    samples[samples.len() / 2].as_secs_f64() * 1000.0
}

fn measure(size: [usize; 2], pixels_per_point: f32, dark: bool) -> Timings {
    let settings = Settings {
        programmer: Some("promicro-isp".into()),
        port: Some("emulated".into()),
        mcu: Some("atmega32u4".into()),
        bootloader: Some("atmel-dfu-atmega32u4".into()),
        dark_mode: Some(dark),
        ..Settings::default()
    };
    let mut app = App::new(AppOptions::for_tests(settings));
    let ctx = egui::Context::default();
    app.apply_saved_theme(&ctx);
    let mut painter = Painter::default();
    let mut pixels = vec![0; size[0] * size[1]];
    let mut timings = Timings {
        layout: Vec::new(),
        tessellate: Vec::new(),
        paint: Vec::new(),
    };
    for frame in 0..FRAMES + 5 {
        let points = vec2(size[0] as f32, size[1] as f32) / pixels_per_point;
        let mut input = egui::RawInput {
            screen_rect: Some(Rect::from_min_size(pos2(0.0, 0.0), points)),
            max_texture_side: Some(2048),
            ..Default::default()
        };
        input
            .viewports
            .entry(egui::ViewportId::ROOT)
            .or_default()
            .native_pixels_per_point = Some(pixels_per_point);
        let start = Instant::now();
        let mut output = ctx.run_ui(input, |ui| app.window_ui(ui));
        let laid_out = Instant::now();
        let primitives = ctx.tessellate(std::mem::take(&mut output.shapes), pixels_per_point);
        let tessellated = Instant::now();
        painter.set_textures(&mut output.textures_delta);
        let mut target = Target {
            pixels: &mut pixels,
            width: size[0],
            height: size[1],
        };
        let background = ctx.global_style().visuals.panel_fill;
        painter.paint(&mut target, &primitives, pixels_per_point, background);
        painter.free_textures(&mut output.textures_delta);
        let painted = Instant::now();
        // The first frames build the font atlas; measure the steady state.
        if frame >= 5 {
            timings.layout.push(laid_out - start);
            timings.tessellate.push(tessellated - laid_out);
            timings.paint.push(painted - tessellated);
        }
    }
    timings
}

fn main() {
    println!("| window | scale | theme | egui pass ms | tessellate ms | paint ms | frame ms |");
    println!("| --- | ---: | --- | ---: | ---: | ---: | ---: |");
    for (size, scale) in [([1180, 860], 1.0), ([1400, 950], 1.0), ([2360, 1720], 2.0)] {
        for dark in [true, false] {
            let mut t = measure(size, scale, dark);
            let (layout, tessellate, paint) = (
                median(&mut t.layout),
                median(&mut t.tessellate),
                median(&mut t.paint),
            );
            println!(
                "| {}×{} | {scale} | {} | {layout:.2} | {tessellate:.2} | {paint:.2} | {:.2} |",
                size[0],
                size[1],
                if dark { "dark" } else { "light" },
                layout + tessellate + paint
            );
        }
    }
}
